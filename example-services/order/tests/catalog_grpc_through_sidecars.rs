//! The saga through real sidecars, order's and catalog's, with the catalog
//! called over gRPC (HTTP/2 prior knowledge, `:authority: catalog`) and
//! over REST: the same orders end the same way. A sidecar's own answer to a
//! gRPC call is an unknown outcome, never the catalog's refusal.

mod common;

use std::net::SocketAddr;

use common::*;
use order::CatalogApi;
use proxy_core::shutdown;

async fn sidecar(yaml: &str) -> (sidecar::Sidecar, SocketAddr, SocketAddr) {
    let config = sidecar::SidecarConfig::from_yaml(yaml, &|_| None).expect("sidecar config");
    let sidecar = sidecar::Sidecar::bind(config).await.expect("sidecar binds");
    let (inbound, outbound) = (sidecar.inbound_addr(), sidecar.outbound_addr());
    (sidecar, inbound, outbound)
}

/// Catalog's sidecar in front of the catalog, and order's sidecar with
/// routes to it (`protocol: auto`: HTTP/2 for gRPC, HTTP/1.1 for REST) and
/// to payment; the order sidecar's outbound address is returned.
async fn mesh(peers: &Peers, signal: &shutdown::Shutdown) -> SocketAddr {
    let catalog_app = peers.catalog.addr;
    let (catalog_sidecar, catalog_inbound, _) = sidecar(&format!(
        "service: catalog\n\
         inbound: {{ address: 127.0.0.1:0, app: {catalog_app}, protocol: auto }}\n\
         outbound: {{ address: 127.0.0.1:0 }}\n\
         admin: {{ address: 127.0.0.1:0 }}\n"
    ))
    .await;
    let payment = peers.payment.addr;
    let (order_sidecar, _, outbound) = sidecar(&format!(
        "service: order\n\
         inbound: {{ address: 127.0.0.1:0, app: 127.0.0.1:9 }}\n\
         outbound: {{ address: 127.0.0.1:0 }}\n\
         admin: {{ address: 127.0.0.1:0 }}\n\
         services:\n  \
           catalog: {{ endpoints: [{catalog_inbound}], protocol: auto }}\n  \
           payment: {{ endpoints: [{payment}] }}\n"
    ))
    .await;
    tokio::spawn(catalog_sidecar.serve(signal.clone()));
    tokio::spawn(order_sidecar.serve(signal.clone()));
    outbound
}

fn through(peers: &Peers, outbound: SocketAddr, api: CatalogApi) -> order::Config {
    let mut config = peers.order_config();
    config.outbound_proxy = Some(outbound);
    config.catalog_url = "http://catalog".into();
    config.payment_url = "http://payment".into();
    config.catalog_api = api;
    config
}

#[tokio::test]
async fn the_saga_ends_the_same_over_grpc_and_rest_through_the_sidecars() {
    let peers = Peers::start().await;
    let (trigger, signal) = shutdown::channel();
    let outbound = mesh(&peers, &signal).await;
    let lamp = peers.product("LAMP", 4000, 10).await;
    peers
        .faults(serde_json::json!({"decline_over_minor": 10_000}))
        .await;

    for (api, tag) in [(CatalogApi::Grpc, "grpc"), (CatalogApi::Rest, "rest")] {
        let order = start_order(through(&peers, outbound, api)).await;
        let before = peers.stock(&lamp).await;

        let placed = place(
            &peers.client,
            &order,
            &format!("{tag}-ok"),
            "ann",
            &[(&lamp, 2)],
        )
        .await;
        assert_eq!(
            placed.json["status"], "confirmed",
            "{tag}: {:?}",
            placed.json
        );
        assert_eq!(placed.json["total_minor"], 8000, "{tag}");
        let id = placed.json["id"].as_str().unwrap().to_owned();
        let reservation = placed.json["reservation_id"].as_str().unwrap().to_owned();
        assert_eq!(peers.reservation(&reservation).await["status"], "committed");
        assert_eq!(peers.stock(&lamp).await, before - 2, "{tag}");
        assert_eq!(peers.payments_of(&id).await.len(), 1, "{tag}");

        let short = place(
            &peers.client,
            &order,
            &format!("{tag}-short"),
            "bob",
            &[(&lamp, 99)],
        )
        .await;
        assert_eq!(short.json["status"], "failed", "{tag}: {:?}", short.json);
        assert!(
            short.json["failure_reason"]
                .as_str()
                .unwrap()
                .contains("insufficient stock"),
            "{tag}: {:?}",
            short.json
        );
        assert_eq!(peers.stock(&lamp).await, before - 2, "{tag}: nothing held");

        let declined = place(
            &peers.client,
            &order,
            &format!("{tag}-declined"),
            "carol",
            &[(&lamp, 3)],
        )
        .await;
        assert_eq!(
            declined.json["status"], "failed",
            "{tag}: {:?}",
            declined.json
        );
        let steps = saga_steps(&peers.client, &order, declined.json["id"].as_str().unwrap()).await;
        assert!(
            steps.contains(&("release".to_owned(), "succeeded".to_owned())),
            "{tag}: {steps:?}"
        );
        assert_eq!(peers.stock(&lamp).await, before - 2, "{tag}: released");
        order.stop().await.unwrap();
    }
    trigger.trigger();
}

#[tokio::test]
async fn a_sidecars_own_answer_to_a_grpc_call_is_not_the_catalogs_refusal() {
    let peers = Peers::start().await;
    let lamp = peers.product("LAMP", 4000, 3).await;
    // Order's sidecar knows payment but not catalog.
    let payment = peers.payment.addr;
    let (order_sidecar, _, outbound) = sidecar(&format!(
        "service: order\n\
         inbound: {{ address: 127.0.0.1:0, app: 127.0.0.1:9 }}\n\
         outbound: {{ address: 127.0.0.1:0 }}\n\
         admin: {{ address: 127.0.0.1:0 }}\n\
         services:\n  payment: {{ endpoints: [{payment}] }}\n"
    ))
    .await;
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(order_sidecar.serve(signal));

    let order = start_order(through(&peers, outbound, CatalogApi::Grpc)).await;
    let placed = place(&peers.client, &order, "no-route", "ann", &[(&lamp, 1)]).await;
    assert_eq!(
        placed.json["status"], "pending",
        "unknown, not refused: {:?}",
        placed.json
    );
    assert!(placed.json["failure_reason"].is_null(), "{:?}", placed.json);
    let id = placed.json["id"].as_str().unwrap().to_owned();
    let log = peers
        .client
        .get(&format!("{}/v1/orders/{id}/saga", order.url()))
        .await;
    let last = log.json["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["step"], "reserve");
    assert_eq!(last["outcome"], "retry_later");
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("unknown-destination"),
        "{last:?}"
    );
    assert_eq!(peers.stock(&lamp).await, 3, "nothing reached the catalog");
    order.stop().await.unwrap();
    trigger.trigger();
}
