//! A large table resolves exactly like a small one.

use http::{Method, Uri};
use serde_json::json;

use super::{headers, hit, now, table};
use crate::routing::RouteMatch;

/// 10,000 routes over 50 exact hosts, 10 wildcard hosts and any host, mixing
/// exact paths, prefixes, templates and versions.
fn big_table() -> crate::routing::RouteTable {
    let mut routes = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let host = match i % 3 {
            0 => json!(format!("svc{}.example.com", i % 50)),
            1 => json!(format!("*.zone{}.example.net", i % 10)),
            _ => json!(null),
        };
        let m = match i % 4 {
            0 => json!({"host": host, "path": format!("/exact/{i}")}),
            1 => json!({"host": host, "path_prefix": format!("/prefix/{i}")}),
            2 => json!({"host": host, "path_template": format!("/items/{i}/{{id}}/detail")}),
            _ => {
                json!({"host": host, "path_prefix": format!("/versioned/{i}"), "methods": ["GET"]})
            }
        };
        let mut route = json!({"name": format!("r{i}"), "match": m, "upstream": "u"});
        if i % 4 == 3 {
            route["version"] = json!(1 + i % 2);
        }
        routes.push(route);
    }
    table(json!(routes))
}

fn host_of(i: u32) -> String {
    match i % 3 {
        0 => format!("svc{}.example.com", i % 50),
        1 => format!("a.b.zone{}.example.net", i % 10),
        _ => "anything.test".to_owned(),
    }
}

#[test]
fn ten_thousand_routes_each_resolve_to_themselves() {
    let t = big_table();
    assert_eq!(t.len(), 10_000);
    for i in (0..10_000u32).step_by(7) {
        let host = host_of(i);
        let (uri, hdrs) = match i % 4 {
            0 => (format!("http://{host}/exact/{i}"), vec![]),
            1 => (format!("http://{host}/prefix/{i}/deeper/still?x=1"), vec![]),
            2 => (format!("http://{host}/items/{i}/abc/detail"), vec![]),
            _ => (
                format!("http://{host}/v{}/versioned/{i}/x", 1 + i % 2),
                vec![],
            ),
        };
        assert_eq!(hit(&t, "GET", &uri, &hdrs), format!("r{i}"), "{uri}");
    }
}

#[test]
fn big_table_misses_and_conditions_still_hold() {
    let t = big_table();
    // Wrong host tier for an exact-host route.
    assert_eq!(hit(&t, "GET", "http://other.test/exact/0", &[]), "404");
    // Right path, wrong version.
    assert_eq!(
        hit(&t, "GET", "http://anything.test/v1/versioned/11/x", &[]),
        "404"
    );
    assert_eq!(
        hit(&t, "GET", "http://anything.test/v2/versioned/11/x", &[]),
        "r11"
    );
    // Method mismatch on a GET-only route.
    assert_eq!(
        hit(&t, "POST", "http://anything.test/v2/versioned/11", &[]),
        "405 GET, HEAD"
    );
    // Template params come out right.
    let uri: Uri = "http://anything.test/items/9998/xyz/detail"
        .parse()
        .unwrap();
    let RouteMatch::Matched(m) = t.lookup(&Method::GET, &uri, &headers(&[]), now()) else {
        panic!()
    };
    assert_eq!(
        (m.route.name().as_ref(), m.params.get("id")),
        ("r9998", Some("xyz"))
    );
}
