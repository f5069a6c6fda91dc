//! Raw serde shape of the `routes:` entries and the `versioning:` section.
//!
//! These structs mirror the YAML file and do no validation beyond what serde
//! does (`deny_unknown_fields`, types); [`RouteTable::compile`](super::RouteTable::compile)
//! turns them into the typed, indexed route table and reports every problem at
//! once with its field path. Durations and sizes use the shared
//! [`HumanDuration`] and [`ByteSize`] newtypes, so a bad one is a parse error
//! with the file's line, like everywhere else in the config.
//!
//! `RouteConfig` is the one place route-level fields live: the gateway adds its
//! policy fields (`auth`, `rate_limit`, `cors`) here and compiles them beside
//! the route table, keyed by [`Route::index`](super::Route::index).

use std::collections::BTreeMap;

use proxy_core::config::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// One entry of `routes:`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name; used in metrics, logs and errors.
    pub name: String,
    /// What requests this route takes. Omitted: every request (prefix `/`, any host).
    #[serde(rename = "match", default)]
    pub matches: MatchConfig,
    /// API version this route serves; omitted: any version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The single upstream, by name. Exactly one of `upstream` and `split`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Weighted upstreams (canary). Exactly one of `upstream` and `split`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<SplitConfig>,
    /// Path and header rewrites on the way to the upstream and back.
    #[serde(default, skip_serializing_if = "RewriteConfig::is_empty")]
    pub rewrite: RewriteConfig,
    /// Marks the route deprecated (RFC 9745 / RFC 8594 headers, `410` after sunset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<DeprecationConfig>,
    /// Whole-request timeout such as `"5s"` (humantime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Per-route limits overriding the global ones.
    #[serde(default, skip_serializing_if = "RouteLimitsConfig::is_empty")]
    pub limits: RouteLimitsConfig,
    /// Who may call the route (`auth.default` when omitted); see docs/policies.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<weir_policy::config::RouteAuthConfig>,
    /// Rate-limit policies by name (`rate_limits.default` when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Vec<String>>,
    /// Cross-origin rules; preflights are answered by the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<weir_policy::config::CorsConfig>,
}

/// `routes[].match`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// `api.example.com`, `*.example.com` (any subdomain, not the apex) or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Several host patterns; the route matches any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Exact path, compared byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Path prefix, compared segment by segment (`/products` matches `/products/1`, not `/productsx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Path with `{param}` segments, e.g. `/products/{id}/reviews/{review_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_template: Option<String>,
    /// Allowed methods; omitted: any. `GET` also admits `HEAD`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatchConfig>,
    /// gRPC calls only, optionally of one service or method; instead of
    /// `path`, `path_prefix` and `path_template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMatchConfig>,
}

/// `routes[].match.grpc`: the route takes only gRPC (and gRPC-Web) calls,
/// recognised by their `content-type`. `{}` takes every call on the route's
/// path; `service` every method of one service (`/package.Service/*`);
/// `service` and `method` one method (`/package.Service/Method`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcMatchConfig {
    /// Fully qualified service name, e.g. `weir.catalog.v1.Catalog`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method name, e.g. `GetProduct`; needs `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `routes[].match.headers[]`: exactly one of `value` and `present`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatchConfig {
    /// Header name (case-insensitive).
    pub name: String,
    /// Some value of the header equals this exactly (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `true`: the header is present with any value; `false`: it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// `routes[].split[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    /// Upstream name.
    pub upstream: String,
    /// Relative weight; `0` keeps the entry configured but sends it nothing.
    pub weight: u32,
}

/// `routes[].rewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// Remove this leading path prefix (segment-wise) before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Replace a leading path prefix (segment-wise) before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix: Option<ReplacePrefixConfig>,
    /// Replace the whole path; `{param}` is substituted from the path template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Forward the path with a `/vN` prefix for the request's version: kept when
    /// the client sent it, added when the version came from a header, the media
    /// type or the default. Off (the default): the upstream path has no `/vN`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_version_prefix: bool,
    /// Header edits on the request to the upstream.
    #[serde(default, skip_serializing_if = "HeaderOpsConfig::is_empty")]
    pub request_headers: HeaderOpsConfig,
    /// Header edits on the response to the client.
    #[serde(default, skip_serializing_if = "HeaderOpsConfig::is_empty")]
    pub response_headers: HeaderOpsConfig,
}

impl RewriteConfig {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `rewrite.replace_prefix`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacePrefixConfig {
    /// Leading prefix to replace.
    pub from: String,
    /// What it becomes.
    pub to: String,
}

/// Header edits, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOpsConfig {
    /// Replace every value of the header with this one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append a value, keeping existing ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove every value of these headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOpsConfig {
    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// `routes[].deprecated`. All fields are optional; the block's presence marks
/// the route deprecated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeprecationConfig {
    /// When the route was (or will be) deprecated, RFC 3339 UTC (`2026-01-01T00:00:00Z`)
    /// or a date (`2026-01-01`). Sent as the `Deprecation` header.
    #[serde(
        default,
        alias = "deprecation",
        skip_serializing_if = "Option::is_none"
    )]
    pub since: Option<String>,
    /// When the route goes away; from then on requests get `410 Gone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<String>,
    /// Migration document, sent as `Link: <url>; rel="deprecation"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// `routes[].limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimitsConfig {
    /// Largest request body, such as `"10MiB"`; overrides `limits.max_body_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<ByteSize>,
}

impl RouteLimitsConfig {
    fn is_empty(&self) -> bool {
        self.max_body_bytes.is_none()
    }
}

/// The `versioning:` section: where a request's API version comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VersioningConfig {
    /// Version of a request that names none.
    #[serde(default = "default_version")]
    pub default: u32,
    /// Headers carrying the version (`2` or `v2`), tried in order.
    #[serde(default = "default_headers")]
    pub headers: Vec<String>,
    /// Media type in `Accept` carrying the version; `{n}` stands for the number.
    /// `null` turns media-type versioning off.
    #[serde(default = "default_media_type")]
    pub media_type: Option<String>,
    /// Take the version from a leading `/vN` path segment.
    #[serde(default = "default_true")]
    pub path_prefix: bool,
}

impl Default for VersioningConfig {
    fn default() -> Self {
        Self {
            default: default_version(),
            headers: default_headers(),
            media_type: default_media_type(),
            path_prefix: true,
        }
    }
}

fn default_version() -> u32 {
    1
}

fn default_headers() -> Vec<String> {
    vec!["Api-Version".to_owned(), "Accept-Version".to_owned()]
}

fn default_media_type() -> Option<String> {
    Some("application/vnd.weir.v{n}+json".to_owned())
}

fn default_true() -> bool {
    true
}
