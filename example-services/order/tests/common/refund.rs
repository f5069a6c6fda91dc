//! The refund scenario both databases run: a payment taken for an order that
//! cannot complete is refunded even though the payment service refuses
//! refunds for a while and the order service restarts meanwhile.

use std::time::Duration;

use serde_json::json;

use super::{Peers, events, order_until, place, saga_steps, settled, start_order};

/// `peers` must expire reservations at once (so the commit after payment is
/// refused and the saga compensates); `config` is the order service's.
pub(crate) async fn refund_survives_failures_and_a_restart(peers: &Peers, config: order::Config) {
    let cup = peers.product("CUP", 900, 4).await;
    peers.faults(json!({"refund_failure_rate": 1.0})).await;
    let order = start_order(config.clone()).await;

    let r = place(&peers.client, &order, "refund-1", "gina", &[(&cup, 1)]).await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["status"], "compensating", "{:?}", r.json);
    assert_eq!(r.json["refund"], "pending");
    let id = r.json["id"].as_str().unwrap().to_owned();
    let payments = peers.payments_of(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "succeeded", "refund refused so far");

    // Retried on its own schedule (the recovery interval is far away), each
    // try counted on the order.
    let retried = order_until(&peers.client, &order, &id, "two failed tries", |o| {
        o["attempts"].as_i64().unwrap_or(0) >= 2
    })
    .await;
    assert_eq!(retried["status"], "compensating");
    assert!(retried["next_attempt_at_ms"].is_i64(), "{retried:?}");
    assert!(peers.refund_requests().await >= 2 * u64::from(config.call_attempts));

    // A crash while the refund is owed: the restarted service picks it up.
    order.kill();
    let before_restart = peers.refund_requests().await;
    let order = start_order(config.clone()).await;
    let calls = u64::from(config.call_attempts);
    service_kit::testing::eventually(Duration::from_secs(20), async || {
        let seen = peers.refund_requests().await;
        if seen >= before_restart + calls {
            Ok(())
        } else {
            Err(format!(
                "no full refund try after the restart ({seen} requests)"
            ))
        }
    })
    .await;
    let resumed = order_until(&peers.client, &order, &id, "still owed", |o| {
        o["status"] == "compensating"
    })
    .await;
    assert_eq!(resumed["refund"], "pending");

    // The payment service heals: the next scheduled try refunds.
    peers.faults(json!({})).await;
    let done = settled(&peers.client, &order, &id).await;
    assert_eq!(done["status"], "failed", "{done:?}");
    assert_eq!(done["refund"], "completed");
    assert_eq!(done["attempts"], 0);
    assert!(done["next_attempt_at_ms"].is_null());
    assert!(
        done["failure_reason"]
            .as_str()
            .unwrap()
            .contains("stock could not be committed"),
        "{done:?}"
    );
    let payments = peers.payments_of(&id).await;
    assert_eq!(payments.len(), 1, "refunded, never charged again");
    assert_eq!(payments[0]["status"], "refunded");

    let steps = saga_steps(&peers.client, &order, &id).await;
    let refund_outcomes: Vec<&str> = steps
        .iter()
        .filter(|(step, _)| step == "refund")
        .map(|(_, outcome)| outcome.as_str())
        .collect();
    assert!(
        refund_outcomes.len() >= 3
            && refund_outcomes[..refund_outcomes.len() - 1]
                .iter()
                .all(|o| *o == "retry_later"),
        "{steps:?}"
    );
    assert_eq!(refund_outcomes.last(), Some(&"succeeded"));
    assert_eq!(steps.last().map(|(s, _)| s.as_str()), Some("release"));
    assert_eq!(
        events(&peers.client, &order, &id).await,
        ["order.placed", "order.failed"],
        "compensating is no event; the order ends once"
    );
    order.stop().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while peers.stock(&cup).await != 4 {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await
    .expect("stock comes back");
}
