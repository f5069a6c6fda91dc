//! Host and path patterns: parsing them from config and normalising the
//! request side so both compare alike.

use std::borrow::Cow;
use std::fmt;

/// Most `{param}` segments one template may have. Matching keeps captured
/// values in a fixed array on the stack, so the bound is what keeps template
/// lookup allocation-free.
pub const MAX_TEMPLATE_PARAMS: usize = 16;

/// A route's host condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com` (stored lowercase).
    Exact(Box<str>),
    /// `*.example.com`, stored as the suffix `.example.com`: any subdomain at
    /// any depth, not the apex itself.
    Wildcard(Box<str>),
    /// No host condition (`*` or omitted).
    Any,
}

impl HostPattern {
    pub(crate) fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw == "*" {
            return Ok(Self::Any);
        }
        let lower = raw.to_ascii_lowercase();
        let s = lower.strip_suffix('.').unwrap_or(&lower);
        if s.is_empty() {
            return Err("empty host");
        }
        let (wild, name) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if name.is_empty() {
            return Err("wildcard needs a suffix, as in *.example.com");
        }
        if name.contains('*') {
            return Err("'*' is only allowed as the whole first label (*.example.com)");
        }
        if name.starts_with('[') {
            if wild || !name.ends_with(']') || name[1..name.len() - 1].contains(['[', ']']) {
                return Err("an IPv6 host is written [addr] without port or wildcard");
            }
        } else if name.contains(':') {
            return Err("a host pattern has no port (ports are ignored when matching)");
        }
        if name.split('.').any(str::is_empty) {
            return Err("empty label");
        }
        if !name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        }) {
            return Err("only letters, digits, '-', '_' and '.' are allowed");
        }
        Ok(if wild {
            Self::Wildcard(format!(".{name}").into())
        } else {
            Self::Exact(name.into())
        })
    }

    /// Whether a normalised request host (see [`normalize_host`]) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => &**h == host,
            Self::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(&**suffix),
            Self::Any => true,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Wildcard(suffix) => write!(f, "*{suffix}"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// Lowercases a request host and drops its port and trailing dot, allocating
/// only when the host has uppercase letters.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let host = if raw.starts_with('[') {
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// A route's path condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// Compared byte for byte with the request path.
    Exact(Box<str>),
    /// Segment-wise prefix, stored without a trailing slash (`/` for all).
    Prefix(Box<str>),
    /// Segments of literals and `{param}`s.
    Template(Template),
}

impl PathPattern {
    /// Literal segments of a prefix or template (`None` for parameters); empty
    /// for the root.
    pub(crate) fn trie_segments(&self) -> Vec<Option<&str>> {
        match self {
            Self::Exact(_) => Vec::new(),
            Self::Prefix(p) => segments(p).map(Some).collect(),
            Self::Template(t) => t
                .segments
                .iter()
                .map(|s| match s {
                    TemplateSegment::Literal(l) => Some(&**l),
                    TemplateSegment::Param(_) => None,
                })
                .collect(),
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => write!(f, "{p}"),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Template(t) => f.write_str(&t.raw),
        }
    }
}

/// A parsed `path_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: Box<str>,
    segments: Vec<TemplateSegment>,
    params: Vec<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplateSegment {
    Literal(Box<str>),
    Param(Box<str>),
}

impl Template {
    /// Names of the `{param}` segments, left to right.
    pub fn params(&self) -> &[Box<str>] {
        &self.params
    }
}

fn check_common(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with '/'".into());
    }
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!("must not contain {c:?}"));
    }
    Ok(())
}

pub(crate) fn parse_exact(path: &str) -> Result<PathPattern, String> {
    check_common(path)?;
    Ok(PathPattern::Exact(path.into()))
}

pub(crate) fn parse_prefix(path: &str) -> Result<PathPattern, String> {
    check_common(path)?;
    let trimmed = trim_slash(path);
    if segments(trimmed).any(str::is_empty) {
        return Err("empty segment ('//')".into());
    }
    if trimmed.contains(['{', '}']) {
        return Err("'{' and '}' belong in path_template".into());
    }
    Ok(PathPattern::Prefix(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    }))
}

pub(crate) fn parse_template(path: &str) -> Result<PathPattern, String> {
    check_common(path)?;
    let mut segs = Vec::new();
    let mut params: Vec<Box<str>> = Vec::new();
    for seg in segments(trim_slash(path)) {
        if seg.is_empty() {
            return Err("empty segment ('//')".into());
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let valid = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "parameter name {name:?} must be letters, digits and '_'"
                ));
            }
            if params.iter().any(|p| &**p == name) {
                return Err(format!("parameter {{{name}}} appears twice"));
            }
            params.push(name.into());
            segs.push(TemplateSegment::Param(name.into()));
        } else if seg.contains(['{', '}']) {
            return Err(format!(
                "segment {seg:?}: a parameter must be a whole segment, as in /{{id}}/"
            ));
        } else {
            segs.push(TemplateSegment::Literal(seg.into()));
        }
    }
    if params.len() > MAX_TEMPLATE_PARAMS {
        return Err(format!("more than {MAX_TEMPLATE_PARAMS} parameters"));
    }
    Ok(PathPattern::Template(Template {
        raw: path.into(),
        segments: segs,
        params,
    }))
}

/// Drops one trailing slash (not the root's).
pub(crate) fn trim_slash(path: &str) -> &str {
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    }
}

/// The segments of a path for prefix and template matching: the leading and
/// one trailing slash are ignored, so `/` has none and `/a/b/` has `a`, `b`.
pub(crate) fn segments(path: &str) -> Segments<'_> {
    let p = path.strip_prefix('/').unwrap_or(path);
    Segments {
        rest: p.strip_suffix('/').unwrap_or(p),
        done: p.is_empty(),
    }
}

/// Iterator over path segments that borrows the path and never allocates.
#[derive(Clone)]
pub(crate) struct Segments<'a> {
    rest: &'a str,
    done: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        match self.rest.split_once('/') {
            Some((seg, rest)) => {
                self.rest = rest;
                Some(seg)
            }
            None => {
                self.done = true;
                Some(self.rest)
            }
        }
    }
}

/// Whether `path` starts with `prefix` at a segment boundary (`/` matches all).
pub(crate) fn has_segment_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert_eq!(
            HostPattern::parse("API.Example.com."),
            Ok(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostPattern::parse("*.example.com"),
            Ok(HostPattern::Wildcard(".example.com".into()))
        );
        assert_eq!(HostPattern::parse("*"), Ok(HostPattern::Any));
        assert_eq!(
            HostPattern::parse("[::1]"),
            Ok(HostPattern::Exact("[::1]".into()))
        );
        for bad in [
            "",
            "*.",
            "a.*.com",
            "*example.com",
            "host:80",
            "a..b",
            "a b",
            "[::1",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        let wild = HostPattern::parse("*.example.com").unwrap();
        assert!(wild.matches("a.example.com") && wild.matches("a.b.example.com"));
        assert!(!wild.matches("example.com") && !wild.matches("aexample.com"));
        assert_eq!(wild.to_string(), "*.example.com");
    }

    #[test]
    fn request_hosts_are_normalised() {
        assert_eq!(normalize_host("api.example.com"), "api.example.com");
        assert!(matches!(
            normalize_host("api.example.com:8080"),
            Cow::Borrowed("api.example.com")
        ));
        assert_eq!(normalize_host("API.Example.COM.:443"), "api.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("[::1]"), "[::1]");
    }

    #[test]
    fn segments_ignore_leading_and_one_trailing_slash() {
        assert_eq!(segments("/").count(), 0);
        assert_eq!(segments("/a/b/").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(segments("/a//b").collect::<Vec<_>>(), ["a", "", "b"]);
    }

    #[test]
    fn segment_prefixes() {
        assert!(has_segment_prefix("/api", "/api"));
        assert!(has_segment_prefix("/api/x", "/api"));
        assert!(!has_segment_prefix("/apix", "/api"));
        assert!(has_segment_prefix("/anything", "/"));
        assert_eq!(
            parse_prefix("/api/"),
            Ok(PathPattern::Prefix("/api".into()))
        );
        assert_eq!(parse_prefix("/"), Ok(PathPattern::Prefix("/".into())));
        assert!(parse_prefix("/a//b").is_err());
        assert!(parse_exact("/a?b").is_err());
    }
}
