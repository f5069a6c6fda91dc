//! The catalog's gRPC API (`weir.catalog.v1.CatalogService`), served on the
//! REST port beside the REST API (see `service_kit::grpc`).
//!
//! The service is a second front door to the same domain code: every call
//! runs the REST handler's code path and fails with the same problem, turned
//! into a status by `service_kit::grpc::status_from_problem`. So a
//! reservation made over gRPC is the same reservation, with the same
//! idempotency on the order id, as one made over REST.
//!
//! Next to it: the standard health service (`grpc.health.v1.Health`,
//! SERVING for the catalog) and server reflection (`grpc.reflection.v1`
//! and `v1alpha`), so `grpcurl` or any generated client can find their way
//! without the `.proto` file.

use axum::Router;
use tonic::service::Routes;

use crate::state::AppState;

mod convert;
mod service;

/// The code generated from `proto/weir/catalog/v1/catalog.proto`: messages,
/// the server trait and a client.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("weir.catalog.v1");

    /// The encoded descriptors of `weir.catalog.v1`, as served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/catalog_descriptor.bin"));
}

/// The full name of the catalog's gRPC service.
pub const SERVICE_NAME: &str = "weir.catalog.v1.CatalogService";

/// Why the gRPC services could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the gRPC reflection service")]
pub struct GrpcError(#[source] tonic_reflection::server::Error);

/// The catalog service, health and reflection as one router.
pub(crate) async fn routes(state: AppState) -> Result<Router, GrpcError> {
    let catalog =
        pb::catalog_service_server::CatalogServiceServer::new(service::CatalogGrpc::new(state));
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::catalog_service_server::CatalogServiceServer<service::CatalogGrpc>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(GrpcError)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(GrpcError)?;
    Ok(Routes::new(catalog)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .prepare()
        .into_axum_router())
}
