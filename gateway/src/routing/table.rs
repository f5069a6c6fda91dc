//! The compiled route table and its lookup.
//!
//! # Layout
//!
//! ```text
//! RouteTable
//! ├── hosts.exact:    HashMap<host, PathIndex>        api.example.com
//! ├── hosts.wildcard: HashMap<".suffix", PathIndex>   *.example.com  (tried longest suffix first)
//! └── hosts.any:      PathIndex                       no host condition
//!
//! PathIndex
//! ├── exact: HashMap<path, [route]>                   path: /healthz
//! └── root:  Node  (trie over path segments)
//!     Node { children: HashMap<segment, Node>, param: Option<Node>,
//!            prefix: [route],   // path_prefix ending here
//!            template: [route]} // path_template ending here
//! ```
//!
//! A lookup costs a few hash probes per host tier plus one trie walk bounded
//! by the request's segment count, whatever the number of routes; each
//! candidate list is pre-sorted by the tie-break order, so the first candidate
//! whose headers, version and method fit wins. The table is immutable: the
//! gateway builds a new one off to the side on reload and swaps it whole.
//! Its maps hash with foldhash (`proxy_core::hash::FastMap`): their keys come
//! from the configuration, a request only looks them up.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HOST, HeaderMap};
use http::{Method, Uri};
use proxy_core::hash::FastMap;

use super::matcher::{extend_allow, sort_allow};
use super::pattern::{
    HostPattern, MAX_TEMPLATE_PARAMS, PathPattern, Segments, normalize_host, segments,
};
use super::rewrite::VersionInPath;
use super::route::{Check, Matched, PathParams, Route, RouteMatch};
use super::version::{VersionSource, Versioning};

/// The immutable, indexed set of routes. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub(crate) routes: Vec<Route>,
    pub(crate) by_name: FastMap<Arc<str>, usize>,
    pub(crate) versioning: Versioning,
    hosts: HostIndex,
}

#[derive(Debug, Default)]
struct HostIndex {
    exact: FastMap<Box<str>, PathIndex>,
    wildcard: FastMap<Box<str>, PathIndex>,
    any: PathIndex,
}

#[derive(Debug, Default)]
struct PathIndex {
    exact: FastMap<Box<str>, Vec<u32>>,
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    children: FastMap<Box<str>, Node>,
    param: Option<Box<Node>>,
    prefix: Vec<u32>,
    template: Vec<u32>,
}

/// What stays the same while one request walks the indexes.
struct Request<'q> {
    method: &'q Method,
    headers: &'q HeaderMap,
    version: u32,
}

/// A route that fits, with the captured template values.
struct Found<'t> {
    route: &'t Route,
    params: PathParams<'t>,
}

impl RouteTable {
    /// Indexes already validated routes (see [`RouteTable::compile`]).
    pub(crate) fn build(routes: Vec<Route>, versioning: Versioning) -> Self {
        let mut hosts = HostIndex::default();
        for route in &routes {
            let id = u32::try_from(route.index).unwrap_or(u32::MAX);
            for host in &route.hosts {
                let index = match host {
                    HostPattern::Exact(h) => hosts.exact.entry(h.clone()).or_default(),
                    HostPattern::Wildcard(s) => hosts.wildcard.entry(s.clone()).or_default(),
                    HostPattern::Any => &mut hosts.any,
                };
                index.insert(&route.path, id);
            }
        }
        let key = |id: &u32| routes[*id as usize].tie_key();
        for index in hosts.exact.values_mut().chain(hosts.wildcard.values_mut()) {
            index.sort(&key);
        }
        hosts.any.sort(&key);
        let by_name = routes.iter().map(|r| (r.name.clone(), r.index)).collect();
        Self {
            routes,
            by_name,
            versioning,
            hosts,
        }
    }

    /// A table without routes: every lookup is `NotFound`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// All routes in declaration order (`routes()[r.index()]` is `r`).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route with this name.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.by_name.get(name).map(|i| &self.routes[*i])
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The compiled `versioning:` section.
    pub fn versioning(&self) -> &Versioning {
        &self.versioning
    }

    /// Finds the route for a request. The host comes from the URI authority
    /// (HTTP/2, absolute-form) or else the `Host` header. `now` decides whether
    /// a deprecated route is past its sunset.
    pub fn lookup(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> RouteMatch<'_> {
        let raw_host = uri
            .host()
            .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
            .unwrap_or("");
        self.lookup_at(raw_host, method, uri, headers, now)
    }

    /// [`lookup`](Self::lookup) for a request whose authority was already
    /// settled (`host`, port allowed): the gateway checks that the target URI
    /// and `Host` agree, then routes by that one authority.
    pub fn lookup_at(
        &self,
        host: &str,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> RouteMatch<'_> {
        let host = normalize_host(host);
        let path = uri.path();
        if !path.starts_with('/') {
            return RouteMatch::NotFound;
        }
        let mut allow = Vec::new();
        let path_version = self.versioning.path_version(path);
        if let Some((version, segment, rest)) = path_version {
            let req = Request {
                method,
                headers,
                version,
            };
            if let Some(found) = self.find(&host, rest, &req, &mut allow) {
                return finish(
                    found,
                    version,
                    VersionSource::Path,
                    rest,
                    VersionInPath::Sent(segment),
                    uri.query(),
                    now,
                );
            }
            if !allow.is_empty() {
                return method_not_allowed(allow);
            }
            // Nothing serves the path without `/vN`: it may be a literal
            // segment of an unversioned route, so match the full path.
        }
        let (version, source) = match self.versioning.header_version(headers) {
            Ok(v) => v,
            Err(header) => return RouteMatch::BadVersion { header },
        };
        let req = Request {
            method,
            headers,
            version,
        };
        match self.find(&host, path, &req, &mut allow) {
            Some(found) => {
                // After the fallback the `/vN` is a literal part of the path.
                let in_path = match path_version {
                    Some(_) => VersionInPath::Literal,
                    None => VersionInPath::Absent(version),
                };
                finish(found, version, source, path, in_path, uri.query(), now)
            }
            None if allow.is_empty() => RouteMatch::NotFound,
            None => method_not_allowed(allow),
        }
    }

    /// Host tiers in order: exact, wildcard suffixes from longest to shortest, any.
    fn find<'t>(
        &'t self,
        host: &str,
        path: &str,
        req: &Request<'_>,
        allow: &mut Vec<Method>,
    ) -> Option<Found<'t>> {
        if let Some(index) = self.hosts.exact.get(host)
            && let Some(found) = index.find(&self.routes, path, req, allow)
        {
            return Some(found);
        }
        if !self.hosts.wildcard.is_empty() {
            for (i, b) in host.bytes().enumerate() {
                if b != b'.' || i == 0 {
                    continue;
                }
                if let Some(index) = self.hosts.wildcard.get(&host[i..])
                    && let Some(found) = index.find(&self.routes, path, req, allow)
                {
                    return Some(found);
                }
            }
        }
        self.hosts.any.find(&self.routes, path, req, allow)
    }
}

fn method_not_allowed(mut allow: Vec<Method>) -> RouteMatch<'static> {
    sort_allow(&mut allow);
    RouteMatch::MethodNotAllowed { allow }
}

fn finish<'t>(
    found: Found<'t>,
    version: u32,
    version_source: VersionSource,
    matched_path: &str,
    version_in_path: VersionInPath<'_>,
    query: Option<&str>,
    now: SystemTime,
) -> RouteMatch<'t> {
    let route = found.route;
    if route.deprecation.as_ref().is_some_and(|d| d.is_gone(now)) {
        return RouteMatch::Gone { route };
    }
    let forward = route
        .rewrite
        .forward(matched_path, version_in_path, query, &found.params);
    RouteMatch::Matched(Matched {
        route,
        params: found.params,
        version,
        version_source,
        forward,
    })
}

impl PathIndex {
    fn insert(&mut self, pattern: &PathPattern, id: u32) {
        if let PathPattern::Exact(p) = pattern {
            self.exact.entry(p.clone()).or_default().push(id);
            return;
        }
        let mut node = &mut self.root;
        for seg in pattern.trie_segments() {
            node = match seg {
                Some(lit) => node.children.entry(lit.into()).or_default(),
                None => node.param.get_or_insert_with(Default::default),
            };
        }
        match pattern {
            PathPattern::Template(_) => node.template.push(id),
            _ => node.prefix.push(id),
        }
    }

    fn sort(&mut self, key: &impl Fn(&u32) -> (std::cmp::Reverse<usize>, bool, bool, usize)) {
        for ids in self.exact.values_mut() {
            ids.sort_by_key(key);
        }
        self.root.sort(key);
    }

    /// Path tiers in order: exact, templates (literal segments beat parameters,
    /// left to right), prefixes (longest first).
    fn find<'t>(
        &'t self,
        routes: &'t [Route],
        path: &str,
        req: &Request<'_>,
        allow: &mut Vec<Method>,
    ) -> Option<Found<'t>> {
        if let Some(ids) = self.exact.get(path)
            && let Some(route) = scan(routes, ids, req, allow)
        {
            return Some(Found {
                route,
                params: PathParams::default(),
            });
        }
        let mut values = [""; MAX_TEMPLATE_PARAMS];
        if let Some(found) = self
            .root
            .templates(routes, segments(path), 0, &mut values, req, allow)
        {
            return Some(found);
        }
        self.root
            .prefixes(routes, segments(path), req, allow)
            .map(|route| Found {
                route,
                params: PathParams::default(),
            })
    }
}

impl Node {
    fn sort(&mut self, key: &impl Fn(&u32) -> (std::cmp::Reverse<usize>, bool, bool, usize)) {
        self.prefix.sort_by_key(key);
        self.template.sort_by_key(key);
        for child in self.children.values_mut() {
            child.sort(key);
        }
        if let Some(p) = &mut self.param {
            p.sort(key);
        }
    }

    fn templates<'t, 'p>(
        &'t self,
        routes: &'t [Route],
        mut segs: Segments<'p>,
        captured: usize,
        values: &mut [&'p str; MAX_TEMPLATE_PARAMS],
        req: &Request<'_>,
        allow: &mut Vec<Method>,
    ) -> Option<Found<'t>> {
        let Some(seg) = segs.next() else {
            let route = scan(routes, &self.template, req, allow)?;
            let params = match &route.path {
                PathPattern::Template(t) => {
                    PathParams::from_values(t.params(), &values[..captured])
                }
                _ => PathParams::default(),
            };
            return Some(Found { route, params });
        };
        if let Some(child) = self.children.get(seg)
            && let Some(found) = child.templates(routes, segs.clone(), captured, values, req, allow)
        {
            return Some(found);
        }
        if let Some(param) = &self.param
            && !seg.is_empty()
            && captured < MAX_TEMPLATE_PARAMS
        {
            values[captured] = seg;
            return param.templates(routes, segs, captured + 1, values, req, allow);
        }
        None
    }

    fn prefixes<'t>(
        &'t self,
        routes: &'t [Route],
        mut segs: Segments<'_>,
        req: &Request<'_>,
        allow: &mut Vec<Method>,
    ) -> Option<&'t Route> {
        if let Some(seg) = segs.next()
            && let Some(child) = self.children.get(seg)
            && let Some(route) = child.prefixes(routes, segs, req, allow)
        {
            return Some(route);
        }
        scan(routes, &self.prefix, req, allow)
    }
}

/// The first candidate (they are pre-sorted) whose version, headers and method
/// fit; candidates that fail only on the method add theirs to `allow`.
fn scan<'t>(
    routes: &'t [Route],
    ids: &[u32],
    req: &Request<'_>,
    allow: &mut Vec<Method>,
) -> Option<&'t Route> {
    for id in ids {
        let route = &routes[*id as usize];
        match route.check(req.method, req.headers, req.version) {
            Check::Match => return Some(route),
            Check::WrongMethod => extend_allow(allow, &route.methods),
            Check::NoMatch => {}
        }
    }
    None
}
