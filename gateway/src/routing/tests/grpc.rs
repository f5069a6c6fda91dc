//! `match.grpc`: routes by gRPC service and method, gRPC content types only.

use serde_json::json;

use super::{configs, hit, table};
use crate::routing::{RouteTable, VersioningConfig};

const GRPC: (&str, &str) = ("content-type", "application/grpc");
const WEB: (&str, &str) = ("content-type", "application/grpc-web-text+proto");

#[test]
fn service_and_method_routes_pick_grpc_calls() {
    let t = table(json!([
        {"name": "get", "match": {"grpc": {"service": "weir.catalog.v1.Catalog", "method": "GetProduct"}}, "upstream": "a"},
        {"name": "catalog", "match": {"grpc": {"service": "weir.catalog.v1.Catalog"}}, "upstream": "a"},
        {"name": "any-grpc", "match": {"grpc": {}}, "upstream": "a"},
        {"name": "rest", "upstream": "a"},
    ]));
    let get = "/weir.catalog.v1.Catalog/GetProduct";
    assert_eq!(hit(&t, "POST", get, &[GRPC]), "get");
    assert_eq!(hit(&t, "POST", get, &[WEB]), "get");
    assert_eq!(
        hit(&t, "POST", "/weir.catalog.v1.Catalog/ListProducts", &[GRPC]),
        "catalog"
    );
    assert_eq!(
        hit(&t, "POST", "/grpc.health.v1.Health/Check", &[GRPC]),
        "any-grpc"
    );
    // Not gRPC: the same path is the REST route's.
    assert_eq!(
        hit(&t, "POST", get, &[("content-type", "application/json")]),
        "rest"
    );
    // A service prefix is a whole segment.
    assert_eq!(
        hit(&t, "POST", "/weir.catalog.v1.CatalogX/Get", &[GRPC]),
        "any-grpc"
    );
}

#[test]
fn grpc_routes_take_post_only_and_need_a_grpc_content_type() {
    let t = table(json!([
        {"name": "get", "match": {"grpc": {"service": "pkg.Svc", "method": "M"}}, "upstream": "a"},
    ]));
    assert_eq!(hit(&t, "POST", "/pkg.Svc/M", &[GRPC]), "get");
    assert_eq!(hit(&t, "POST", "/pkg.Svc/M", &[]), "404");
    assert!(hit(&t, "GET", "/pkg.Svc/M", &[GRPC]).starts_with("405"));
}

#[test]
fn bad_grpc_matches_name_their_field() {
    let errors = RouteTable::compile(
        &configs(json!([
            {"name": "a", "match": {"grpc": {"method": "M"}}, "upstream": "a"},
            {"name": "b", "match": {"grpc": {"service": "pkg/Svc"}}, "upstream": "a"},
            {"name": "c", "match": {"grpc": {"service": "pkg.Svc"}, "path_prefix": "/x"}, "upstream": "a"},
            {"name": "d", "match": {"grpc": {"service": "pkg.Svc", "method": "a.b"}}, "upstream": "a"},
        ])),
        &VersioningConfig::default(),
        &|_| true,
    )
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.clone()).collect();
    assert_eq!(
        fields,
        [
            "routes[0].match.grpc.method",
            "routes[1].match.grpc.service",
            "routes[2].match.grpc.service",
            "routes[3].match.grpc.method",
        ]
    );
}
