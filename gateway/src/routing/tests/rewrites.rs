//! Forwarded path, header edits and split choice through lookups.

use http::{Method, Uri};
use serde_json::json;

use super::{headers, now, table};
use crate::routing::{RouteMatch, RouteTable};

/// The upstream path and query for a GET of `uri`.
fn forward(t: &RouteTable, uri: &str) -> String {
    let uri: Uri = uri.parse().unwrap();
    match t.lookup(&Method::GET, &uri, &headers(&[]), now()) {
        RouteMatch::Matched(m) => m.forward_path_and_query(&uri).to_owned(),
        other => panic!("{uri}: {other:?}"),
    }
}

#[test]
fn strip_prefix_keeps_the_query() {
    let t = table(json!([
        {"name": "api", "match": {"path_prefix": "/api"}, "upstream": "u", "rewrite": {"strip_prefix": "/api"}},
    ]));
    assert_eq!(
        forward(&t, "/api/products?page=2&q=a%20b"),
        "/products?page=2&q=a%20b"
    );
    assert_eq!(forward(&t, "/api"), "/");
    assert_eq!(forward(&t, "/api/"), "/");
    assert_eq!(forward(&t, "/api?x=1"), "/?x=1");
}

#[test]
fn replace_prefix_at_segment_boundaries() {
    let t = table(json!([
        {"name": "old", "match": {"path_prefix": "/old"}, "upstream": "u",
         "rewrite": {"replace_prefix": {"from": "/old", "to": "/new/api/"}}},
        {"name": "root", "match": {"path_prefix": "/"}, "upstream": "u",
         "rewrite": {"replace_prefix": {"from": "/", "to": "/svc"}}},
    ]));
    assert_eq!(forward(&t, "/old/items/1"), "/new/api/items/1");
    assert_eq!(forward(&t, "/old"), "/new/api/");
    assert_eq!(forward(&t, "/oldish"), "/svc/oldish");
    assert_eq!(forward(&t, "/"), "/svc/");
}

#[test]
fn path_template_substitutes_params() {
    let t = table(json!([
        {"name": "review", "match": {"path_template": "/products/{id}/reviews/{rid}"}, "upstream": "u",
         "rewrite": {"path": "/reviews/{rid}/of/{id}"}},
    ]));
    assert_eq!(
        forward(&t, "/products/42/reviews/7?full=1"),
        "/reviews/7/of/42?full=1"
    );
}

#[test]
fn version_segment_is_stripped_unless_kept() {
    let t = table(json!([
        {"name": "strip", "match": {"path_prefix": "/a"}, "version": 2, "upstream": "u"},
        {"name": "keep", "match": {"path_prefix": "/b"}, "version": 2, "upstream": "u",
         "rewrite": {"keep_version_prefix": true}},
        {"name": "keep-rewrite", "match": {"path_prefix": "/c"}, "version": 2, "upstream": "u",
         "rewrite": {"keep_version_prefix": true, "strip_prefix": "/c"}},
    ]));
    assert_eq!(forward(&t, "/v2/a/1?x"), "/a/1?x");
    assert_eq!(forward(&t, "/v2/b/1?x"), "/v2/b/1?x");
    assert_eq!(forward(&t, "/v2/c/1"), "/v2/1");
    assert_eq!(forward(&t, "/v2/c"), "/v2");
}

#[test]
fn kept_version_prefix_is_added_when_the_version_came_from_elsewhere() {
    let t = table(json!([
        {"name": "products", "match": {"path_prefix": "/products"}, "upstream": "u",
         "rewrite": {"keep_version_prefix": true}},
        {"name": "legacy", "match": {"path_prefix": "/v1/legacy"}, "upstream": "u",
         "rewrite": {"keep_version_prefix": true}},
    ]));
    let fwd = |uri: &str, h: &[(&str, &str)]| {
        let uri: Uri = uri.parse().unwrap();
        match t.lookup(&Method::GET, &uri, &headers(h), now()) {
            RouteMatch::Matched(m) => m.forward_path_and_query(&uri).to_owned(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        fwd("/products/1?x", &[("api-version", "2")]),
        "/v2/products/1?x"
    );
    assert_eq!(
        fwd("/products", &[("accept", "application/vnd.weir.v3+json")]),
        "/v3/products"
    );
    assert_eq!(fwd("/products", &[]), "/v1/products");
    assert_eq!(fwd("/v2/products", &[("api-version", "1")]), "/v2/products");
    // A literal `/v1` matched by the fallback is not doubled.
    assert_eq!(fwd("/v1/legacy/x", &[]), "/v1/legacy/x");
}

#[test]
fn unchanged_path_is_not_copied() {
    let t = table(json!([{"name": "plain", "upstream": "u"}]));
    let uri: Uri = "/x/y?z=1".parse().unwrap();
    let RouteMatch::Matched(m) = t.lookup(&Method::GET, &uri, &headers(&[]), now()) else {
        panic!()
    };
    let forwarded = m.forward_path_and_query(&uri);
    assert_eq!(forwarded, "/x/y?z=1");
    assert!(std::ptr::eq(
        forwarded,
        uri.path_and_query().unwrap().as_str()
    ));
}

#[test]
fn header_edits_remove_then_set_then_add() {
    let t = table(json!([
        {"name": "h", "upstream": "u", "rewrite": {
            "request_headers": {"remove": ["x-internal", "x-env"], "set": {"x-env": "prod", "x-weir-route": "h"}, "add": {"x-tag": "gw"}},
            "response_headers": {"remove": ["server"], "add": {"cache-control": "no-store"}}
        }},
    ]));
    let route = t.route("h").unwrap();
    let mut req = headers(&[
        ("x-internal", "1"),
        ("x-env", "dev"),
        ("x-env", "qa"),
        ("x-tag", "client"),
    ]);
    route.apply_request_headers(&mut req);
    assert!(!req.contains_key("x-internal"));
    assert_eq!(req.get_all("x-env").iter().collect::<Vec<_>>(), ["prod"]);
    assert_eq!(req["x-weir-route"], "h");
    assert_eq!(
        req.get_all("x-tag").iter().collect::<Vec<_>>(),
        ["client", "gw"]
    );

    let mut resp = headers(&[("server", "app"), ("cache-control", "max-age=60")]);
    route.apply_response_headers(&mut resp);
    assert!(!resp.contains_key("server"));
    assert_eq!(
        resp.get_all("cache-control").iter().collect::<Vec<_>>(),
        ["max-age=60", "no-store"]
    );
}

#[test]
fn split_route_exposes_weighted_upstreams() {
    let t = table(json!([
        {"name": "canary", "upstream": null, "split": [{"upstream": "catalog", "weight": 95}, {"upstream": "catalog-v2", "weight": 5}]},
    ]));
    let u = t.route("canary").unwrap().upstreams();
    assert!(u.is_split());
    assert_eq!(
        u.iter().collect::<Vec<_>>(),
        [("catalog", 95), ("catalog-v2", 5)]
    );
    let picks: Vec<_> = (0..100).map(|r| u.choose_with(r)).collect();
    assert_eq!(picks.iter().filter(|p| **p == "catalog-v2").count(), 5);
    assert_eq!(picks.iter().filter(|p| **p == "catalog").count(), 95);
}

#[test]
fn route_exposes_timeout_and_body_limit() {
    let t = table(json!([
        {"name": "r", "upstream": "u", "timeout": "2500ms", "limits": {"max_body_bytes": "10MiB"}},
        {"name": "defaults", "upstream": "u"},
    ]));
    let r = t.route("r").unwrap();
    assert_eq!(r.timeout(), Some(std::time::Duration::from_millis(2500)));
    assert_eq!(r.max_body_bytes(), Some(10 << 20));
    assert_eq!(r.index(), 0);
    let d = t.route("defaults").unwrap();
    assert_eq!(
        (d.timeout(), d.max_body_bytes(), d.index()),
        (None, None, 1)
    );
}
