//! The in-process stack the order tests drive: real catalog, payment and order
//! services on 127.0.0.1:0, each with its own SQLite file (or PostgreSQL for
//! order), talking over real HTTP.

#![allow(dead_code)]

pub(crate) mod refund;

use std::time::Duration;

use order::SagaStep;
use serde_json::{Value, json};
use service_kit::testing::{Running, TestClient, TestDir, TestResponse, eventually};

pub(crate) struct Peers {
    pub(crate) dir: TestDir,
    pub(crate) catalog: Running<catalog::Error>,
    pub(crate) payment: Running<payment::Error>,
    pub(crate) client: TestClient,
}

impl Peers {
    pub(crate) async fn start() -> Self {
        Self::start_with(Duration::from_secs(15 * 60)).await
    }

    pub(crate) async fn start_with(reservation_ttl: Duration) -> Self {
        Self::start_configured(|c| c.reservation_ttl = reservation_ttl).await
    }

    /// Peers whose catalog `tweak` configures further (event consumers, tracing).
    pub(crate) async fn start_configured(tweak: impl FnOnce(&mut catalog::Config)) -> Self {
        let dir = TestDir::new("order");
        let mut catalog_config = catalog::Config::new(dir.path());
        catalog_config.seed = false;
        catalog_config.reservation_ttl = Duration::from_secs(15 * 60);
        tweak(&mut catalog_config);
        catalog_config.sweep_interval = Duration::from_millis(50);
        let catalog = Running::start(move |l, s| catalog::run(catalog_config, l, s)).await;
        let payment_config = payment::Config::new(dir.path()).with_faults_enabled();
        let payment = Running::start(move |l, s| payment::run(payment_config, l, s)).await;
        Self {
            dir,
            catalog,
            payment,
            client: TestClient::new(),
        }
    }

    /// An order config pointing straight at the peers, with quick retries.
    pub(crate) fn order_config(&self) -> order::Config {
        let mut config = order::Config::new(self.dir.path());
        config.catalog_url = self.catalog.url();
        config.payment_url = self.payment.url();
        config.call_attempts = 3;
        config.retry_backoff = Duration::from_millis(10);
        config.call_timeout = Duration::from_secs(10);
        config.refund_backoff = Duration::from_millis(20);
        config.refund_backoff_max = Duration::from_millis(100);
        config
    }

    pub(crate) async fn product(&self, sku: &str, price: i64, stock: i64) -> String {
        let body = json!({"sku": sku, "name": sku, "price_minor": price, "currency": "EUR", "stock": stock});
        let r = self
            .client
            .post(
                &format!("{}/v1/products", self.catalog.url()),
                &[("x-weir-admin", "true")],
                &body,
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn stock(&self, product: &str) -> i64 {
        self.client
            .get(&format!("{}/v1/products/{product}", self.catalog.url()))
            .await
            .json["stock"]
            .as_i64()
            .unwrap()
    }

    pub(crate) async fn payments_of(&self, order_id: &str) -> Vec<Value> {
        let r = self
            .client
            .get(&format!(
                "{}/v1/payments?order_id={order_id}",
                self.payment.url()
            ))
            .await;
        r.json["items"].as_array().unwrap().clone()
    }

    pub(crate) async fn faults(&self, settings: Value) -> Value {
        let r = self
            .client
            .put(
                &format!("{}/admin/faults", self.payment.url()),
                &[],
                &settings,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        r.json
    }

    pub(crate) async fn refund_requests(&self) -> u64 {
        self.client
            .get(&format!("{}/admin/faults", self.payment.url()))
            .await
            .json["refund_requests"]
            .as_u64()
            .unwrap()
    }

    pub(crate) async fn charge_requests(&self) -> u64 {
        self.client
            .get(&format!("{}/admin/faults", self.payment.url()))
            .await
            .json["charge_requests"]
            .as_u64()
            .unwrap()
    }

    pub(crate) async fn reservation(&self, id: &str) -> Value {
        self.client
            .get(&format!("{}/v1/reservations/{id}", self.catalog.url()))
            .await
            .json
    }
}

pub(crate) async fn start_order(config: order::Config) -> Running<order::Error> {
    Running::start(move |l, s| order::run(config, l, s)).await
}

pub(crate) fn crash_after(mut config: order::Config, step: SagaStep) -> order::Config {
    config.crash_after_step = Some(step);
    config
}

pub(crate) async fn place(
    client: &TestClient,
    order: &Running<order::Error>,
    key: &str,
    customer: &str,
    items: &[(&str, i64)],
) -> TestResponse {
    let items: Vec<Value> = items
        .iter()
        .map(|(p, q)| json!({"product_id": p, "quantity": q}))
        .collect();
    let body = json!({"customer_id": customer, "items": items});
    client
        .post(
            &format!("{}/v1/orders", order.url()),
            &[("idempotency-key", key)],
            &body,
        )
        .await
}

/// Polls the order until it is `confirmed` or `failed` (recovery runs in
/// the background), bounded.
pub(crate) async fn settled(client: &TestClient, order: &Running<order::Error>, id: &str) -> Value {
    eventually(Duration::from_secs(20), async || {
        let r = client.get(&format!("{}/v1/orders/{id}", order.url())).await;
        if r.json["status"] == "confirmed" || r.json["status"] == "failed" {
            Ok(r.json)
        } else {
            Err(format!("order {id} still in progress: {:?}", r.json))
        }
    })
    .await
}

/// Polls the order until `check` accepts it, bounded.
pub(crate) async fn order_until(
    client: &TestClient,
    order: &Running<order::Error>,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(20), async || {
        let r = client.get(&format!("{}/v1/orders/{id}", order.url())).await;
        if check(&r.json) {
            Ok(r.json)
        } else {
            Err(format!("order {id}: waiting for {what}: {:?}", r.json))
        }
    })
    .await
}

/// The (step, outcome) pairs of an order's saga log.
pub(crate) async fn saga_steps(
    client: &TestClient,
    order: &Running<order::Error>,
    id: &str,
) -> Vec<(String, String)> {
    let log = client
        .get(&format!("{}/v1/orders/{id}/saga", order.url()))
        .await;
    log.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub(crate) async fn events(
    client: &TestClient,
    order: &Running<order::Error>,
    id: &str,
) -> Vec<String> {
    let r = client
        .get(&format!("{}/v1/outbox?order_id={id}", order.url()))
        .await;
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}
