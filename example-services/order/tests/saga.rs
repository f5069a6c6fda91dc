//! The order saga with the catalog called over gRPC (`weir.catalog.v1`, the default): the same
//! cases as every other catalog API, with the same outcomes.

mod common;

/// The order service's settings for these cases.
fn order_config(peers: &common::Peers) -> order::Config {
    let mut config = peers.order_config();
    config.catalog_api = order::CatalogApi::Grpc;
    config
}

#[path = "saga/cases.rs"]
mod cases;
