//! The whole demo stack in-process (catalog, order, payment, a sidecar for
//! each, the gateway; the very code `cargo run --bin demo` runs) exporting to
//! an in-process OTLP receiver: placing an order through the gateway is ONE
//! trace whose tree follows the request across every hop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use e2e::{HttpClient, Kind, OtlpReceiver, ReceivedSpan, Shape, StatusCode, TempDir, TraceTree};

const PATIENCE: Duration = Duration::from_secs(30);
const API_KEY: (&str, &str) = ("x-api-key", "demo-key");

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

struct Running {
    stack: demo::Stack,
    rx: OtlpReceiver,
    client: HttpClient,
    _data: TempDir,
}

async fn start() -> Running {
    let rx = OtlpReceiver::grpc().await.unwrap();
    let endpoint = rx.endpoint();
    start_exporting_to(rx, endpoint).await
}

async fn start_exporting_to(rx: OtlpReceiver, endpoint: String) -> Running {
    start_with_env(rx, endpoint, Vec::new()).await
}

/// The stack with `extra` environment variables (an event bus, say).
async fn start_with_env(
    rx: OtlpReceiver,
    endpoint: String,
    extra: Vec<(&'static str, String)>,
) -> Running {
    let data = TempDir::new("trace-e2e").unwrap();
    let env: demo::EnvLookup = Arc::new(move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        _ => extra
            .iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone()),
    });
    let stack = demo::Stack::start(demo::StackOptions {
        config_dir: config_dir(),
        data_dir: data.path().to_owned(),
        ephemeral: true,
        env,
    })
    .await
    .expect("stack starts");
    stack.wait_ready(PATIENCE).await.expect("stack ready");
    Running {
        stack,
        rx,
        client: HttpClient::default(),
        _data: data,
    }
}

/// Some product id from the catalog, through the gateway.
async fn a_product(r: &Running) -> String {
    let reply = r
        .client
        .get(
            &format!("http://{}/v1/products", r.stack.gateway),
            &[API_KEY],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.text();
    // `"id":"…"` of the first product, without a JSON dependency in the harness.
    let start = body
        .find("\"id\":\"")
        .map(|i| i + 6)
        .unwrap_or_else(|| panic!("no product in {body}"));
    let end = body[start..].find('"').unwrap() + start;
    body[start..end].to_owned()
}

/// A trace id unique within this process.
fn fresh_id() -> u128 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    u128::from(std::process::id()) << 64
        | u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// POSTs an order with a fresh trace id; returns (status, body, trace id).
async fn place_order(r: &Running, product: &str) -> (u16, String, String) {
    let trace_id = format!("{:032x}", fresh_id());
    let traceparent = format!("00-{trace_id}-00000000000000aa-01");
    let body =
        format!(r#"{{"customer_id":"c-1","items":[{{"product_id":"{product}","quantity":1}}]}}"#);
    let reply = r
        .client
        .post_json(
            &format!("http://{}/v1/orders", r.stack.gateway),
            &[
                API_KEY,
                ("traceparent", &traceparent),
                ("idempotency-key", &trace_id),
            ],
            &body,
        )
        .await
        .unwrap();
    (reply.status.as_u16(), reply.text(), trace_id)
}

/// Waits until the spans of `trace_id` include `want` and the receiver has
/// nothing newer for the trace after every component flushed (they flush on
/// their own interval; the stack's stop flushes the rest).
async fn trace_spans(
    r: &Running,
    trace_id: &str,
    enough: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    let id = trace_id.to_owned();
    tokio::time::timeout(
        PATIENCE,
        r.rx.store().wait_until(move |all| {
            let spans: Vec<ReceivedSpan> =
                all.iter().filter(|s| s.trace_id == id).cloned().collect();
            enough(&spans)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("trace never complete; got:\n{}", render(r, trace_id)));
    r.rx.store().trace(trace_id)
}

fn render(r: &Running, trace_id: &str) -> String {
    TraceTree::new(r.rx.store().trace(trace_id))
        .map(|t| t.render())
        .unwrap_or_else(|e| e)
}

fn count(spans: &[ReceivedSpan], service: &str, kind: Kind) -> usize {
    spans
        .iter()
        .filter(|s| s.service == service && s.kind == kind)
        .count()
}

/// Every component of the stack that opens SERVER spans.
const COMPONENTS: [&str; 7] = [
    "gateway",
    "order-sidecar",
    "order",
    "catalog-sidecar",
    "catalog",
    "payment-sidecar",
    "payment",
];

/// Answered below 400 and not marked as an error.
fn ok(s: &ReceivedSpan) -> bool {
    s.status != StatusCode::Error
        && s.attr_int("http.response.status_code")
            .is_some_and(|c| c < 400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_one_trace_across_every_hop() {
    let r = start().await;
    let product = a_product(&r).await;
    let (status, body, trace_id) = place_order(&r, &product).await;
    assert_eq!(status, 201, "{body}");

    // Within a component spans are exported in the order they end, and a
    // SERVER span ends after everything it caused: once every component's
    // SERVER span is in, the whole trace is.
    let spans = trace_spans(&r, &trace_id, |s| {
        COMPONENTS
            .iter()
            .all(|svc| count(s, svc, Kind::Server) >= 1)
    })
    .await;
    let tree = TraceTree::new(spans).expect("one trace");
    eprintln!("{}", tree.render());
    // order calls a peer through its sidecar (from inside its handler, via
    // its saga's spans); the peer's sidecar hands the request to the peer
    // app: catalog over gRPC (the demo's CATALOG_API), payment over REST.
    // Every hop between proxies is mutual TLS: each sidecar's SERVER span
    // names the identity its caller proved with its certificate.
    let called_by = |who: &'static str| {
        move |s: &ReceivedSpan| {
            s.attr_str("weir.peer.identity")
                == Some(&*format!("spiffe://weir.local/ns/default/sa/{who}"))
        }
    };
    let calls = |peer: &str, handled: Shape| {
        Shape::client("order-sidecar")
            .that("a call that succeeded", ok)
            .child(
                Shape::server(&format!("{peer}-sidecar"))
                    .that("answered", ok)
                    .that("called by order's identity", called_by("order"))
                    .child(handled),
            )
    };
    let reserved = Shape::server("catalog")
        .named("weir.catalog.v1.CatalogService/ReserveStock")
        .that("a gRPC call answered OK", |s| {
            s.attr_str("rpc.system") == Some("grpc")
                && s.attr_str("rpc.method") == Some("ReserveStock")
                && s.attr_int("rpc.grpc.status_code") == Some(0)
        });
    let charged = Shape::server("payment").that("handled", ok);
    tree.assert_shape(
        &Shape::server("gateway")
            .that("route orders-v1, 201", |s| {
                s.attr_str("weir.route") == Some("orders-v1")
                    && s.attr_int("http.response.status_code") == Some(201)
            })
            .child(
                Shape::client("gateway").child(
                    Shape::server("order-sidecar")
                        .that("201", ok)
                        .that("called by the gateway's identity", called_by("gateway"))
                        .child(
                            Shape::server("order")
                                .named("POST /v1/orders")
                                .that("201", ok)
                                .descendant(calls("catalog", reserved))
                                .descendant(calls("payment", charged)),
                        ),
                ),
            )
            .exact(),
    );
    // Every span has a service name and every service is in this one trace.
    assert!(tree.spans().iter().all(|s| !s.service.is_empty()));

    // Outside the mesh, without a certificate, payment's sidecar lets no
    // one in: not to charge, not to read.
    let payment = r.stack.sidecars["payment"].inbound;
    let charge = r
        .client
        .post_json(
            &format!("http://{payment}/v1/payments"),
            &[],
            r#"{"order_id":"o-1","amount_cents":100}"#,
        )
        .await
        .unwrap();
    assert_eq!(charge.status, 403, "{}", charge.text());
    let read = r
        .client
        .get(&format!("http://{payment}/v1/payments/p-1"), &[])
        .await
        .unwrap();
    assert_eq!(read.status, 403, "{}", read.text());
    r.stack.stop().await;
}

/// Payment answers 503 until told otherwise; the order sidecar retries the
/// charge, and every attempt is its own CLIENT span with its number and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_charge_shows_every_attempt() {
    let r = start().await;
    let product = a_product(&r).await;
    let faults = format!("http://{}/admin/faults", r.stack.apps["payment"]);
    let set = |rate: &'static str| {
        let (client, url) = (r.client.clone(), faults.clone());
        async move {
            let reply = client
                .put_json(&url, &[], &format!(r#"{{"failure_rate":{rate}}}"#))
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    };
    set("1.0").await;

    let placing = tokio::spawn({
        let r_client = r.client.clone();
        let gateway = r.stack.gateway;
        let product = product.clone();
        async move {
            let trace_id = format!("{:032x}", 0x7e57_0000_0000_0000_0000_0000_0000_0002u128);
            let traceparent = format!("00-{trace_id}-00000000000000bb-01");
            let body = format!(
                r#"{{"customer_id":"c-2","items":[{{"product_id":"{product}","quantity":1}}]}}"#
            );
            let reply = r_client
                .post_json(
                    &format!("http://{gateway}/v1/orders"),
                    &[
                        API_KEY,
                        ("traceparent", &traceparent),
                        ("idempotency-key", "retry-e2e"),
                    ],
                    &body,
                )
                .await
                .unwrap();
            (reply, trace_id)
        }
    });
    // Heal payment once the first charge attempt has been refused. Payment
    // offers no event to await, so its request counter is polled.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let report = r.client.get(&faults, &[]).await.unwrap().text();
            if !report.contains("\"charge_requests\":0") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a charge request reaches payment");
    set("0.0").await;
    let (reply, trace_id) = placing.await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());

    let spans = trace_spans(&r, &trace_id, |s| {
        // order-sidecar's SERVER span ends after all its CLIENT attempts, so
        // once it is in, every attempt is; then each attempt's payment-side
        // spans must be in too.
        let attempts = s
            .iter()
            .filter(|x| {
                x.service == "order-sidecar" && x.attr_str("weir.upstream") == Some("payment")
            })
            .count();
        COMPONENTS
            .iter()
            .all(|svc| count(s, svc, Kind::Server) >= 1)
            && attempts >= 2
            && count(s, "payment-sidecar", Kind::Server) == attempts
            && count(s, "payment", Kind::Server) == attempts
    })
    .await;
    let tree = TraceTree::new(spans).expect("one trace");
    eprintln!("{}", tree.render());
    let charges: Vec<&ReceivedSpan> = tree
        .find("order-sidecar", Kind::Client)
        .into_iter()
        .filter(|s| s.attr_str("weir.upstream") == Some("payment"))
        .collect();
    let failed = charges
        .iter()
        .filter(|s| s.status == StatusCode::Error)
        .count();
    assert!(
        failed >= 1,
        "a refused attempt is marked as an error:\n{}",
        tree.render()
    );
    assert!(
        charges
            .iter()
            .any(|s| s.attr_int("weir.retry.attempt").is_some_and(|a| a >= 2)
                && s.attr_str("weir.retry.reason").is_some()),
        "a retry carries its attempt number and reason:\n{}",
        tree.render()
    );
    assert!(
        charges.iter().any(|s| ok(s)),
        "the last attempt succeeded:\n{}",
        tree.render()
    );
    // Each attempt reached payment's sidecar: one SERVER child per attempt,
    // with the attempt's outcome.
    for c in &charges {
        let kids = tree.children(c);
        assert_eq!(kids.len(), 1, "{}", tree.render());
        assert_eq!(kids[0].service, "payment-sidecar");
        assert_eq!(
            kids[0].attr_int("http.response.status_code"),
            c.attr_int("http.response.status_code")
        );
        // …and payment itself, which answered that attempt.
        let app = tree.children(kids[0]);
        assert_eq!(app.len(), 1, "{}", tree.render());
        assert_eq!(
            (app[0].service.as_str(), app[0].kind),
            ("payment", Kind::Server)
        );
        assert_eq!(
            app[0].attr_int("http.response.status_code"),
            c.attr_int("http.response.status_code")
        );
        assert_eq!(
            app[0].status == StatusCode::Error,
            c.status == StatusCode::Error
        );
        // The order app made the call, inside its handler's span.
        assert!(
            tree.ancestors(c)
                .iter()
                .any(|a| a.service == "order" && a.kind == Kind::Server),
            "{}",
            tree.render()
        );
    }
    // All of it under the one request that came through the gateway.
    tree.assert_shape(
        &Shape::server("gateway")
            .child(Shape::client("gateway").child(Shape::server("order-sidecar"))),
    );
    r.stack.stop().await;
}

fn dropped_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("weir_telemetry_spans_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The collector address is a closed port: orders still go through, and
/// every proxy counts the spans it could not deliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_spans_not_orders() {
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    // The receiver is unused: spans go to the closed port.
    let r = start_exporting_to(
        OtlpReceiver::grpc().await.unwrap(),
        format!("http://{closed}"),
    )
    .await;
    let product = a_product(&r).await;
    for _ in 0..5 {
        let (status, body, _) = place_order(&r, &product).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut admins = vec![("gateway".to_owned(), r.stack.gateway_admin)];
    admins.extend(
        r.stack
            .sidecars
            .iter()
            .map(|(s, a)| (format!("{s}-sidecar"), a.admin)),
    );
    for (name, admin) in admins {
        // Spans are dropped when the export task next tries (it flushes on
        // its own interval); the admin endpoint is polled until it shows.
        let url = format!("http://{admin}/metrics");
        let client = r.client.clone();
        tokio::time::timeout(PATIENCE, async move {
            loop {
                let text = client.get(&url, &[]).await.unwrap().text();
                if dropped_total(&text) > 0 {
                    assert!(
                        text.contains("weir_telemetry_spans_exported_total 0"),
                        "{text}"
                    );
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{name} never counted a dropped span"));
    }
    assert!(r.rx.store().is_empty());
    r.stack.stop().await;
}

/// With RabbitMQ as the event bus, the order's trace goes on past the queue:
/// order's `publish` span (PRODUCER) and, as its child, catalog's `process`
/// span (CONSUMER) with the transaction that counts the sale under it.
/// Skipped when RabbitMQ (`AMQP_URL`, default local) is absent, except under `CI=true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_trace_shows_the_catalog_counting_the_sale() {
    use lapin::options::QueueDeleteOptions;
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = match tokio::time::timeout(
        Duration::from_secs(5),
        lapin::Connection::connect(&amqp, lapin::ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        other => {
            let reason = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "RabbitMQ at {amqp} is required under CI: {reason}"
            );
            eprintln!("skipping: RabbitMQ at {amqp} unavailable: {reason}");
            return;
        }
    };
    let suffix = format!("{:x}", fresh_id());
    let exchange = format!("weir.orders.e2e-{suffix}");
    let queue = format!("catalog.e2e-{suffix}");
    // The catalog's queue exists before anything is published, as a
    // deployment provisions it: RabbitMQ drops what no queue is bound for.
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "order.*".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();
    let rx = OtlpReceiver::grpc().await.unwrap();
    let endpoint = rx.endpoint();
    let r = start_with_env(
        rx,
        endpoint,
        vec![
            ("AMQP_URL", amqp.clone()),
            ("AMQP_EXCHANGE", exchange.clone()),
            ("CATALOG_AMQP_QUEUE", queue.clone()),
        ],
    )
    .await;
    let product = a_product(&r).await;
    let (status, body, trace_id) = place_order(&r, &product).await;
    assert_eq!(status, 201, "{body}");

    // order.placed and order.confirmed: a process span each.
    let process = format!("process {exchange}");
    let publish = format!("publish {exchange}");
    let spans = trace_spans(&r, &trace_id, |s| {
        let named = |service: &str, name: &str| {
            s.iter()
                .filter(|s| s.service == service && s.name == name)
                .count()
        };
        named("catalog", &process) >= 2 && named("order", &publish) >= 2
    })
    .await;
    let tree = TraceTree::new(spans).expect("one trace");
    eprintln!("{}", tree.render());
    let consumers = tree.find("catalog", Kind::Consumer);
    assert_eq!(consumers.len(), 2, "{}", tree.render());
    for span in consumers {
        assert_eq!(span.name, process);
        assert_eq!(span.attr_str("messaging.system"), Some("rabbitmq"));
        assert_eq!(span.attr_str("messaging.operation.type"), Some("process"));
        let parent = tree.ancestors(span)[0];
        assert_eq!(parent.service, "order");
        assert_eq!(parent.kind, Kind::Producer);
        assert_eq!(parent.name, publish);
        assert_eq!(
            parent.attr_str("messaging.message.id"),
            span.attr_str("messaging.message.id")
        );
        assert!(
            tree.descendants(span)
                .iter()
                .any(|s| s.name == "INSERT processed_events"),
            "the transaction runs inside the process span"
        );
    }
    // The producer spans hang under the order's own handling of the request.
    let order_server = tree.find("order", Kind::Server)[0];
    for producer in tree.find("order", Kind::Producer) {
        assert!(
            tree.ancestors(producer)
                .iter()
                .any(|a| a.span_id == order_server.span_id)
        );
    }

    // And the sale is counted in the v2 representation.
    let url = format!("http://{}/v2/products/{product}", r.stack.apps["catalog"]);
    let reply = r.client.get(&url, &[]).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&reply.text()).unwrap();
    assert_eq!(json["units_sold"], 1, "{json}");

    r.stack.stop().await;
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
    let _ = connection.close(0, "done".into()).await;
}
