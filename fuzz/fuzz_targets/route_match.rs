//! The gateway's route table: compile host and path patterns (`path`,
//! `path_prefix`, `path_template`, hosts with wildcards), then look requests
//! up, and compare every answer with a brute-force reference written from
//! `docs/routing.md`:
//!
//! - a matched route really matches: host, path and method;
//! - it is the best one: host tier (exact, then wildcard by longest suffix,
//!   then any), path tier (exact, template with literals before parameters
//!   left to right, longest prefix), then routes with methods before routes
//!   without, then declaration order;
//! - 404 only when no route takes the host and path; 405 only when some do but
//!   none takes the method, with `Allow` listing exactly their methods;
//! - template parameters capture the segments at their positions;
//! - with no rewrite, the upstream gets the request's path and query as is;
//! - the host may come from the `Host` header or the absolute-form URI alike.
//!
//! Patterns and requests are drawn from small alphabets so they collide;
//! sometimes a pattern is arbitrary text, which exercises the pattern parser
//! (refusing it is fine, panicking is not).
#![no_main]

use std::collections::BTreeSet;
use std::time::SystemTime;

use gateway::routing::config::MatchConfig;
use gateway::routing::{
    HostPattern, PathPattern, RouteConfig, RouteMatch, RouteTable, VersioningConfig,
};
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use weir_fuzz::{list, word};

const LABELS: &[&str] = &["a", "b", "api", "example", "com", "x-y"];
const SEGMENTS: &[&str] = &["a", "b", "api", "users", "v1", "A", "%41", "x.y"];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fn host_name(u: &mut Unstructured<'_>) -> Result<String> {
    let labels = list(u, 3, |u| Ok(*u.choose(LABELS)?))?;
    Ok(if labels.is_empty() {
        "a".into()
    } else {
        labels.join(".")
    })
}

fn host_pattern(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0 => "*".into(),
        1..=3 => host_name(u)?,
        4..=6 => format!("*.{}", host_name(u)?),
        _ => u.arbitrary()?,
    })
}

fn pattern_path(u: &mut Unstructured<'_>, template: bool) -> Result<String> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    let mut segs = Vec::new();
    for k in 0..u.int_in_range(0..=4)? {
        if template && u.ratio(1, 3)? {
            segs.push(format!("{{p{k}}}"));
        } else {
            segs.push((*u.choose(SEGMENTS)?).to_owned());
        }
    }
    let mut path = format!("/{}", segs.join("/"));
    if !segs.is_empty() && u.ratio(1, 4)? {
        path.push('/');
    }
    Ok(path)
}

fn route(u: &mut Unstructured<'_>, i: usize) -> Result<RouteConfig> {
    let mut m = MatchConfig {
        hosts: list(u, 2, host_pattern)?,
        methods: list(u, 2, |u| word(u, METHODS))?,
        ..MatchConfig::default()
    };
    match u.int_in_range(0..=2)? {
        0 => m.path = Some(pattern_path(u, false)?),
        1 => m.path_prefix = Some(pattern_path(u, false)?),
        _ => m.path_template = Some(pattern_path(u, true)?),
    }
    Ok(RouteConfig {
        name: format!("r{i}"),
        matches: m,
        upstream: Some("up".into()),
        ..RouteConfig::default()
    })
}

struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// The host as the client wrote it (before normalisation).
    host: String,
}

fn request(u: &mut Unstructured<'_>) -> Result<Option<Request>> {
    let method = Method::from_bytes(word(u, METHODS)?.as_bytes()).unwrap_or(Method::GET);
    let mut host = host_name(u)?;
    if u.ratio(1, 4)? {
        host = host.to_ascii_uppercase();
    }
    if u.ratio(1, 4)? {
        host.push('.');
    }
    let port = if u.ratio(1, 4)? { ":8080" } else { "" };
    let mut segs = Vec::new();
    for _ in 0..u.int_in_range(0..=5)? {
        segs.push(word(
            u,
            &["a", "b", "api", "users", "v1", "A", "%41", "", "42"],
        )?);
    }
    let mut path = format!("/{}", segs.join("/"));
    if u.ratio(1, 4)? {
        path.push('/');
    }
    if u.ratio(1, 4)? {
        path.push_str("?q=1");
    }
    let absolute = u.arbitrary::<bool>()?;
    let uri = if absolute {
        format!("http://{host}{port}{path}")
    } else {
        path
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return Ok(None);
    };
    let mut headers = HeaderMap::new();
    if !absolute {
        match HeaderValue::from_str(&format!("{host}{port}")) {
            Ok(v) => headers.insert(HOST, v),
            Err(_) => return Ok(None),
        };
    }
    Ok(Some(Request {
        method,
        uri,
        headers,
        host,
    }))
}

/// Path segments as the table sees them: leading and one trailing `/` ignored.
fn segments(path: &str) -> Vec<&str> {
    let p = path.strip_prefix('/').unwrap_or(path);
    if p.is_empty() {
        return Vec::new();
    }
    p.strip_suffix('/').unwrap_or(p).split('/').collect()
}

/// Where a route's path pattern puts it among the routes matching one path:
/// `None` when it does not match; smaller is preferred.
fn path_rank(pattern: &PathPattern, path: &str) -> Option<(u8, Vec<usize>)> {
    let segs = segments(path);
    match pattern {
        PathPattern::Exact(p) => (**p == *path).then(|| (0, Vec::new())),
        PathPattern::Template(_) => {
            let raw = pattern.to_string();
            let tsegs = segments(&raw);
            if tsegs.len() != segs.len() {
                return None;
            }
            let mut kinds = Vec::with_capacity(tsegs.len());
            for (t, s) in tsegs.iter().zip(&segs) {
                if t.starts_with('{') {
                    if s.is_empty() {
                        return None;
                    }
                    kinds.push(1);
                } else if t == s {
                    kinds.push(0);
                } else {
                    return None;
                }
            }
            Some((1, kinds))
        }
        PathPattern::Prefix(p) => {
            let psegs = if &**p == "/" { Vec::new() } else { segments(p) };
            segs.starts_with(&psegs)
                .then(|| (2, vec![usize::MAX - psegs.len()]))
        }
    }
}

/// The host tier a route reaches a request through: `None` when no pattern
/// matches; smaller is preferred (exact, wildcards by longest suffix, any).
fn host_rank(patterns: &[HostPattern], host: &str) -> Option<usize> {
    patterns
        .iter()
        .filter_map(|p| match p {
            HostPattern::Exact(h) => (**h == *host).then_some(0),
            HostPattern::Wildcard(s) => {
                (host.len() > s.len() && host.ends_with(&**s)).then(|| 1 + host.len() - s.len())
            }
            HostPattern::Any => Some(usize::MAX),
        })
        .min()
}

fn method_ok(methods: &[Method], m: &Method) -> bool {
    methods.is_empty()
        || methods.contains(m)
        || (*m == Method::HEAD && methods.contains(&Method::GET))
}

fn reference_host(raw: &str) -> String {
    let h = raw.to_ascii_lowercase();
    h.strip_suffix('.').map(str::to_owned).unwrap_or(h)
}

fn check(table: &RouteTable, req: &Request) {
    let host = reference_host(&req.host);
    let with_port = format!("{}:8080", req.host);
    assert_eq!(gateway::routing::normalize_host(&req.host), host);
    assert_eq!(gateway::routing::normalize_host(&with_port), host);
    let path = req.uri.path();

    type Key = (usize, (u8, Vec<usize>), bool, usize);
    let mut best: Option<Key> = None;
    let mut allow_expected: BTreeSet<String> = BTreeSet::new();
    let mut host_path_match = false;
    for r in table.routes() {
        let (Some(h), Some(p)) = (host_rank(r.hosts(), &host), path_rank(r.path(), path)) else {
            continue;
        };
        host_path_match = true;
        if method_ok(r.methods(), &req.method) {
            let key = (h, p, r.methods().is_empty(), r.index());
            if best.as_ref().is_none_or(|b| key < *b) {
                best = Some(key);
            }
        } else {
            for m in r.methods() {
                allow_expected.insert(m.to_string());
                if *m == Method::GET {
                    allow_expected.insert("HEAD".into());
                }
            }
        }
    }

    let found = table.lookup(&req.method, &req.uri, &req.headers, SystemTime::now());
    match found {
        RouteMatch::Matched(m) => {
            let Some(best) = best else {
                panic!(
                    "matched {} but no route fits {} {}",
                    m.route.name(),
                    req.method,
                    req.uri
                );
            };
            assert_eq!(
                m.route.index(),
                best.3,
                "{} {} (host {host}) went to {}, the reference picks {}",
                req.method,
                req.uri,
                m.route.name(),
                table.routes()[best.3].name()
            );
            if let PathPattern::Template(_) = m.route.path() {
                let raw = m.route.path().to_string();
                let expected: Vec<(&str, &str)> = segments(&raw)
                    .into_iter()
                    .zip(segments(path))
                    .filter_map(|(t, s)| {
                        t.strip_prefix('{')
                            .and_then(|n| n.strip_suffix('}'))
                            .map(|n| (n, s))
                    })
                    .collect();
                assert_eq!(m.params.iter().collect::<Vec<_>>(), expected);
            } else {
                assert!(m.params.is_empty());
            }
            let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
            assert_eq!(m.forward_path_and_query(&req.uri), pq);
        }
        RouteMatch::MethodNotAllowed { allow } => {
            assert!(best.is_none(), "405 although a route fits");
            assert!(host_path_match, "405 although no route takes the path");
            let got: BTreeSet<String> = allow.iter().map(Method::to_string).collect();
            assert_eq!(got, allow_expected);
        }
        RouteMatch::NotFound => {
            assert!(
                !host_path_match,
                "404 although a route takes {} {}",
                req.method, req.uri
            );
        }
        RouteMatch::Gone { route } => {
            panic!("route {} is gone without a deprecation", route.name())
        }
        RouteMatch::BadVersion { header } => {
            panic!("no version header is configured, yet {header} was refused")
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(n) = u.int_in_range(0..=8usize) else {
        return;
    };
    let Ok(routes) = (0..n).map(|i| route(&mut u, i)).collect::<Result<Vec<_>>>() else {
        return;
    };
    let versioning = VersioningConfig {
        headers: Vec::new(),
        media_type: None,
        path_prefix: false,
        ..VersioningConfig::default()
    };
    let Ok(table) = RouteTable::compile(&routes, &versioning, &|_: &str| true) else {
        return;
    };
    for _ in 0..8 {
        match request(&mut u) {
            Ok(Some(req)) => check(&table, &req),
            Ok(None) => {}
            Err(_) => break,
        }
    }
});
