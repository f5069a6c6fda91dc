//! Rewrites on the way to the upstream and back: the forwarded path (prefix
//! replacement or a template with `{param}`s, the `/vN` version segment, the
//! query kept as is) and header edits on requests and responses.

use std::fmt::Write as _;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::config::{HeaderOpsConfig, RewriteConfig};
use super::error::{RouteError, RouteErrorKind};
use super::pattern::{PathPattern, has_segment_prefix, trim_slash};
use super::route::PathParams;

/// A route's compiled `rewrite:` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    path: PathRewrite,
    keep_version_prefix: bool,
    request_headers: HeaderOps,
    response_headers: HeaderOps,
}

/// How the forwarded path is derived from the matched path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PathRewrite {
    /// Forward the matched path.
    #[default]
    None,
    /// Replace a leading prefix (segment-wise); `strip_prefix` is `to: ""`.
    Prefix {
        /// Prefix to replace, without trailing slash.
        from: Box<str>,
        /// Replacement.
        to: Box<str>,
    },
    /// Replace the whole path, substituting template parameters.
    Template(Vec<TemplatePart>),
}

/// A piece of a `rewrite.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Copied as is.
    Literal(Box<str>),
    /// The value of the route's n-th path parameter.
    Param(usize),
}

impl Rewrite {
    pub(crate) fn compile(
        cfg: &RewriteConfig,
        pattern: &PathPattern,
        field: &str,
        errors: &mut Vec<RouteError>,
    ) -> Self {
        let strip = cfg.strip_prefix.as_deref().filter(|s| !s.is_empty());
        let set = [
            strip.is_some(),
            cfg.replace_prefix.is_some(),
            cfg.path.is_some(),
        ];
        let path = if set.iter().filter(|b| **b).count() > 1 {
            errors.push(RouteError::new(
                field,
                RouteErrorKind::Conflict("use only one of strip_prefix, replace_prefix and path"),
            ));
            PathRewrite::None
        } else if let Some(from) = strip {
            prefix_rewrite(from, "", &format!("{field}.strip_prefix"), errors)
        } else if let Some(r) = &cfg.replace_prefix {
            prefix_rewrite(&r.from, &r.to, &format!("{field}.replace_prefix"), errors)
        } else if let Some(p) = &cfg.path {
            template_rewrite(p, pattern, &format!("{field}.path"), errors)
        } else {
            PathRewrite::None
        };
        Self {
            path,
            keep_version_prefix: cfg.keep_version_prefix,
            request_headers: HeaderOps::compile(
                &cfg.request_headers,
                &format!("{field}.request_headers"),
                errors,
            ),
            response_headers: HeaderOps::compile(
                &cfg.response_headers,
                &format!("{field}.response_headers"),
                errors,
            ),
        }
    }

    /// The path rewrite.
    pub fn path(&self) -> &PathRewrite {
        &self.path
    }

    /// Whether the `/vN` segment the version came from is forwarded.
    pub fn keep_version_prefix(&self) -> bool {
        self.keep_version_prefix
    }

    /// Header edits for the upstream request.
    pub fn request_headers(&self) -> &HeaderOps {
        &self.request_headers
    }

    /// Header edits for the client response.
    pub fn response_headers(&self) -> &HeaderOps {
        &self.response_headers
    }

    /// The upstream path and query, or `None` when it equals the request's
    /// (no path rewrite and the `/vN` segment left as the client sent it), so the
    /// common case does not allocate. `matched` is the path as matched (without
    /// a `/vN` the version was taken from).
    pub(crate) fn forward(
        &self,
        matched: &str,
        version: VersionInPath<'_>,
        query: Option<&str>,
        params: &PathParams<'_>,
    ) -> Option<String> {
        let unchanged_version = match version {
            VersionInPath::Sent(_) => self.keep_version_prefix,
            VersionInPath::Absent(_) => !self.keep_version_prefix,
            VersionInPath::Literal => true,
        };
        if matches!(self.path, PathRewrite::None) && unchanged_version {
            return None;
        }
        let mut out = String::with_capacity(matched.len() + query.map_or(0, |q| q.len() + 1) + 8);
        match (version, self.keep_version_prefix) {
            (VersionInPath::Sent(segment), true) => out.push_str(segment),
            // Writing into a `String` cannot fail.
            (VersionInPath::Absent(n), true) => drop(write!(out, "/v{n}")),
            _ => {}
        }
        let prefix_len = out.len();
        match &self.path {
            PathRewrite::None => out.push_str(matched),
            PathRewrite::Prefix { from, to } => {
                if has_segment_prefix(matched, from) {
                    let rest = if &**from == "/" {
                        matched
                    } else {
                        &matched[from.len()..]
                    };
                    join(&mut out, to, rest);
                } else {
                    out.push_str(matched);
                }
            }
            PathRewrite::Template(parts) => {
                for part in parts {
                    match part {
                        TemplatePart::Literal(l) => out.push_str(l),
                        TemplatePart::Param(i) => out.push_str(params.value_at(*i).unwrap_or("")),
                    }
                }
            }
        }
        if out.len() == prefix_len || !out[prefix_len..].starts_with('/') {
            out.insert(prefix_len, '/');
        }
        // A kept `/v2` followed by a rewritten `/` forwards as `/v2`, not `/v2/`.
        if prefix_len > 0 && &out[prefix_len..] == "/" {
            out.truncate(prefix_len);
        }
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }
}

/// How the API version appears in the request path, for the forwarded path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VersionInPath<'p> {
    /// The client sent this `/vN` segment and the route matched without it.
    Sent(&'p str),
    /// The version came from a header, the media type or the default.
    Absent(u32),
    /// The path starts with `/vN` but the route matched it as a literal.
    Literal,
}

/// `to` + `rest` with exactly one slash between them.
fn join(out: &mut String, to: &str, rest: &str) {
    match (to.ends_with('/'), rest.starts_with('/')) {
        (true, true) => {
            out.push_str(to);
            out.push_str(&rest[1..]);
        }
        _ => {
            out.push_str(to);
            out.push_str(rest);
        }
    }
}

fn prefix_rewrite(from: &str, to: &str, field: &str, errors: &mut Vec<RouteError>) -> PathRewrite {
    let bad = |p: &str| !p.starts_with('/') || p.contains(['?', '#', ' ']);
    if bad(from) {
        errors.push(RouteError::new(
            field,
            RouteErrorKind::BadPath {
                path: from.to_owned(),
                reason: "a prefix must start with '/'".into(),
            },
        ));
    }
    if !to.is_empty() && bad(to) {
        errors.push(RouteError::new(
            format!("{field}.to"),
            RouteErrorKind::BadPath {
                path: to.to_owned(),
                reason: "the replacement must be empty or start with '/'".into(),
            },
        ));
    }
    PathRewrite::Prefix {
        from: trim_slash(from).into(),
        to: to.into(),
    }
}

fn template_rewrite(
    path: &str,
    pattern: &PathPattern,
    field: &str,
    errors: &mut Vec<RouteError>,
) -> PathRewrite {
    let params: &[Box<str>] = match pattern {
        PathPattern::Template(t) => t.params(),
        _ => &[],
    };
    let mut parts = Vec::new();
    let mut rest = path;
    let fail = |reason: String| {
        RouteError::new(
            field,
            RouteErrorKind::BadPath {
                path: path.to_owned(),
                reason,
            },
        )
    };
    if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
        errors.push(fail("must start with '/'".into()));
        return PathRewrite::None;
    }
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            errors.push(fail("unclosed '{'".into()));
            return PathRewrite::None;
        };
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].into()));
        }
        let name = &rest[open + 1..close];
        match params.iter().position(|p| &**p == name) {
            Some(i) => parts.push(TemplatePart::Param(i)),
            None => {
                errors.push(fail(format!(
                    "{{{name}}} is not a parameter of match.path_template"
                )));
                return PathRewrite::None;
            }
        }
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        errors.push(fail("unmatched '}'".into()));
        return PathRewrite::None;
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.into()));
    }
    PathRewrite::Template(parts)
}

/// Header edits, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderOps {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderOps {
    fn compile(cfg: &HeaderOpsConfig, field: &str, errors: &mut Vec<RouteError>) -> Self {
        let name = |n: &str, f: String, errors: &mut Vec<RouteError>| match HeaderName::from_bytes(
            n.as_bytes(),
        ) {
            Ok(h) => Some(h),
            Err(e) => {
                errors.push(RouteError::new(
                    f,
                    RouteErrorKind::BadHeaderName(n.to_owned(), e),
                ));
                None
            }
        };
        let pairs = |map: &std::collections::BTreeMap<String, String>,
                     op: &str,
                     errors: &mut Vec<RouteError>| {
            let mut out = Vec::with_capacity(map.len());
            for (n, v) in map {
                let f = format!("{field}.{op}.{n}");
                let value = HeaderValue::from_str(v)
                    .map_err(|e| {
                        errors.push(RouteError::new(
                            f.clone(),
                            RouteErrorKind::BadHeaderValue(v.clone(), e),
                        ))
                    })
                    .ok();
                if let (Some(h), Some(v)) = (name(n, f, errors), value) {
                    out.push((h, v));
                }
            }
            out
        };
        let remove = cfg
            .remove
            .iter()
            .enumerate()
            .filter_map(|(i, n)| name(n, format!("{field}.remove[{i}]"), errors))
            .collect();
        Self {
            remove,
            set: pairs(&cfg.set, "set", errors),
            add: pairs(&cfg.add, "add", errors),
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the edits: remove, then set (replacing all values), then add (appending).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}
