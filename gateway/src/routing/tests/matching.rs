//! Each matcher on its own: host, path, method, headers.

use http::{Method, Uri};
use serde_json::json;

use super::{headers, hit, now, table};
use crate::routing::RouteMatch;

#[test]
fn host_exact_wildcard_and_any() {
    let t = table(json!([
        {"name": "exact", "match": {"host": "api.example.com"}, "upstream": "u"},
        {"name": "wild", "match": {"host": "*.example.com"}, "upstream": "u"},
        {"name": "any", "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "http://api.example.com/x", &[]), "exact");
    assert_eq!(
        hit(&t, "GET", "http://API.Example.COM:8443/x", &[]),
        "exact"
    );
    assert_eq!(hit(&t, "GET", "http://shop.example.com/x", &[]), "wild");
    assert_eq!(hit(&t, "GET", "http://a.b.example.com/x", &[]), "wild");
    // The wildcard covers subdomains, not the apex.
    assert_eq!(hit(&t, "GET", "http://example.com/x", &[]), "any");
    assert_eq!(hit(&t, "GET", "http://badexample.com/x", &[]), "any");
    // Without an authority in the URI, the Host header decides.
    assert_eq!(
        hit(&t, "GET", "/x", &[("host", "api.example.com:8080")]),
        "exact"
    );
    assert_eq!(
        hit(&t, "GET", "/x", &[("host", "api.example.com.")]),
        "exact"
    );
    assert_eq!(hit(&t, "GET", "/x", &[]), "any");
}

#[test]
fn hosts_list_and_no_fallback_without_any_route() {
    let t = table(json!([
        {"name": "multi", "match": {"hosts": ["a.test", "*.b.test"]}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "http://a.test/", &[]), "multi");
    assert_eq!(hit(&t, "GET", "http://x.b.test/", &[]), "multi");
    assert_eq!(hit(&t, "GET", "http://c.test/", &[]), "404");
}

#[test]
fn exact_path_is_byte_exact() {
    let t = table(json!([{"name": "health", "match": {"path": "/healthz"}, "upstream": "u"}]));
    assert_eq!(hit(&t, "GET", "/healthz", &[]), "health");
    assert_eq!(hit(&t, "GET", "/healthz?verbose=1", &[]), "health");
    assert_eq!(hit(&t, "GET", "/healthz/", &[]), "404");
    assert_eq!(hit(&t, "GET", "/Healthz", &[]), "404");
}

#[test]
fn prefix_matches_whole_segments() {
    let t = table(json!([
        {"name": "products", "match": {"path_prefix": "/products/"}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/products", &[]), "products");
    assert_eq!(hit(&t, "GET", "/products/", &[]), "products");
    assert_eq!(hit(&t, "GET", "/products/1/reviews", &[]), "products");
    assert_eq!(hit(&t, "GET", "/productsx", &[]), "404");
    assert_eq!(hit(&t, "GET", "/", &[]), "404");
}

#[test]
fn template_extracts_params() {
    let t = table(json!([
        {"name": "review", "match": {"path_template": "/products/{id}/reviews/{review_id}"}, "upstream": "u"},
    ]));
    let uri: Uri = "/products/42/reviews/a%20b?x=1".parse().unwrap();
    let m = t.lookup(&Method::GET, &uri, &headers(&[]), now());
    let RouteMatch::Matched(m) = m else {
        panic!("expected a match, got {m:?}")
    };
    assert_eq!(m.route.name().as_ref(), "review");
    assert_eq!(m.params.get("id"), Some("42"));
    assert_eq!(m.params.get("review_id"), Some("a%20b"));
    assert_eq!(
        m.params.iter().collect::<Vec<_>>(),
        [("id", "42"), ("review_id", "a%20b")]
    );
    // A trailing slash is tolerated; a missing or empty segment is not.
    assert_eq!(hit(&t, "GET", "/products/42/reviews/7/", &[]), "review");
    assert_eq!(hit(&t, "GET", "/products/42/reviews", &[]), "404");
    assert_eq!(hit(&t, "GET", "/products//reviews/7", &[]), "404");
    assert_eq!(hit(&t, "GET", "/products/42/reviews/7/more", &[]), "404");
}

#[test]
fn methods_405_lists_allow_of_otherwise_matching_routes() {
    let t = table(json!([
        {"name": "read", "match": {"path_prefix": "/orders", "methods": ["GET"]}, "upstream": "u"},
        {"name": "write", "match": {"path_prefix": "/orders", "methods": ["post", "PUT"]}, "upstream": "u"},
        {"name": "other-host", "match": {"host": "x.test", "path_prefix": "/orders", "methods": ["DELETE"]}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/orders/1", &[]), "read");
    assert_eq!(hit(&t, "HEAD", "/orders/1", &[]), "read");
    assert_eq!(hit(&t, "POST", "/orders", &[]), "write");
    assert_eq!(
        hit(&t, "DELETE", "/orders/1", &[]),
        "405 GET, HEAD, POST, PUT"
    );
    assert_eq!(
        hit(&t, "DELETE", "http://x.test/orders/1", &[]),
        "other-host"
    );
    assert_eq!(
        hit(&t, "PATCH", "http://x.test/orders/1", &[]),
        "405 GET, HEAD, POST, PUT, DELETE"
    );
    assert_eq!(hit(&t, "DELETE", "/payments", &[]), "404");
}

#[test]
fn method_specific_wins_over_any_method() {
    let t = table(json!([
        {"name": "any", "match": {"path": "/x"}, "upstream": "u"},
        {"name": "get", "match": {"path": "/x", "methods": ["GET"]}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "GET", "/x", &[]), "get");
    assert_eq!(hit(&t, "POST", "/x", &[]), "any");
}

#[test]
fn header_conditions() {
    let t = table(json!([
        {"name": "tenant", "match": {"path_prefix": "/", "headers": [{"name": "X-Tenant", "value": "acme"}]}, "upstream": "u"},
        {"name": "beta", "match": {"path_prefix": "/", "headers": [{"name": "x-beta", "present": true}]}, "upstream": "u"},
        {"name": "anon", "match": {"path_prefix": "/", "headers": [{"name": "authorization", "present": false}]}, "upstream": "u"},
        {"name": "rest", "upstream": "u"},
    ]));
    assert_eq!(
        hit(
            &t,
            "GET",
            "/",
            &[("x-tenant", "acme"), ("authorization", "t")]
        ),
        "tenant"
    );
    assert_eq!(
        hit(
            &t,
            "GET",
            "/",
            &[
                ("x-tenant", "other"),
                ("x-beta", "1"),
                ("authorization", "t")
            ]
        ),
        "beta"
    );
    assert_eq!(hit(&t, "GET", "/", &[]), "anon");
    assert_eq!(hit(&t, "GET", "/", &[("authorization", "t")]), "rest");
}

#[test]
fn header_mismatch_is_404_not_405() {
    let t = table(json!([
        {"name": "h", "match": {"path": "/x", "methods": ["GET"], "headers": [{"name": "x-a", "value": "1"}]}, "upstream": "u"},
    ]));
    assert_eq!(hit(&t, "POST", "/x", &[]), "404");
    assert_eq!(hit(&t, "POST", "/x", &[("x-a", "1")]), "405 GET, HEAD");
}

#[test]
fn odd_request_targets_find_nothing() {
    let t = table(json!([{"name": "all", "upstream": "u"}]));
    assert_eq!(hit(&t, "OPTIONS", "*", &[]), "404");
    assert_eq!(hit(&t, "GET", "/", &[]), "all");
}
