//! A compiled route and the result of looking a request up.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderMap;
use http::{Method, Uri};

use super::config::RouteConfig;
use super::deprecation::Deprecation;
use super::matcher::{HeaderMatcher, method_allowed};
use super::pattern::{HostPattern, PathPattern};
use super::rewrite::Rewrite;
use super::split::Upstreams;

/// One compiled route: what the proxy needs to forward a request it matched.
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) hosts: Vec<HostPattern>,
    pub(crate) path: PathPattern,
    pub(crate) methods: Vec<Method>,
    pub(crate) headers: Vec<HeaderMatcher>,
    pub(crate) version: Option<u32>,
    pub(crate) upstreams: Upstreams,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_body_bytes: Option<u64>,
    pub(crate) rewrite: Rewrite,
    pub(crate) deprecation: Option<Deprecation>,
    pub(crate) config: RouteConfig,
}

/// What a candidate route says about a request once host and path matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Match,
    /// Everything matched except the method.
    WrongMethod,
    NoMatch,
}

impl Route {
    /// Position in `routes:`; stable for one table, so per-route state the
    /// gateway compiles beside the table (auth, rate limits, metrics handles)
    /// can live in a `Vec` indexed by it.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The route's unique name (`Arc` so logs and metrics can keep it cheaply).
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Host patterns (`[Any]` when the route has no host condition).
    pub fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// Path condition.
    pub fn path(&self) -> &PathPattern {
        &self.path
    }

    /// Allowed methods; empty means any.
    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// Header conditions.
    pub fn headers(&self) -> &[HeaderMatcher] {
        &self.headers
    }

    /// API version served; `None` serves every version.
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    /// Where matched requests go.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// Whole-request timeout, if the route sets one.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Request body limit in bytes, if the route overrides the global one.
    pub fn max_body_bytes(&self) -> Option<u64> {
        self.max_body_bytes
    }

    /// Path and header rewrites.
    pub fn rewrite(&self) -> &Rewrite {
        &self.rewrite
    }

    /// Deprecation, if the route is deprecated.
    pub fn deprecation(&self) -> Option<&Deprecation> {
        self.deprecation.as_ref()
    }

    /// The raw config the route was compiled from (for fields the gateway
    /// compiles itself, and for `/config`).
    pub fn config(&self) -> &RouteConfig {
        &self.config
    }

    /// Applies `rewrite.request_headers` to the upstream request.
    pub fn apply_request_headers(&self, headers: &mut HeaderMap) {
        self.rewrite.request_headers().apply(headers);
    }

    /// Applies `rewrite.response_headers` and the deprecation headers to the
    /// client response (call it for `410 Gone` too).
    pub fn apply_response_headers(&self, headers: &mut HeaderMap) {
        self.rewrite.response_headers().apply(headers);
        if let Some(d) = &self.deprecation {
            d.apply(headers);
        }
    }

    pub(crate) fn check(&self, method: &Method, headers: &HeaderMap, version: u32) -> Check {
        if self.version.is_some_and(|v| v != version)
            || !self.headers.iter().all(|h| h.matches(headers))
        {
            return Check::NoMatch;
        }
        if method_allowed(&self.methods, method) {
            Check::Match
        } else {
            Check::WrongMethod
        }
    }

    /// Order among routes with the same host and path specificity: more
    /// header conditions, then a fixed version, then a method list, then
    /// declaration order (smaller key wins).
    pub(crate) fn tie_key(&self) -> (std::cmp::Reverse<usize>, bool, bool, usize) {
        (
            std::cmp::Reverse(self.headers.len()),
            self.version.is_none(),
            self.methods.is_empty(),
            self.index,
        )
    }
}

/// Values of a template's `{param}` segments, as they appear in the request
/// path (still percent-encoded). Empty, and not allocated, for other routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams<'r> {
    items: Vec<(&'r str, String)>,
}

impl<'r> PathParams<'r> {
    pub(crate) fn from_values(names: &'r [Box<str>], values: &[&str]) -> Self {
        Self {
            items: names
                .iter()
                .zip(values)
                .map(|(n, v)| (&**n, (*v).to_owned()))
                .collect(),
        }
    }

    /// The value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn value_at(&self, i: usize) -> Option<&str> {
        self.items.get(i).map(|(_, v)| v.as_str())
    }

    /// `(name, value)` in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A request matched a route.
#[derive(Debug, Clone)]
pub struct Matched<'r> {
    /// The winning route.
    pub route: &'r Route,
    /// Template parameters.
    pub params: PathParams<'r>,
    /// The request's API version.
    pub version: u32,
    /// Where the version came from.
    pub version_source: super::VersionSource,
    pub(crate) forward: Option<String>,
}

impl Matched<'_> {
    /// Path and query to send upstream: the rewritten one, or the request's own
    /// when nothing changes (no allocation in that case).
    pub fn forward_path_and_query<'a>(&'a self, request_uri: &'a Uri) -> &'a str {
        match &self.forward {
            Some(p) => p,
            None => request_uri.path_and_query().map_or("/", |pq| pq.as_str()),
        }
    }

    /// Picks the upstream for this request (weighted when the route splits).
    pub fn upstream(&self) -> &'_ str {
        self.route.upstreams.choose()
    }
}

/// The outcome of [`RouteTable::lookup`](super::RouteTable::lookup).
#[derive(Debug, Clone)]
pub enum RouteMatch<'r> {
    /// Forward the request.
    Matched(Matched<'r>),
    /// Routes match host, path, headers and version but not the method:
    /// answer `405` with `Allow` (see [`allow_header`](super::allow_header)).
    MethodNotAllowed {
        /// Methods those routes accept, in a stable order.
        allow: Vec<Method>,
    },
    /// The winning route is past its sunset: answer `410 Gone` with
    /// [`Route::apply_response_headers`].
    Gone {
        /// The sunset route.
        route: &'r Route,
    },
    /// No route: answer `404`.
    NotFound,
    /// The version header that decides is not a version number
    /// (`Api-Version: abc`): answer `400` rather than guess.
    BadVersion {
        /// The header with the bad value.
        header: http::HeaderName,
    },
}
