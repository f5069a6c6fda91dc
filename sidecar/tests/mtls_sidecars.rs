//! Mutual TLS between real sidecars over sockets, and authorization by the
//! identity the caller's certificate proves: the payment sidecar lets only
//! order (and the gateway) `POST /v1/payments`, everything else needs any
//! identity of the trust domain (the default with an identity).

mod mesh;
mod support;

use std::net::SocketAddr;

use mesh::ca::{TestCa, raw_client};
use mesh::{Meshed, id, start_meshed, tls_request, yaml};
use support::{Upstream, admin, client, send};

const PEER_HEADER: &str = "x-weir-peer-identity";

fn payment_inbound(mode: &str) -> String {
    format!(
        "  tls: {{ mode: {mode} }}\n  authorization:\n    rules:\n      - paths: [/v1/payments, /v1/payments/*]\n        methods: [POST]\n        identities: [{}, {}]\n      - paths: [/open]\n        allow: allow-all\n",
        id("order"),
        id("gateway")
    )
}

fn to_payment(payment: SocketAddr) -> String {
    format!(
        "  payment:\n    endpoints: [{payment}]\n    tls: {{ identity: {} }}\n",
        id("payment")
    )
}

struct Shop {
    ca: TestCa,
    app: Upstream,
    payment: Meshed,
    order: Meshed,
    catalog: Meshed,
}

async fn shop(mode: &str) -> Shop {
    let ca = TestCa::new("mesh");
    let app = Upstream::start().await;
    let payment = start_meshed(&yaml(app.addr, &payment_inbound(mode), ""), &ca, "payment").await;
    // The callers' own apps are never reached in these tests.
    let callers = yaml(app.addr, "", &to_payment(payment.running.inbound));
    let order = start_meshed(&callers, &ca, "order").await;
    let catalog = start_meshed(&callers, &ca, "catalog").await;
    Shop {
        ca,
        app,
        payment,
        order,
        catalog,
    }
}

/// The last request the app saw, its `x-weir-peer-identity`.
fn last_peer_header(app: &Upstream) -> Option<String> {
    app.seen_header(usize::try_from(app.hits()).unwrap() - 1, PEER_HEADER)
}

#[tokio::test]
async fn an_allowed_identity_gets_through_and_the_app_learns_it_from_the_certificate_only() {
    let s = shop("permissive").await;
    let c = client();
    // Order's app forges the gateway's identity; its sidecar forwards the
    // header, the payment sidecar replaces it with what the certificate proved.
    let req = http::Request::post(format!("http://{}/v1/payments", s.order.running.outbound))
        .header("host", "payment")
        .header(PEER_HEADER, id("gateway"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(last_peer_header(&s.app), Some(id("order")));

    let m = admin(&c, s.payment.running.admin, "/metrics").await.body;
    let line = format!(
        "weir_sidecar_inbound_peer_requests_total{{peer=\"{}\",decision=\"allowed\"}} 1",
        id("order")
    );
    assert!(m.contains(&line), "{line} not in\n{m}");
    let m = admin(&c, s.order.running.admin, "/metrics").await.body;
    assert!(
        m.contains(
            "weir_sidecar_destination_transport{destination=\"payment\",transport=\"mtls\"} 1"
        ),
        "{m}"
    );
    let state = admin(&c, s.payment.running.admin, "/state").await.json();
    assert_eq!(
        state["inbound"]["authorization_default"],
        "all-authenticated"
    );
}

#[tokio::test]
async fn an_identity_the_policy_does_not_allow_gets_403_naming_no_internal_detail() {
    let s = shop("permissive").await;
    let c = client();
    let denied = send(
        &c,
        s.catalog.running.outbound,
        "POST",
        "payment",
        "/v1/payments/9",
        "",
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.headers["content-type"], "application/problem+json");
    assert_eq!(denied.json()["type"], "https://weir.dev/problems/forbidden");
    for secret in ["spiffe", "catalog", "order", "rule"] {
        assert!(!denied.body.contains(secret), "{secret} in {}", denied.body);
    }
    assert_eq!(s.app.hits(), 0, "a denied call never reaches the app");
    // Other methods fall to the default: any identity of the trust domain.
    let read = send(
        &c,
        s.catalog.running.outbound,
        "GET",
        "payment",
        "/v1/payments/9",
        "",
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(last_peer_header(&s.app), Some(id("catalog")));
}

#[tokio::test]
async fn plaintext_and_anonymous_callers_get_403_by_default_and_never_an_identity() {
    let s = shop("permissive").await;
    let c = client();
    let inbound = s.payment.running.inbound;
    let plain = send(&c, inbound, "GET", "payment", "/v1/payments", "").await;
    assert_eq!(plain.status, 403);
    let anon = tls_request(inbound, raw_client(None), "GET", "/v1/payments", &[])
        .await
        .unwrap();
    assert_eq!(anon.status, 403);
    // A path open to everyone: the forged header does not survive.
    let forged = [(PEER_HEADER, "spiffe://weir.local/ns/default/sa/order")];
    let open = tls_request(inbound, raw_client(None), "GET", "/open", &forged)
        .await
        .unwrap();
    assert_eq!(open.status, 200);
    assert_eq!(last_peer_header(&s.app), None);
    let req = http::Request::get(format!("http://{inbound}/open"))
        .header(PEER_HEADER, id("order"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(c.request(req).await.unwrap().status(), 200);
    assert_eq!(last_peer_header(&s.app), None);
    assert_eq!(s.app.hits(), 2);
}

#[tokio::test]
async fn strict_mode_refuses_plaintext_and_every_bad_certificate() {
    let s = shop("strict").await;
    let inbound = s.payment.running.inbound;
    let plain = client()
        .request(
            http::Request::get(format!("http://{inbound}/open"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(plain.is_err(), "plaintext answered: {plain:?}");
    let rogue = TestCa::new("rogue");
    let refused = [
        ("no certificate", raw_client(None)),
        ("another CA", raw_client(Some(rogue.leaf(&id("order"))))),
        ("expired", raw_client(Some(s.ca.expired_leaf(&id("order"))))),
    ];
    for (what, cfg) in refused {
        let r = tls_request(inbound, cfg, "GET", "/open", &[]).await;
        assert!(r.is_err(), "{what}: {:?}", r.map(|g| g.status));
    }
    let catalog = raw_client(Some(s.ca.leaf(&id("catalog"))));
    let r = tls_request(inbound, catalog, "POST", "/v1/payments", &[]).await;
    assert_eq!(r.unwrap().status, 403);
    let order = raw_client(Some(s.ca.leaf(&id("order"))));
    let r = tls_request(inbound, order, "POST", "/v1/payments", &[]).await;
    assert_eq!(r.unwrap().status, 200);
    assert_eq!(s.app.hits(), 1);
    // And the sidecars themselves still talk.
    let via = send(
        &client(),
        s.order.running.outbound,
        "POST",
        "payment",
        "/v1/payments",
        "",
    )
    .await;
    assert_eq!(via.status, 200);
}

#[tokio::test]
async fn a_server_with_another_identity_is_refused_and_plaintext_is_per_destination() {
    let ca = TestCa::new("mesh");
    let app = Upstream::start().await;
    let payment = start_meshed(&yaml(app.addr, "", ""), &ca, "payment").await;
    let outside = Upstream::start().await;
    let services = format!(
        "  payment:\n    endpoints: [{p}]\n    retry: {{ max_attempts: 1 }}\n    tls: {{ identity: {wrong} }}\n  meshed-outside:\n    endpoints: [{o}]\n    retry: {{ max_attempts: 1 }}\n  outside:\n    endpoints: [{o}]\n    tls: {{ mode: plaintext }}\n",
        p = payment.running.inbound,
        o = outside.addr,
        wrong = id("catalog"),
    );
    let order = start_meshed(&yaml(app.addr, "", &services), &ca, "order").await;
    let c = client();
    let out = order.running.outbound;
    // The payment sidecar proves payment, not the catalog identity expected.
    assert_eq!(send(&c, out, "GET", "payment", "/", "").await.status, 502);
    assert_eq!(app.hits(), 0);
    // A meshed destination never falls back to plaintext…
    let r = send(&c, out, "GET", "meshed-outside", "/", "").await;
    assert!(r.status.is_server_error(), "{}", r.status);
    assert_eq!(outside.hits(), 0);
    // …but one set to plaintext is reached, and shows as such.
    assert_eq!(send(&c, out, "GET", "outside", "/", "").await.status, 200);
    let m = admin(&c, order.running.admin, "/metrics").await.body;
    assert!(
        m.contains(
            "weir_sidecar_destination_transport{destination=\"outside\",transport=\"plaintext\"} 1"
        ),
        "{m}"
    );
}
