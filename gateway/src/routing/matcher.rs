//! Per-route request conditions that the index cannot decide: headers,
//! methods and the API version. The index narrows a request down to a few
//! candidate routes by host and path; these checks pick among them.

use http::Method;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// One compiled `match.headers[]` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatcher {
    name: HeaderName,
    condition: HeaderCondition,
}

/// What a header must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderCondition {
    /// Some value of the header equals this one exactly.
    Equals(HeaderValue),
    /// The header is present with any value.
    Present,
    /// The header is absent.
    Absent,
    /// The `content-type` is gRPC's or gRPC-Web's (`match.grpc`), or the
    /// request is a CORS preflight (which has no body, so no content type)
    /// asking about such a call from a browser.
    Grpc,
}

impl HeaderMatcher {
    pub(crate) fn new(name: HeaderName, condition: HeaderCondition) -> Self {
        Self { name, condition }
    }

    /// Header the condition is about.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The condition.
    pub fn condition(&self) -> &HeaderCondition {
        &self.condition
    }

    /// Whether the request headers satisfy this condition.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        match &self.condition {
            HeaderCondition::Equals(v) => headers.get_all(&self.name).iter().any(|h| h == v),
            HeaderCondition::Present => headers.contains_key(&self.name),
            HeaderCondition::Absent => !headers.contains_key(&self.name),
            HeaderCondition::Grpc => {
                headers
                    .get(&self.name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(proxy_core::grpc::Protocol::from_content_type)
                    .is_some()
                    || headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            }
        }
    }
}

/// Whether `method` is allowed by a route's method list (empty: any). A route
/// that allows `GET` also allows `HEAD`, as RFC 9110 expects of GET resources.
pub(crate) fn method_allowed(methods: &[Method], method: &Method) -> bool {
    methods.is_empty()
        || methods.contains(method)
        || (method == Method::HEAD && methods.contains(&Method::GET))
}

/// Adds a route's methods to an `Allow` list, keeping it free of duplicates.
pub(crate) fn extend_allow(allow: &mut Vec<Method>, methods: &[Method]) {
    for m in methods {
        if !allow.contains(m) {
            allow.push(m.clone());
        }
        if m == Method::GET && !allow.contains(&Method::HEAD) {
            allow.push(Method::HEAD);
        }
    }
}

/// Sorts an `Allow` list into a stable order: the standard methods in RFC 9110
/// order, then extension methods alphabetically.
pub(crate) fn sort_allow(allow: &mut [Method]) {
    const ORDER: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    allow.sort_by(|a, b| {
        let rank = |m: &Method| ORDER.iter().position(|o| o == m).unwrap_or(ORDER.len());
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.as_str().cmp(b.as_str()))
    });
}

/// Renders an `Allow` header value such as `GET, HEAD, POST`.
pub fn allow_header(allow: &[Method]) -> HeaderValue {
    let joined = allow
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    // Method names are HTTP tokens, so the joined list is always a valid value.
    HeaderValue::from_str(&joined).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn equals_checks_every_value_case_sensitively() {
        let m = HeaderMatcher::new(
            HeaderName::from_static("x-tenant"),
            HeaderCondition::Equals(HeaderValue::from_static("acme")),
        );
        assert!(m.matches(&headers(&[("x-tenant", "other"), ("x-tenant", "acme")])));
        assert!(!m.matches(&headers(&[("x-tenant", "ACME")])));
        assert!(!m.matches(&headers(&[])));
    }

    #[test]
    fn present_and_absent() {
        let present = HeaderMatcher::new(
            HeaderName::from_static("x-canary"),
            HeaderCondition::Present,
        );
        let absent =
            HeaderMatcher::new(HeaderName::from_static("x-canary"), HeaderCondition::Absent);
        let with = headers(&[("x-canary", "")]);
        assert!(present.matches(&with) && !absent.matches(&with));
        assert!(!present.matches(&HeaderMap::new()) && absent.matches(&HeaderMap::new()));
    }

    #[test]
    fn grpc_content_types_only() {
        let m = HeaderMatcher::new(http::header::CONTENT_TYPE, HeaderCondition::Grpc);
        assert!(m.matches(&headers(&[("content-type", "application/grpc")])));
        assert!(m.matches(&headers(&[("content-type", "application/grpc+proto")])));
        assert!(m.matches(&headers(&[("content-type", "application/grpc-web-text")])));
        assert!(!m.matches(&headers(&[("content-type", "application/json")])));
        assert!(!m.matches(&headers(&[])));
    }

    #[test]
    fn get_admits_head_and_empty_list_admits_all() {
        assert!(method_allowed(&[Method::GET], &Method::HEAD));
        assert!(!method_allowed(&[Method::POST], &Method::HEAD));
        assert!(method_allowed(&[], &Method::DELETE));
        assert!(!method_allowed(&[Method::GET], &Method::POST));
    }

    #[test]
    fn allow_is_deduplicated_and_ordered() {
        let mut allow = Vec::new();
        extend_allow(&mut allow, &[Method::POST, Method::GET]);
        extend_allow(
            &mut allow,
            &[Method::GET, Method::from_bytes(b"PURGE").unwrap()],
        );
        sort_allow(&mut allow);
        assert_eq!(allow_header(&allow), "GET, HEAD, POST, PURGE");
    }
}
