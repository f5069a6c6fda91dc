//! Lookup-level tests of the route table: every matcher, the precedence
//! order, versioning, rewrites, deprecation, compile errors and scale.

mod compile_errors;
mod grpc;
mod matching;
mod precedence;
mod rewrites;
mod scale;
mod versioning;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use super::{RouteConfig, RouteMatch, RouteTable, VersioningConfig, allow_header};

/// 2027-01-15T08:00:00Z: after every `since`, before the sunsets the tests
/// want to be still serving.
pub(super) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(super) fn configs(routes: serde_json::Value) -> Vec<RouteConfig> {
    serde_json::from_value(routes).expect("route config parses")
}

pub(super) fn table(routes: serde_json::Value) -> RouteTable {
    table_with(routes, VersioningConfig::default())
}

pub(super) fn table_with(routes: serde_json::Value, versioning: VersioningConfig) -> RouteTable {
    match RouteTable::compile(&configs(routes), &versioning, &|name| name != "missing") {
        Ok(t) => t,
        Err(errors) => panic!("compile failed: {errors:#?}"),
    }
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Looks a request up and summarises the outcome: the route name, `404`,
/// `405 <Allow>` or `410 <route>`.
pub(super) fn hit(t: &RouteTable, method: &str, uri: &str, hdrs: &[(&str, &str)]) -> String {
    hit_at(t, method, uri, hdrs, now())
}

pub(super) fn hit_at(
    t: &RouteTable,
    method: &str,
    uri: &str,
    hdrs: &[(&str, &str)],
    at: SystemTime,
) -> String {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let uri: Uri = uri.parse().unwrap();
    match t.lookup(&method, &uri, &headers(hdrs), at) {
        RouteMatch::Matched(m) => m.route.name().to_string(),
        RouteMatch::MethodNotAllowed { allow } => {
            format!("405 {}", allow_header(&allow).to_str().unwrap())
        }
        RouteMatch::Gone { route } => format!("410 {}", route.name()),
        RouteMatch::NotFound => "404".to_owned(),
        RouteMatch::BadVersion { header } => format!("400 {header}"),
    }
}

#[test]
fn table_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RouteTable>();
    let t = std::sync::Arc::new(table(serde_json::json!([{"name": "a", "upstream": "u"}])));
    let t2 = t.clone();
    let name = std::thread::spawn(move || hit(&t2, "GET", "/x", &[]))
        .join()
        .unwrap();
    assert_eq!(name, "a");
}
