//! The authorization rules shipped in `config/sidecar-*.yaml`, enforced by a
//! real sidecar with a workload identity and called over mutual TLS with the
//! certificates of the demo's workloads: payment charges only for order, and
//! catalog takes product changes only from the gateway (which alone grants
//! the catalog's admin header).

mod mesh;
mod support;

use std::net::SocketAddr;
use std::path::Path;

use mesh::ca::{TestCa, raw_client};
use mesh::{id, start_meshed, tls_request};
use support::Upstream;

/// The shipped config of `service` with its listeners on free ports and its
/// app at `app`.
fn shipped(service: &str, app: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(format!("sidecar-{service}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let inbound = &mut doc["inbound"];
    inbound["address"] = "127.0.0.1:0".into();
    inbound["app"] = app.to_string().into();
    doc["outbound"]["address"] = "127.0.0.1:0".into();
    doc["admin"]["address"] = "127.0.0.1:0".into();
    serde_norway::to_string(&doc).unwrap()
}

async fn status(inbound: SocketAddr, ca: &TestCa, caller: &str, method: &str, path: &str) -> u16 {
    let cfg = raw_client(Some(ca.leaf(&id(caller))));
    let got = tls_request(inbound, cfg, method, path, &[]).await;
    got.unwrap_or_else(|e| panic!("{caller} {method} {path}: {e}"))
        .status
        .as_u16()
}

#[tokio::test]
async fn catalog_takes_product_changes_only_from_the_gateway() {
    let app = Upstream::start().await;
    let ca = TestCa::new("mesh");
    let catalog = start_meshed(&shipped("catalog", app.addr), &ca, "catalog").await;
    let inbound = catalog.running.inbound;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let path = if method == "POST" {
            "/v1/products"
        } else {
            "/v1/products/p-1"
        };
        assert_eq!(
            status(inbound, &ca, "order", method, path).await,
            403,
            "{method}"
        );
        assert_eq!(
            status(inbound, &ca, "gateway", method, path).await,
            200,
            "{method}"
        );
    }
    // Reads and order's reservations follow the default.
    assert_eq!(
        status(inbound, &ca, "order", "GET", "/v1/products").await,
        200
    );
    assert_eq!(
        status(inbound, &ca, "order", "POST", "/v1/reservations").await,
        200
    );
    catalog.running.stop().await;
}

#[tokio::test]
async fn payment_charges_only_for_order() {
    let app = Upstream::start().await;
    let ca = TestCa::new("mesh");
    let payment = start_meshed(&shipped("payment", app.addr), &ca, "payment").await;
    let inbound = payment.running.inbound;
    assert_eq!(
        status(inbound, &ca, "order", "POST", "/v1/payments").await,
        200
    );
    assert_eq!(
        status(inbound, &ca, "gateway", "POST", "/v1/payments").await,
        403
    );
    assert_eq!(
        status(inbound, &ca, "gateway", "GET", "/v1/payments/p-1").await,
        200
    );
    payment.running.stop().await;
}
