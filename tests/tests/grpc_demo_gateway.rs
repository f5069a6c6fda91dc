//! catalog's gRPC API through the demo stack's gateway (the code `cargo run
//! --bin demo` runs): h2c prior knowledge on the gateway's public port, the
//! demo API key as metadata, catalog's sidecar on the way, reflection and
//! health for strangers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use catalog::grpc::pb;
use catalog::grpc::pb::catalog_service_client::CatalogServiceClient;
use e2e::TempDir;
use tonic::Code;
use tonic::transport::Channel;

const PATIENCE: Duration = Duration::from_secs(30);

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

async fn start() -> (demo::Stack, TempDir) {
    let data = TempDir::new("grpc-gateway").unwrap();
    let env: demo::EnvLookup = Arc::new(|_: &str| None);
    let stack = demo::Stack::start(demo::StackOptions {
        config_dir: config_dir(),
        data_dir: data.path().to_owned(),
        ephemeral: true,
        env,
    })
    .await
    .expect("stack starts");
    stack.wait_ready(PATIENCE).await.expect("stack ready");
    (stack, data)
}

/// `message` with the demo API key in its metadata.
fn with_key<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", "demo-key".parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_catalogs_grpc_api_with_the_demo_credentials() {
    let (stack, _data) = start().await;
    let channel = Channel::from_shared(format!("http://{}", stack.gateway))
        .unwrap()
        .connect()
        .await
        .expect("h2c to the gateway");
    let mut catalog = CatalogServiceClient::new(channel.clone());

    // The seeded catalog, streamed, then one product looked up.
    let mut stream = catalog
        .list_products(with_key(pb::ListProductsRequest::default()))
        .await
        .expect("listing through the gateway")
        .into_inner();
    let mut products = Vec::new();
    while let Some(product) = stream.message().await.expect("next product") {
        products.push(product);
    }
    assert!(!products.is_empty(), "the demo catalog is seeded");
    let first = products
        .iter()
        .find(|p| p.stock >= 1)
        .expect("a product in stock")
        .clone();
    let looked_up = catalog
        .get_product(with_key(pb::GetProductRequest {
            id: first.id.clone(),
        }))
        .await
        .expect("lookup")
        .into_inner();
    assert_eq!(looked_up, first);
    let missing = catalog
        .get_product(with_key(pb::GetProductRequest { id: "nope".into() }))
        .await
        .expect_err("no such product");
    assert_eq!(
        missing.code(),
        Code::NotFound,
        "catalog's own answer: {missing:?}"
    );

    // Without the key the gateway refuses before catalog sees the call.
    let refused = catalog
        .get_product(pb::GetProductRequest {
            id: first.id.clone(),
        })
        .await
        .expect_err("no credentials");
    assert_ne!(refused.code(), Code::Ok);
    assert_eq!(
        refused
            .metadata()
            .get("x-weir-error")
            .and_then(|v| v.to_str().ok()),
        Some("unauthorized"),
        "the gateway's own refusal: {refused:?}"
    );

    // Reservations through the gateway (the demo key holds catalog:write):
    // held stock returns on release.
    let reserved = catalog
        .reserve_stock(with_key(pb::ReserveStockRequest {
            order_id: "grpc-gateway-1".into(),
            items: vec![pb::ReservationLine {
                product_id: first.id.clone(),
                quantity: 1,
            }],
        }))
        .await
        .expect("reserved")
        .into_inner();
    assert!(reserved.created);
    let reservation = reserved.reservation.unwrap();
    let held = catalog
        .get_product(with_key(pb::GetProductRequest {
            id: first.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.stock, first.stock - 1);
    catalog
        .release_reservation(with_key(pb::ReleaseReservationRequest {
            id: reservation.id,
        }))
        .await
        .expect("released");
    let back = catalog
        .get_product(with_key(pb::GetProductRequest { id: first.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.stock, first.stock);

    // Health and reflection, as grpcurl uses them.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(with_key(tonic_health::pb::HealthCheckRequest {
            service: "weir.catalog.v1.CatalogService".into(),
        }))
        .await
        .expect("health through the gateway")
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(with_key(futures_stream(request)))
        .await
        .expect("reflection through the gateway")
        .into_inner();
    let answer = answers.message().await.unwrap().expect("a service list");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"weir.catalog.v1.CatalogService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    stack.stop().await;
}

/// A request stream of one message, ending after it.
fn futures_stream<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> {
    tonic::codegen::tokio_stream::iter([item])
}
