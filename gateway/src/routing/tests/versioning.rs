//! API version selection through lookups, and deprecation / sunset.

use std::time::Duration;

use http::{Method, Uri};
use serde_json::json;

use super::{headers, hit, hit_at, now, table, table_with};
use crate::routing::{RouteMatch, VersionSource, VersioningConfig};

fn products() -> serde_json::Value {
    json!([
        {"name": "products-v1", "match": {"path_prefix": "/products"}, "version": 1, "upstream": "catalog"},
        {"name": "products-v2", "match": {"path_prefix": "/products"}, "version": 2, "upstream": "catalog-v2"},
        {"name": "health", "match": {"path": "/healthz"}, "upstream": "catalog"},
    ])
}

#[test]
fn version_from_path_header_media_type_default() {
    let t = table(products());
    assert_eq!(hit(&t, "GET", "/v2/products/1", &[]), "products-v2");
    assert_eq!(
        hit(&t, "GET", "/v1/products", &[("api-version", "2")]),
        "products-v1"
    );
    assert_eq!(
        hit(&t, "GET", "/products", &[("api-version", "2")]),
        "products-v2"
    );
    assert_eq!(
        hit(&t, "GET", "/products", &[("accept-version", "v2")]),
        "products-v2"
    );
    assert_eq!(
        hit(
            &t,
            "GET",
            "/products",
            &[("accept", "application/vnd.weir.v2+json")]
        ),
        "products-v2"
    );
    assert_eq!(hit(&t, "GET", "/products", &[]), "products-v1");
    assert_eq!(hit(&t, "GET", "/v3/products", &[]), "404");
    assert_eq!(hit(&t, "GET", "/products", &[("api-version", "3")]), "404");
}

#[test]
fn unversioned_route_serves_every_version() {
    let t = table(products());
    assert_eq!(hit(&t, "GET", "/healthz", &[]), "health");
    assert_eq!(hit(&t, "GET", "/v7/healthz", &[]), "health");
    assert_eq!(
        hit(&t, "GET", "/healthz", &[("api-version", "9")]),
        "health"
    );
}

#[test]
fn match_reports_version_source_and_strips_the_segment() {
    let t = table(products());
    let look = |uri: &str, h: &[(&str, &str)]| {
        let uri: Uri = uri.parse().unwrap();
        match t.lookup(&Method::GET, &uri, &headers(h), now()) {
            RouteMatch::Matched(m) => (
                m.version,
                m.version_source,
                m.forward_path_and_query(&uri).to_owned(),
            ),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        look("/v2/products/1?q=a", &[]),
        (2, VersionSource::Path, "/products/1?q=a".into())
    );
    assert_eq!(
        look("/products?q=a", &[("api-version", "2")]),
        (2, VersionSource::Header, "/products?q=a".into())
    );
    assert_eq!(
        look("/products", &[("accept", "application/vnd.weir.v2+json")]),
        (2, VersionSource::MediaType, "/products".into())
    );
    assert_eq!(
        look("/products", &[]),
        (1, VersionSource::Default, "/products".into())
    );
}

#[test]
fn a_literal_v_segment_still_matches_when_no_versioned_route_does() {
    let t = table(json!([
        {"name": "legacy", "match": {"path_prefix": "/v1/legacy"}, "upstream": "u"},
        {"name": "orders", "match": {"path_prefix": "/orders"}, "version": 1, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/v1/legacy/x", &[]), "legacy");
    assert_eq!(hit(&t, "GET", "/v1/orders", &[]), "orders");
    let uri: Uri = "/v1/legacy/x".parse().unwrap();
    let RouteMatch::Matched(m) = t.lookup(&Method::GET, &uri, &headers(&[]), now()) else {
        panic!()
    };
    assert_eq!(m.version_source, VersionSource::Default);
    assert_eq!(m.forward_path_and_query(&uri), "/v1/legacy/x");
}

#[test]
fn configured_default_and_path_versioning_off() {
    let t = table_with(
        products(),
        VersioningConfig {
            default: 2,
            path_prefix: false,
            ..VersioningConfig::default()
        },
    );
    assert_eq!(hit(&t, "GET", "/products", &[]), "products-v2");
    assert_eq!(hit(&t, "GET", "/v1/products", &[]), "404");
}

#[test]
fn deprecated_route_sends_headers_then_410_after_sunset() {
    let t = table(json!([
        {"name": "search-v1", "match": {"path_prefix": "/search"}, "version": 1, "upstream": "u",
         "deprecated": {"since": "2026-01-01T00:00:00Z", "sunset": "2027-06-30T00:00:00Z", "link": "https://docs.example.com/migrate"}},
        {"name": "search-v2", "match": {"path_prefix": "/search"}, "version": 2, "upstream": "u"},
    ]));
    let uri: Uri = "/v1/search".parse().unwrap();
    let RouteMatch::Matched(m) = t.lookup(&Method::GET, &uri, &headers(&[]), now()) else {
        panic!()
    };
    let mut response = headers(&[("content-type", "application/json")]);
    m.route.apply_response_headers(&mut response);
    assert_eq!(response["deprecation"], "@1767225600");
    assert_eq!(response["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    assert_eq!(
        response["link"],
        "<https://docs.example.com/migrate>; rel=\"deprecation\""
    );

    let sunset = m.route.deprecation().unwrap().sunset().unwrap();
    assert_eq!(
        hit_at(
            &t,
            "GET",
            "/v1/search",
            &[],
            sunset - Duration::from_secs(1)
        ),
        "search-v1"
    );
    assert_eq!(
        hit_at(&t, "GET", "/v1/search", &[], sunset),
        "410 search-v1"
    );
    assert_eq!(hit_at(&t, "GET", "/v2/search", &[], sunset), "search-v2");
    // The other version is not deprecated.
    let uri: Uri = "/v2/search".parse().unwrap();
    let RouteMatch::Matched(m) = t.lookup(&Method::GET, &uri, &headers(&[]), now()) else {
        panic!()
    };
    let mut response = headers(&[]);
    m.route.apply_response_headers(&mut response);
    assert!(response.is_empty());
}
