//! The gateway's compiled route table: pure matching logic, no I/O.
//!
//! `routes:` and `versioning:` from the config ([`config`]) are validated and
//! indexed by [`RouteTable::compile`]; the gateway swaps whole tables on reload
//! and calls [`RouteTable::lookup`] per request. `docs/routing.md` documents
//! the precedence rules.
//!
//! # Layout
//!
//! - [`config`]: raw serde structs (`RouteConfig`, `VersioningConfig`).
//! - `compile`: validation into typed routes, every error with its field path.
//! - `table`: host and path indexes and the lookup.
//! - `pattern`: host and path patterns; `matcher`: header and method checks.
//! - `version`: where a request's API version comes from.
//! - `rewrite`: forwarded path and header edits; `deprecation`: RFC 9745/8594
//!   headers and sunset; `split`: weighted upstream choice.

pub mod config;

mod compile;
mod deprecation;
mod error;
mod matcher;
mod pattern;
mod rewrite;
mod route;
mod split;
mod table;
mod version;

#[cfg(test)]
mod tests;

pub use config::{RouteConfig, VersioningConfig};
pub use deprecation::{DEPRECATION, Deprecation, SUNSET};
pub use error::{RouteError, RouteErrorKind, RouteErrors};
pub use matcher::{HeaderCondition, HeaderMatcher, allow_header};
pub use pattern::{HostPattern, MAX_TEMPLATE_PARAMS, PathPattern, Template, normalize_host};
pub use rewrite::{HeaderOps, PathRewrite, Rewrite, TemplatePart};
pub use route::{Matched, PathParams, Route, RouteMatch};
pub use split::Upstreams;
pub use table::RouteTable;
pub use version::{VersionSource, Versioning};
