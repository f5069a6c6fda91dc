//! Order's own spans, and the trace context it hands to catalog and payment:
//! all three services run with tracing on (spans recorded in memory), and
//! placing an order must yield one trace in which catalog's and payment's
//! SERVER spans hang under order's CLIENT spans, which hang under order's
//! SERVER span, which hangs under whoever called order.

use std::time::Duration;

use serde_json::json;
use service_kit::telemetry::ServiceTelemetry;
use service_kit::testing::{
    RecordedSpan, Running, SpanRecorder, TestClient, TestDir, eventually, recording_telemetry,
};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The span id of the (pretend) sidecar that called order.
const CALLER_SPAN: &str = "00f067aa0ba902b7";

struct Traced {
    dir: TestDir,
    catalog: Running<catalog::Error>,
    payment: Running<payment::Error>,
    order: Running<order::Error>,
    recorders: [SpanRecorder; 3],
    client: TestClient,
}

async fn start() -> Traced {
    let dir = TestDir::new("order-tracing");
    let (catalog_t, catalog_rec) = recording_telemetry("catalog");
    let (payment_t, payment_rec) = recording_telemetry("payment");
    let (order_t, order_rec) = recording_telemetry("order");

    let mut config = catalog::Config::new(dir.path());
    config.seed = false;
    config.telemetry = catalog_t;
    let catalog = Running::start(move |l, s| catalog::run(config, l, s)).await;
    let mut config = payment::Config::new(dir.path()).with_faults_enabled();
    config.telemetry = payment_t;
    let payment = Running::start(move |l, s| payment::run(config, l, s)).await;
    let config = order_config(&dir, &catalog, &payment, order_t);
    let order = Running::start(move |l, s| order::run(config, l, s)).await;
    Traced {
        dir,
        catalog,
        payment,
        order,
        recorders: [catalog_rec, payment_rec, order_rec],
        client: TestClient::new(),
    }
}

fn order_config(
    dir: &TestDir,
    catalog: &Running<catalog::Error>,
    payment: &Running<payment::Error>,
    telemetry: ServiceTelemetry,
) -> order::Config {
    let mut config = order::Config::new(dir.path());
    config.catalog_url = catalog.url();
    config.payment_url = payment.url();
    config.call_attempts = 1;
    config.call_timeout = Duration::from_secs(10);
    config.telemetry = telemetry;
    config
}

impl Traced {
    async fn product(&self) -> String {
        let r = self
            .client
            .post(
                &format!("{}/v1/products", self.catalog.url()),
                &[("x-weir-admin", "true")],
                &json!({"sku": "MUG", "name": "Mug", "price_minor": 1200, "currency": "EUR", "stock": 5}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    /// Every span of every service in `TRACE_ID`.
    async fn trace(&self) -> Vec<RecordedSpan> {
        let mut all = Vec::new();
        for recorder in &self.recorders {
            all.extend(recorder.spans().await);
        }
        all.retain(|s| s.trace_id == TRACE_ID);
        all
    }

    async fn stop(self) {
        self.order.stop().await.unwrap();
        self.catalog.stop().await.unwrap();
        self.payment.stop().await.unwrap();
    }
}

fn one<'a>(spans: &'a [RecordedSpan], service: &str, name: &str) -> &'a RecordedSpan {
    let found: Vec<&RecordedSpan> = spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "one {service} span {name:?} in {spans:#?}");
    found[0]
}

fn parent<'a>(spans: &'a [RecordedSpan], span: &RecordedSpan) -> &'a RecordedSpan {
    let id = span.parent_span_id.as_deref().expect("has a parent");
    spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("parent {id} of {:?} not recorded", span.name))
}

/// Whether `ancestor` is on `span`'s path to the root.
fn descends_from(spans: &[RecordedSpan], span: &RecordedSpan, ancestor: &RecordedSpan) -> bool {
    let mut current = span;
    while let Some(id) = current.parent_span_id.as_deref() {
        if id == ancestor.span_id {
            return true;
        }
        match spans.iter().find(|s| s.span_id == id) {
            Some(p) => current = p,
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn an_order_is_one_trace_through_catalog_and_payment() {
    let t = start().await;
    let mug = t.product().await;
    let r = t
        .client
        .post(
            &format!("{}/v1/orders", t.order.url()),
            &[
                ("idempotency-key", "trace-1"),
                ("traceparent", &format!("00-{TRACE_ID}-{CALLER_SPAN}-01")),
            ],
            &json!({"customer_id": "alice", "items": [{"product_id": mug, "quantity": 2}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.json);
    assert_eq!(r.json["status"], "confirmed");
    let spans = t.trace().await;

    // order's SERVER span continues the caller's trace, named by its route.
    let server = one(&spans, "order", "POST /v1/orders");
    assert_eq!(server.kind, "server");
    assert_eq!(server.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(server.attr("http.route"), Some("/v1/orders"));
    assert_eq!(server.attr("http.response.status_code"), Some("201"));
    assert!(!server.error);

    // Its queries are its children, with the database named.
    let insert = one(&spans, "order", "INSERT orders");
    assert_eq!(insert.kind, "client");
    assert_eq!(parent(&spans, insert).span_id, server.span_id);
    assert_eq!(insert.attr("db.system.name"), Some("sqlite"));
    assert_eq!(insert.attr("db.operation.name"), Some("INSERT"));
    assert_eq!(insert.attr("db.collection.name"), Some("orders"));

    // The saga ran in a spawned task and still belongs to the request.
    let reserve_step = one(&spans, "order", "saga reserve");
    assert_eq!(parent(&spans, reserve_step).span_id, server.span_id);
    assert_eq!(reserve_step.attr("weir.saga.outcome"), Some("succeeded"));

    // catalog answered gRPC calls (the default catalog API) whose
    // traceparent named one of order's CLIENT spans, each under order's
    // SERVER span; both sides carry the rpc.* attributes and the status.
    for (method, step) in [
        ("ReserveStock", "saga reserve"),
        ("CommitReservation", "saga commit"),
    ] {
        let name = format!("weir.catalog.v1.CatalogService/{method}");
        let callee = one(&spans, "catalog", &name);
        assert_eq!(callee.kind, "server");
        let call = parent(&spans, callee);
        assert_eq!(
            (call.service.as_str(), call.kind, call.name.as_str()),
            ("order", "client", name.as_str()),
            "{name} called from {call:?}"
        );
        for span in [callee, call] {
            assert_eq!(span.attr("rpc.system"), Some("grpc"), "{span:?}");
            assert_eq!(
                span.attr("rpc.service"),
                Some("weir.catalog.v1.CatalogService")
            );
            assert_eq!(span.attr("rpc.method"), Some(method));
            assert_eq!(span.attr("rpc.grpc.status_code"), Some("0"));
            assert!(!span.error);
        }
        assert_eq!(call.attr("server.address"), Some("catalog"));
        assert_eq!(parent(&spans, call).name, step);
        assert!(descends_from(&spans, call, server));
    }

    // payment answered a REST call the same way.
    let callee = one(&spans, "payment", "POST /v1/payments");
    assert_eq!(callee.kind, "server");
    let call = parent(&spans, callee);
    assert_eq!((call.service.as_str(), call.kind), ("order", "client"));
    assert_eq!(call.attr("http.request.method"), Some("POST"));
    assert_eq!(call.attr("weir.retry.attempt"), Some("1"));
    assert_eq!(
        call.attr("http.response.status_code"),
        callee.attr("http.response.status_code")
    );
    assert_eq!(parent(&spans, call).name, "saga charge");
    assert!(descends_from(&spans, call, server));

    // The callees' own queries hang under their SERVER spans.
    let reserve = one(
        &spans,
        "catalog",
        "weir.catalog.v1.CatalogService/ReserveStock",
    );
    let reserve_db = one(&spans, "catalog", "INSERT reservations");
    assert_eq!(parent(&spans, reserve_db).span_id, reserve.span_id);
    let charge = one(&spans, "payment", "POST /v1/payments");
    let charge_db = one(&spans, "payment", "INSERT payments");
    assert_eq!(parent(&spans, charge_db).span_id, charge.span_id);
    t.stop().await;
}

#[tokio::test]
async fn a_failed_call_marks_the_client_span_and_the_stalled_step() {
    let t = start().await;
    let mug = t.product().await;
    let faults = json!({"failure_rate": 1.0});
    let r = t
        .client
        .put(&format!("{}/admin/faults", t.payment.url()), &[], &faults)
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .client
        .post(
            &format!("{}/v1/orders", t.order.url()),
            &[
                ("idempotency-key", "trace-2"),
                ("traceparent", &format!("00-{TRACE_ID}-{CALLER_SPAN}-01")),
            ],
            &json!({"customer_id": "bob", "items": [{"product_id": mug, "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.json["status"], "pending", "{:?}", r.json);
    let spans = t.trace().await;

    let refused = one(&spans, "payment", "POST /v1/payments");
    assert!(refused.error, "a 503 answer is an error: {refused:?}");
    let call = parent(&spans, refused);
    assert_eq!(call.kind, "client");
    assert!(call.error);
    assert_eq!(call.attr("error.type"), Some("503"));
    let step = parent(&spans, call);
    assert_eq!(step.name, "saga charge");
    assert!(step.error);
    assert_eq!(step.attr("weir.saga.outcome"), Some("stalled"));
    // The order itself was placed fine: its SERVER span is not an error.
    assert!(!one(&spans, "order", "POST /v1/orders").error);
    t.stop().await;
}

#[tokio::test]
async fn recovery_after_a_crash_is_a_trace_of_its_own() {
    let t = start().await;
    let mug = t.product().await;
    // A first order process that "crashes" right after the charge.
    let (crashing_t, _) = recording_telemetry("order");
    let mut config = order_config(&t.dir, &t.catalog, &t.payment, crashing_t);
    config.crash_after_step = Some(order::SagaStep::Charge);
    let crashing = Running::start(move |l, s| order::run(config, l, s)).await;
    let r = t
        .client
        .post(
            &format!("{}/v1/orders", crashing.url()),
            &[("idempotency-key", "trace-3")],
            &json!({"customer_id": "carol", "items": [{"product_id": mug, "quantity": 1}]}),
        )
        .await;
    assert_eq!(r.json["status"], "pending", "{:?}", r.json);
    assert_eq!(r.json["saga_step"], "commit");
    let id = r.json["id"].as_str().unwrap().to_owned();
    crashing.kill();

    // The restarted process finishes it at start-up, with nobody asking.
    let (recovering_t, recovering) = recording_telemetry("order");
    let config = order_config(&t.dir, &t.catalog, &t.payment, recovering_t);
    let restarted = Running::start(move |l, s| order::run(config, l, s)).await;
    eventually(Duration::from_secs(20), async || {
        let o = t
            .client
            .get(&format!("{}/v1/orders/{id}", restarted.url()))
            .await;
        if o.json["status"] == "confirmed" {
            Ok(())
        } else {
            Err(format!("{:?}", o.json))
        }
    })
    .await;

    let mut spans = recovering.spans().await;
    spans.extend(t.recorders[0].spans().await);
    let recover: Vec<&RecordedSpan> = spans.iter().filter(|s| s.name == "saga recover").collect();
    assert_eq!(recover.len(), 1, "{spans:#?}");
    let recover = recover[0];
    assert_eq!(
        recover.parent_span_id, None,
        "recovery starts its own trace"
    );
    assert_eq!(recover.attr("weir.order.id"), Some(id.as_str()));
    let step = one(&spans, "order", "saga commit");
    assert_eq!(parent(&spans, step).span_id, recover.span_id);
    let commit = one(
        &spans,
        "catalog",
        "weir.catalog.v1.CatalogService/CommitReservation",
    );
    assert_eq!(commit.trace_id, recover.trace_id);
    assert!(descends_from(&spans, commit, recover));
    restarted.stop().await.unwrap();
    t.stop().await;
}
