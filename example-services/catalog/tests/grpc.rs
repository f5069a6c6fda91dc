//! The catalog's gRPC API with a real tonic client over h2c, on the same
//! port as its REST API: lookups, the streamed listing, reservations with
//! the REST API's idempotency, deadlines, cancellation, health and
//! reflection.

use std::time::Duration;

use catalog::Config;
use catalog::grpc::pb;
use catalog::grpc::pb::catalog_service_client::CatalogServiceClient;
use serde_json::json;
use service_kit::testing::{
    Running, SpanRecorder, TestClient, TestDir, eventually, recording_telemetry,
};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

struct Catalog {
    _dir: TestDir,
    db_path: std::path::PathBuf,
    server: Running<catalog::Error>,
    rest: TestClient,
}

impl Catalog {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = TestDir::new("catalog-grpc");
        let mut config = Config::new(dir.path());
        config.seed = false;
        adjust(&mut config);
        let db_path = dir.path().join("catalog.db");
        let server = Running::start(move |l, s| catalog::run(config, l, s)).await;
        Self {
            _dir: dir,
            db_path,
            server,
            rest: TestClient::new(),
        }
    }

    async fn client(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::connect(self.server.url())
            .await
            .expect("h2c connection to the catalog")
    }

    async fn product(&self, sku: &str, price: i64, stock: i64, description: &str) -> String {
        let body = json!({"sku": sku, "name": sku, "description": description,
            "price_minor": price, "currency": "EUR", "stock": stock});
        let r = self
            .rest
            .post(
                &format!("{}/v1/products", self.server.url()),
                &[("x-weir-admin", "true")],
                &body,
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.json);
        r.json["id"].as_str().unwrap().to_owned()
    }

    async fn stock(&self, id: &str) -> i64 {
        self.rest
            .get(&format!("{}/v1/products/{id}", self.server.url()))
            .await
            .json["stock"]
            .as_i64()
            .unwrap()
    }
}

fn problem_type(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("x-weir-problem-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn reserve(order_id: &str, lines: &[(&str, i64)]) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        order_id: order_id.to_owned(),
        items: lines
            .iter()
            .map(|(product_id, quantity)| pb::ReservationLine {
                product_id: (*product_id).to_owned(),
                quantity: *quantity,
            })
            .collect(),
    }
}

#[tokio::test]
async fn looks_up_products_and_answers_not_found() {
    let catalog = Catalog::start().await;
    let lamp = catalog.product("LAMP", 3000, 4, "a lamp").await;
    let mut client = catalog.client().await;

    let product = client
        .get_product(pb::GetProductRequest { id: lamp.clone() })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(product.id, lamp);
    assert_eq!(product.sku, "LAMP");
    assert_eq!(product.price_minor, 3000);
    assert_eq!(product.currency, "EUR");
    assert_eq!(product.stock, 4);

    let missing = client
        .get_product(pb::GetProductRequest { id: "nope".into() })
        .await
        .expect_err("no such product");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert_eq!(problem_type(&missing), "not-found");
    assert_eq!(missing.message(), "product nope does not exist");

    // REST on the same port still answers HTTP/1.1 JSON.
    let rest = catalog
        .rest
        .get(&format!("{}/v1/products/{lamp}", catalog.server.url()))
        .await;
    assert_eq!(rest.status, 200);
    assert_eq!(rest.json["sku"], "LAMP");
    catalog.server.stop().await.unwrap();
}

#[tokio::test]
async fn lists_every_page_as_one_stream_and_rejects_bad_filters() {
    let catalog = Catalog::start().await;
    for i in 0..230 {
        let stock = if i % 2 == 0 { 1 } else { 0 };
        catalog
            .product(&format!("SKU-{i:03}"), 100 + i, stock, "")
            .await;
    }
    let mut client = catalog.client().await;

    let mut stream = client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("listing")
        .into_inner();
    let mut ids = Vec::new();
    while let Some(product) = stream.message().await.expect("next product") {
        ids.push(product.id);
    }
    assert_eq!(
        ids.len(),
        230,
        "three pages of the REST listing, all streamed"
    );
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by id, no repeats"
    );

    let mut stream = client
        .list_products(pb::ListProductsRequest {
            in_stock: Some(true),
            min_price: Some(200),
            ..Default::default()
        })
        .await
        .expect("filtered listing")
        .into_inner();
    let mut filtered = Vec::new();
    while let Some(product) = stream.message().await.expect("next product") {
        assert!(
            product.stock > 0 && product.price_minor >= 200,
            "{product:?}"
        );
        filtered.push(product);
    }
    assert_eq!(filtered.len(), 115 - 50, "in stock and from price 200");

    let bad = client
        .list_products(pb::ListProductsRequest {
            min_price: Some(500),
            max_price: Some(100),
            ..Default::default()
        })
        .await
        .expect_err("min above max");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(problem_type(&bad), "validation-failed");
    assert_eq!(
        bad.metadata().get("x-weir-problem-field").unwrap(),
        "max_price"
    );
    catalog.server.stop().await.unwrap();
}

#[tokio::test]
async fn reservations_keep_the_rest_apis_rules_and_idempotency() {
    let catalog = Catalog::start().await;
    let lamp = catalog.product("LAMP", 3000, 5, "").await;
    let mug = catalog.product("MUG", 1200, 1, "").await;
    let mut client = catalog.client().await;

    let first = client
        .reserve_stock(reserve("order-1", &[(&lamp, 2), (&mug, 1)]))
        .await
        .expect("reserved")
        .into_inner();
    assert!(first.created);
    let held = first.reservation.unwrap();
    assert_eq!(held.status(), pb::ReservationStatus::Held);
    assert_eq!(held.total_minor, 2 * 3000 + 1200);
    assert_eq!(held.items.len(), 2);

    // The same order again, over gRPC and over REST: the same reservation,
    // and no more stock held.
    let again = client
        .reserve_stock(reserve("order-1", &[(&lamp, 2), (&mug, 1)]))
        .await
        .expect("idempotent")
        .into_inner();
    assert!(!again.created);
    assert_eq!(again.reservation.unwrap().id, held.id);
    let rest = catalog
        .rest
        .post(
            &format!("{}/v1/reservations", catalog.server.url()),
            &[],
            &json!({"order_id": "order-1", "items": [{"product_id": lamp, "quantity": 2}]}),
        )
        .await;
    assert_eq!(rest.status, 200, "{:?}", rest.json);
    assert_eq!(rest.json["id"], held.id.as_str());
    assert_eq!(catalog.stock(&lamp).await, 3);
    assert_eq!(catalog.stock(&mug).await, 0);

    // Short stock: FAILED_PRECONDITION naming the problem, nothing held.
    let short = client
        .reserve_stock(reserve("order-2", &[(&lamp, 1), (&mug, 1)]))
        .await
        .expect_err("no mug left");
    assert_eq!(short.code(), Code::FailedPrecondition, "{short:?}");
    assert_eq!(problem_type(&short), "insufficient-stock");
    assert_eq!(catalog.stock(&lamp).await, 3, "all lines or none");

    let invalid = client
        .reserve_stock(reserve("order-3", &[(&lamp, 0)]))
        .await
        .expect_err("zero units");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(
        invalid.metadata().get("x-weir-problem-field").unwrap(),
        "items[0].quantity"
    );

    // Commit twice: the second returns the committed reservation.
    for _ in 0..2 {
        let committed = client
            .commit_reservation(pb::CommitReservationRequest {
                id: held.id.clone(),
            })
            .await
            .expect("commit is idempotent")
            .into_inner();
        assert_eq!(committed.status(), pb::ReservationStatus::Committed);
    }
    let release = client
        .release_reservation(pb::ReleaseReservationRequest {
            id: held.id.clone(),
        })
        .await
        .expect_err("committed stock is sold");
    assert_eq!(release.code(), Code::FailedPrecondition);
    assert_eq!(problem_type(&release), "reservation-committed");

    // Release twice: the stock returns once.
    let other = client
        .reserve_stock(reserve("order-4", &[(&lamp, 3)]))
        .await
        .expect("reserved")
        .into_inner()
        .reservation
        .unwrap();
    assert_eq!(catalog.stock(&lamp).await, 0);
    for _ in 0..2 {
        let released = client
            .release_reservation(pb::ReleaseReservationRequest {
                id: other.id.clone(),
            })
            .await
            .expect("release is idempotent")
            .into_inner();
        assert_eq!(released.status(), pb::ReservationStatus::Released);
    }
    assert_eq!(catalog.stock(&lamp).await, 3);
    let fetched = client
        .get_reservation(pb::GetReservationRequest { id: other.id })
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(fetched.status(), pb::ReservationStatus::Released);
    let missing = client
        .commit_reservation(pb::CommitReservationRequest { id: "nope".into() })
        .await
        .expect_err("no such reservation");
    assert_eq!(missing.code(), Code::NotFound);
    catalog.server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_past_its_deadline_is_abandoned_and_holds_nothing() {
    let catalog = Catalog::start().await;
    let lamp = catalog.product("LAMP", 3000, 5, "").await;
    let mut client = catalog.client().await;

    // Another writer holds the database: the reservation cannot proceed
    // until the caller's deadline has passed.
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", catalog.db_path.display());
    let mut blocker = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the catalog's database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .expect("take the write lock");

    // A tonic `Channel` gives up by itself at the deadline; over a plain
    // HTTP/2 client the server alone has to keep it.
    let plain = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let mut no_client_deadline =
        CatalogServiceClient::with_origin(plain, catalog.server.url().parse().unwrap());
    let mut request = tonic::Request::new(reserve("order-late", &[(&lamp, 2)]));
    request.set_timeout(Duration::from_millis(200));
    let late = no_client_deadline
        .reserve_stock(request)
        .await
        .expect_err("too late");
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");

    sqlx::query("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("release the lock");
    blocker.close().await.unwrap();
    // The abandoned call held nothing: the stock is whole, and the same
    // order can still reserve (it was never recorded).
    assert_eq!(catalog.stock(&lamp).await, 5);
    let retried = client
        .reserve_stock(reserve("order-late", &[(&lamp, 2)]))
        .await
        .expect("reserved after the lock")
        .into_inner();
    assert!(retried.created);
    assert_eq!(catalog.stock(&lamp).await, 3);
    catalog.server.stop().await.unwrap();
}

fn spans_named<'a>(
    spans: &'a [service_kit::testing::RecordedSpan],
    name: &str,
) -> Vec<&'a service_kit::testing::RecordedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

async fn span_named(recorder: &SpanRecorder, name: &str) -> service_kit::testing::RecordedSpan {
    eventually(Duration::from_secs(10), async || {
        let spans = recorder.spans().await;
        spans_named(&spans, name)
            .first()
            .map(|s| (*s).clone())
            .ok_or_else(|| format!("no span {name} yet: {spans:#?}"))
    })
    .await
}

#[tokio::test]
async fn calls_are_rpc_spans_and_a_cancelled_stream_ends_on_the_server() {
    let (telemetry, recorder) = recording_telemetry("catalog");
    let catalog = Catalog::start_with(|c| c.telemetry = telemetry).await;
    // Large products, so the listing outgrows the client's flow-control
    // window and cannot be sent before the client goes away.
    let description = "d".repeat(1900);
    let lamp = catalog.product("LAMP", 3000, 5, &description).await;
    for i in 0..120 {
        catalog
            .product(&format!("SKU-{i:03}"), 100, 1, &description)
            .await;
    }
    let channel = Endpoint::from_shared(catalog.server.url())
        .unwrap()
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024)
        .connect()
        .await
        .unwrap();
    let mut client = CatalogServiceClient::new(channel);

    let mut request = tonic::Request::new(pb::GetProductRequest { id: lamp.clone() });
    request.metadata_mut().insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    client.get_product(request).await.expect("lookup");
    let missing = client
        .get_product(pb::GetProductRequest { id: "nope".into() })
        .await
        .expect_err("not found");
    assert_eq!(missing.code(), Code::NotFound);

    let mut stream = client
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("listing")
        .into_inner();
    let first = stream.message().await.expect("first product").unwrap();
    assert_eq!(first.description.len(), 1900);
    drop(stream);

    // The server side of the stream ends as CANCELLED once the client
    // resets it: the listing's state is dropped, not left waiting for a
    // reader that is gone.
    let listing = span_named(&recorder, "weir.catalog.v1.CatalogService/ListProducts").await;
    assert_eq!(listing.kind, "server");
    assert_eq!(
        listing.attr("rpc.grpc.status_code"),
        Some("1"),
        "{listing:?}"
    );
    assert_eq!(listing.attr("rpc.method"), Some("ListProducts"));

    let spans = recorder.spans().await;
    let lookups = spans_named(&spans, "weir.catalog.v1.CatalogService/GetProduct");
    assert_eq!(lookups.len(), 2, "{spans:#?}");
    let found = lookups
        .iter()
        .find(|s| s.attr("rpc.grpc.status_code") == Some("0"))
        .expect("the found product's span");
    assert_eq!(found.kind, "server");
    assert_eq!(found.attr("rpc.system"), Some("grpc"));
    assert_eq!(
        found.attr("rpc.service"),
        Some("weir.catalog.v1.CatalogService")
    );
    assert_eq!(found.attr("rpc.method"), Some("GetProduct"));
    assert_eq!(found.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(found.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert!(!found.error);
    let query = spans
        .iter()
        .find(|s| s.parent_span_id.as_deref() == Some(found.span_id.as_str()))
        .expect("the lookup's query is a child of the call");
    assert_eq!(query.kind, "client");
    let not_found = lookups
        .iter()
        .find(|s| s.attr("rpc.grpc.status_code") == Some("5"))
        .expect("the missing product's span");
    assert!(!not_found.error, "NOT_FOUND is the caller's doing");
    catalog.server.stop().await.unwrap();
}

#[tokio::test]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

    let catalog = Catalog::start().await;
    let channel = Endpoint::from_shared(catalog.server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();

    let mut health = HealthClient::new(channel.clone());
    for service in ["", "weir.catalog.v1.CatalogService"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("weir.catalog.v1.CatalogService".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter(requests))
        .await
        .expect("reflection stream")
        .into_inner();
    let listed: ServerReflectionResponse = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "weir.catalog.v1.CatalogService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let file = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(file)) = file.message_response else {
        panic!("not a file descriptor: {file:?}");
    };
    let descriptor = <prost_types::FileDescriptorProto as prost::Message>::decode(
        file.file_descriptor_proto[0].as_slice(),
    )
    .unwrap();
    assert_eq!(descriptor.package(), "weir.catalog.v1");
    assert!(
        descriptor.service[0]
            .method
            .iter()
            .any(|m| m.name() == "ReserveStock")
    );
    catalog.server.stop().await.unwrap();
}
