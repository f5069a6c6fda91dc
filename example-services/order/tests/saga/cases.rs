//! The order saga against real catalog and payment services (SQLite),
//! whichever of the catalog's APIs the including test crate's
//! `order_config` picks.

use std::time::Duration;

use crate::common::*;
use crate::order_config;
use order::SagaStep;
use serde_json::json;
use service_kit::testing::eventually;

#[tokio::test]
async fn happy_path_confirms_commits_and_charges_once() {
    let peers = Peers::start().await;
    let mug = peers.product("MUG", 1200, 5).await;
    let tea = peers.product("TEA", 450, 5).await;
    let order = start_order(order_config(&peers)).await;

    let r = place(
        &peers.client,
        &order,
        "k-1",
        "alice",
        &[(&mug, 2), (&tea, 1)],
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["status"], "confirmed");
    assert_eq!(r.json["total_minor"], 2 * 1200 + 450);
    assert!(r.json["failure_reason"].is_null());
    let id = r.json["id"].as_str().unwrap();

    assert_eq!((peers.stock(&mug).await, peers.stock(&tea).await), (3, 4));
    let reservation = peers
        .reservation(r.json["reservation_id"].as_str().unwrap())
        .await;
    assert_eq!(reservation["status"], "committed");
    let payments = peers.payments_of(id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["amount_minor"], 2850);
    assert_eq!(payments[0]["status"], "succeeded");
    assert_eq!(
        events(&peers.client, &order, id).await,
        ["order.placed", "order.confirmed"]
    );

    let again = place(
        &peers.client,
        &order,
        "k-1",
        "alice",
        &[(&mug, 2), (&tea, 1)],
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["id"], r.json["id"]);
    assert_eq!(
        peers.stock(&mug).await,
        3,
        "the same key places nothing new"
    );

    let list = peers
        .client
        .get(&format!("{}/v1/orders?customer=alice", order.url()))
        .await;
    assert_eq!(list.json["items"].as_array().unwrap().len(), 1);
    let log = peers
        .client
        .get(&format!("{}/v1/orders/{id}/saga", order.url()))
        .await;
    let steps: Vec<&str> = log.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["place", "reserve", "charge", "commit"]);
    order.stop().await.unwrap();
}

#[tokio::test]
async fn declined_payment_releases_stock_and_fails_the_order() {
    let peers = Peers::start().await;
    let tv = peers.product("TV", 90_000, 2).await;
    peers.faults(json!({"decline_over_minor": 50_000})).await;
    let order = start_order(order_config(&peers)).await;

    let r = place(&peers.client, &order, "k-2", "bob", &[(&tv, 1)]).await;
    assert_eq!(r.json["status"], "failed");
    assert!(
        r.json["failure_reason"]
            .as_str()
            .unwrap()
            .contains("declined"),
        "{:?}",
        r.json
    );
    assert_eq!(peers.stock(&tv).await, 2, "stock released");
    let reservation = peers
        .reservation(r.json["reservation_id"].as_str().unwrap())
        .await;
    assert_eq!(reservation["status"], "released");
    let id = r.json["id"].as_str().unwrap();
    assert_eq!(
        events(&peers.client, &order, id).await,
        ["order.placed", "order.failed"]
    );
    assert_eq!(
        peers.charge_requests().await,
        1,
        "a decline is final, not retried"
    );
    order.stop().await.unwrap();
}

#[tokio::test]
async fn short_stock_fails_without_charging() {
    let peers = Peers::start().await;
    let lamp = peers.product("LAMP", 3000, 1).await;
    let order = start_order(order_config(&peers)).await;
    let r = place(&peers.client, &order, "k-3", "carol", &[(&lamp, 2)]).await;
    assert_eq!(r.json["status"], "failed");
    assert!(
        r.json["failure_reason"]
            .as_str()
            .unwrap()
            .contains("insufficient stock")
    );
    assert_eq!(peers.charge_requests().await, 0);
    assert_eq!(peers.stock(&lamp).await, 1);
    order.stop().await.unwrap();
}

#[tokio::test]
async fn failing_payment_is_retried_and_charged_exactly_once() {
    let peers = Peers::start().await;
    let book = peers.product("BOOK", 2500, 3).await;
    peers.faults(json!({"failure_rate": 1.0})).await;
    let order = start_order(order_config(&peers)).await;

    // Every try fails: the order stays pending with its stock held, nothing charged.
    let r = place(&peers.client, &order, "k-4", "dave", &[(&book, 1)]).await;
    assert_eq!(r.json["status"], "pending", "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(peers.charge_requests().await, 3, "three tries");
    assert!(peers.payments_of(&id).await.is_empty());
    assert_eq!(peers.stock(&book).await, 2);

    // The processor recovers; repeating the request with the same key pushes the saga on.
    peers.faults(json!({"failure_rate": 0.0})).await;
    let r = place(&peers.client, &order, "k-4", "dave", &[(&book, 1)]).await;
    assert_eq!(r.json["status"], "confirmed", "{:?}", r.json);
    assert_eq!(peers.payments_of(&id).await.len(), 1);
    assert_eq!(peers.stock(&book).await, 2);
    order.stop().await.unwrap();
}

#[tokio::test]
async fn slow_payment_times_out_and_the_retry_finds_the_first_charge() {
    let peers = Peers::start().await;
    let pen = peers.product("PEN", 300, 10).await;
    // The processor records the charge, then answers after 5 s; the order
    // service gives up on each try after 500 ms.
    peers.faults(json!({"latency_ms": 5000})).await;
    let mut config = order_config(&peers);
    config.call_timeout = Duration::from_millis(500);
    let order = start_order(config).await;

    let r = place(&peers.client, &order, "k-5", "erin", &[(&pen, 1)]).await;
    assert_eq!(r.json["status"], "pending", "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert!(peers.charge_requests().await >= 2, "retried after timeouts");
    assert_eq!(
        peers.payments_of(&id).await.len(),
        1,
        "the first try charged; retries did not charge again"
    );
    order.stop().await.unwrap();

    // Restarted with a patient timeout, recovery finishes the order with that same payment.
    peers.faults(json!({"latency_ms": 0})).await;
    let order = start_order(order_config(&peers)).await;
    let done = settled(&peers.client, &order, &id).await;
    assert_eq!(done["status"], "confirmed");
    let payments = peers.payments_of(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(done["payment_id"], payments[0]["id"]);
    order.stop().await.unwrap();
}

/// Crashes the order service after `step`, restarts it, and returns the settled order.
async fn crash_and_recover(
    peers: &Peers,
    step: SagaStep,
    key: &str,
    product: &str,
) -> serde_json::Value {
    let crashing = start_order(crash_after(order_config(peers), step)).await;
    let r = place(&peers.client, &crashing, key, "frank", &[(product, 1)]).await;
    assert_eq!(
        r.json["status"], "pending",
        "stopped after {step:?}: {:?}",
        r.json
    );
    let id = r.json["id"].as_str().unwrap().to_owned();
    crashing.kill();

    let order = start_order(order_config(peers)).await;
    let done = settled(&peers.client, &order, &id).await;
    order.stop().await.unwrap();
    done
}

#[tokio::test]
async fn crash_after_each_step_is_recovered_on_restart() {
    let peers = Peers::start().await;
    let chair = peers.product("CHAIR", 8000, 10).await;
    for (i, step) in [SagaStep::Reserve, SagaStep::Charge]
        .into_iter()
        .enumerate()
    {
        let done = crash_and_recover(&peers, step, &format!("crash-{i}"), &chair).await;
        assert_eq!(done["status"], "confirmed", "after {step:?}: {done:?}");
        let id = done["id"].as_str().unwrap();
        assert_eq!(
            peers.payments_of(id).await.len(),
            1,
            "after {step:?}: one charge"
        );
        assert_eq!(
            peers
                .reservation(done["reservation_id"].as_str().unwrap())
                .await["status"],
            "committed"
        );
    }
    assert_eq!(peers.stock(&chair).await, 8);

    // Crash after a decline was recorded but before the stock went back.
    peers.faults(json!({"decline_over_minor": 1})).await;
    let done = crash_and_recover(&peers, SagaStep::Charge, "crash-declined", &chair).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(
        peers
            .reservation(done["reservation_id"].as_str().unwrap())
            .await["status"],
        "released"
    );
    assert_eq!(
        peers.stock(&chair).await,
        8,
        "no stock stays reserved for the failed order"
    );
}

#[tokio::test]
async fn expired_reservation_at_commit_refunds_the_payment() {
    // Reservations expire at once, so the commit after payment is refused.
    let peers = Peers::start_with(Duration::ZERO).await;
    let cup = peers.product("CUP", 900, 4).await;
    let order = start_order(order_config(&peers)).await;
    let r = place(&peers.client, &order, "k-7", "gina", &[(&cup, 1)]).await;
    assert_eq!(r.json["status"], "failed", "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap();
    let payments = peers.payments_of(id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(
        payments[0]["status"], "refunded",
        "a charge for a failed order is refunded"
    );
    eventually(Duration::from_secs(10), async || {
        if peers.stock(&cup).await == 4 {
            Ok(())
        } else {
            Err("stock never came back".to_owned())
        }
    })
    .await;
    order.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_orders_for_the_last_unit_have_one_winner() {
    let peers = Peers::start().await;
    let last = peers.product("LAST", 5000, 1).await;
    let order = start_order(order_config(&peers)).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = peers.client.clone();
        let url = format!("{}/v1/orders", order.url());
        let body =
            json!({"customer_id": format!("c{i}"), "items": [{"product_id": last, "quantity": 1}]});
        tasks.push(tokio::spawn(async move {
            client
                .post(&url, &[("idempotency-key", &format!("race-{i}"))], &body)
                .await
                .json
        }));
    }
    let mut confirmed = 0;
    for task in tasks {
        let json = task.await.unwrap();
        match json["status"].as_str().unwrap() {
            "confirmed" => confirmed += 1,
            "failed" => assert!(
                json["failure_reason"]
                    .as_str()
                    .unwrap()
                    .contains("insufficient stock")
            ),
            other => panic!("unexpected status {other}: {json:?}"),
        }
    }
    assert_eq!(confirmed, 1);
    assert_eq!(peers.stock(&last).await, 0);
    assert_eq!(peers.charge_requests().await, 1);
    order.stop().await.unwrap();
}

#[tokio::test]
async fn validation_and_idempotency_key_rules() {
    let peers = Peers::start().await;
    let p = peers.product("P", 100, 5).await;
    let order = start_order(order_config(&peers)).await;
    let url = format!("{}/v1/orders", order.url());
    let body = json!({"customer_id": "h", "items": [{"product_id": p, "quantity": 1}]});

    let no_key = peers.client.post(&url, &[], &body).await;
    assert_eq!(no_key.status, 422);
    assert_eq!(no_key.json["field"], "Idempotency-Key");
    assert_eq!(no_key.headers["content-type"], "application/problem+json");

    for (bad, field) in [
        (json!({"customer_id": "h", "items": []}), "items"),
        (
            json!({"customer_id": "", "items": [{"product_id": p, "quantity": 1}]}),
            "customer_id",
        ),
        (
            json!({"customer_id": "h", "items": [{"product_id": p, "quantity": 0}]}),
            "items[0].quantity",
        ),
        (
            json!({"customer_id": "h", "items": [{"product_id": p, "quantity": "one"}]}),
            "items[0].quantity",
        ),
        (
            json!({"items": [{"product_id": p, "quantity": 1}]}),
            "customer_id",
        ),
        (
            json!({"customer_id": "h", "items": [{"product_id": "nope", "quantity": 1}], "extra": 1}),
            "extra",
        ),
    ] {
        let r = peers
            .client
            .post(&url, &[("idempotency-key", "v")], &bad)
            .await;
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.json["field"], field, "{bad}");
    }

    let first = peers
        .client
        .post(&url, &[("idempotency-key", "same")], &body)
        .await;
    assert_eq!(first.status, 201);
    let other = json!({"customer_id": "h", "items": [{"product_id": p, "quantity": 2}]});
    let reused = peers
        .client
        .post(&url, &[("idempotency-key", "same")], &other)
        .await;
    assert_eq!(reused.status, 409);
    assert_eq!(
        reused.json["type"],
        "https://weir.dev/problems/idempotency-key-reused"
    );
    assert_eq!(peers.client.get(&format!("{url}/nope")).await.status, 404);
    assert_eq!(peers.client.get(&url).await.json["field"], "customer");
    let pending = peers
        .client
        .get(&format!("{}/v1/outbox?status=pending", order.url()))
        .await;
    assert_eq!(
        pending.json["items"].as_array().unwrap().len(),
        2,
        "placed + confirmed stay pending without AMQP"
    );
    let doc = peers
        .client
        .get(&format!("{}/openapi.json", order.url()))
        .await;
    assert!(doc.json["paths"]["/v1/orders"]["post"].is_object());
    order.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_duplicates_of_one_request_are_one_order() {
    let peers = Peers::start().await;
    let p = peers.product("DUP", 700, 10).await;
    let order = start_order(order_config(&peers)).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = peers.client.clone();
        let url = format!("{}/v1/orders", order.url());
        let body = json!({"customer_id": "dup", "items": [{"product_id": p, "quantity": 1}]});
        tasks.push(tokio::spawn(async move {
            client
                .post(&url, &[("idempotency-key", "dup-key")], &body)
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status == 201 || r.status == 200, "{:?}", r.json);
        ids.push(r.json["id"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one key");
    let done = settled(&peers.client, &order, &ids[0]).await;
    assert_eq!(done["status"], "confirmed");
    assert_eq!(peers.stock(&p).await, 9);
    assert_eq!(peers.payments_of(&ids[0]).await.len(), 1);
    order.stop().await.unwrap();
}

#[tokio::test]
async fn unreachable_catalog_leaves_the_order_pending_then_fails_it_after_the_deadline() {
    let peers = Peers::start().await;
    // A port with nothing listening: bind, note it, close.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = order_config(&peers);
    config.catalog_url = format!("http://{closed}");
    let order = start_order(config.clone()).await;
    let r = place(
        &peers.client,
        &order,
        "k-down",
        "lee",
        &[("some-product", 1)],
    )
    .await;
    assert_eq!(r.json["status"], "pending", "{:?}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let log = peers
        .client
        .get(&format!("{}/v1/orders/{id}/saga", order.url()))
        .await;
    assert_eq!(log.json["items"][1]["outcome"], "retry_later");
    order.stop().await.unwrap();

    config.reserve_deadline = Duration::ZERO;
    let order = start_order(config).await;
    let done = settled(&peers.client, &order, &id).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["failure_reason"]
            .as_str()
            .unwrap()
            .starts_with("catalog unavailable"),
        "{done:?}"
    );
    assert_eq!(peers.charge_requests().await, 0);
    order.stop().await.unwrap();
}
