//! The saga through a real sidecar: the sidecar's own answers (here `404
//! unknown-destination`, marked `x-weir-error`) are not the payment
//! service's word. The charge's outcome is unknown, so the order stays
//! pending and is retried; it is never failed as "payment rejected".

mod common;

use common::*;
use proxy_core::shutdown;

/// Order's sidecar knows catalog but not payment: every charge gets the
/// sidecar's own 404.
async fn sidecar_without_payment(
    catalog: &str,
) -> (std::net::SocketAddr, shutdown::ShutdownTrigger) {
    let catalog = catalog.trim_start_matches("http://");
    let yaml = format!(
        "service: order\n\
         inbound: {{ address: 127.0.0.1:0, app: 127.0.0.1:9 }}\n\
         outbound: {{ address: 127.0.0.1:0 }}\n\
         admin: {{ address: 127.0.0.1:0 }}\n\
         services:\n  catalog: {{ endpoints: [{catalog}], protocol: auto }}\n"
    );
    let config = sidecar::SidecarConfig::from_yaml(&yaml, &|_| None).expect("sidecar config");
    let sidecar = sidecar::Sidecar::bind(config).await.expect("sidecar binds");
    let outbound = sidecar.outbound_addr();
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(sidecar.serve(signal));
    (outbound, trigger)
}

#[tokio::test]
async fn a_sidecars_own_404_is_not_the_payment_services_refusal() {
    let peers = Peers::start().await;
    let lamp = peers.product("LAMP", 4000, 3).await;
    let (outbound, stop_sidecar) = sidecar_without_payment(&peers.catalog.url()).await;

    let mut config = peers.order_config();
    config.outbound_proxy = Some(outbound);
    config.catalog_url = "http://catalog".into();
    config.payment_url = "http://payment".into();
    let order = start_order(config.clone()).await;

    let r = place(&peers.client, &order, "sc-1", "ann", &[(&lamp, 1)]).await;
    assert_eq!(
        r.json["status"], "pending",
        "the charge's outcome is unknown, not refused: {:?}",
        r.json
    );
    assert!(r.json["failure_reason"].is_null(), "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let steps = saga_steps(&peers.client, &order, &id).await;
    assert_eq!(
        steps.last(),
        Some(&("charge".to_owned(), "retry_later".to_owned())),
        "{steps:?}"
    );
    let log = peers
        .client
        .get(&format!("{}/v1/orders/{id}/saga", order.url()))
        .await;
    let detail = log.json["items"].as_array().unwrap().last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("unknown-destination"), "{detail}");
    assert_eq!(peers.charge_requests().await, 0, "nothing reached payment");
    assert_eq!(peers.stock(&lamp).await, 2, "the stock stays held");
    order.stop().await.unwrap();
    stop_sidecar.trigger();

    // With a route to payment the same order is charged once and confirmed.
    let mut direct = config;
    direct.outbound_proxy = None;
    direct.catalog_url = peers.catalog.url();
    direct.payment_url = peers.payment.url();
    let order = start_order(direct).await;
    let done = settled(&peers.client, &order, &id).await;
    assert_eq!(done["status"], "confirmed", "{done:?}");
    assert_eq!(peers.payments_of(&id).await.len(), 1);
    order.stop().await.unwrap();
}
