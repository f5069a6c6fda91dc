//! Which requests are gRPC, and which service and method a call names.
//!
//! A gRPC call is an HTTP/2 POST whose `content-type` is `application/grpc`
//! or `application/grpc+<codec>`; a gRPC-Web call (from a browser, over any
//! HTTP version) is `application/grpc-web[+codec]`, or
//! `application/grpc-web-text[+codec]` when its body is base64. The path is
//! `/<package.Service>/<Method>`.

use http::HeaderMap;
use http::header::CONTENT_TYPE;

/// The wire protocol a request speaks, from its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/grpc[+codec]`
    Grpc,
    /// `application/grpc-web[+codec]`: binary frames, trailers in the body.
    GrpcWeb,
    /// `application/grpc-web-text[+codec]`: the gRPC-Web body, base64.
    GrpcWebText,
}

impl Protocol {
    /// The protocol of a `content-type` value, if it is one of gRPC's.
    pub fn from_content_type(ct: &str) -> Option<Protocol> {
        // Parameters (`; charset=…`) are allowed after the media type.
        let media = ct.split(';').next().unwrap_or("").trim();
        let (base, _codec) = media.split_once('+').unwrap_or((media, ""));
        if base.eq_ignore_ascii_case("application/grpc") {
            Some(Protocol::Grpc)
        } else if base.eq_ignore_ascii_case("application/grpc-web") {
            Some(Protocol::GrpcWeb)
        } else if base.eq_ignore_ascii_case("application/grpc-web-text") {
            Some(Protocol::GrpcWebText)
        } else {
            None
        }
    }

    /// The protocol of a message by its headers.
    pub fn of(headers: &HeaderMap) -> Option<Protocol> {
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Protocol::from_content_type)
    }

    pub fn is_web(self) -> bool {
        matches!(self, Protocol::GrpcWeb | Protocol::GrpcWebText)
    }
}

/// True when the message is gRPC proper (`application/grpc[+codec]`), the
/// protocol the upstreams speak.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    Protocol::of(headers) == Some(Protocol::Grpc)
}

/// True for gRPC and gRPC-Web alike: a client that reads `grpc-status`.
pub fn is_any_grpc(headers: &HeaderMap) -> bool {
    Protocol::of(headers).is_some()
}

/// The `(service, method)` a gRPC path names: `/weir.catalog.v1.Catalog/Get`
/// gives `("weir.catalog.v1.Catalog", "Get")`. `None` for a path of any
/// other shape.
pub fn service_method(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let p = Protocol::from_content_type;
        assert_eq!(p("application/grpc"), Some(Protocol::Grpc));
        assert_eq!(p("application/grpc+proto"), Some(Protocol::Grpc));
        assert_eq!(p("Application/GRPC+json; x=1"), Some(Protocol::Grpc));
        assert_eq!(p("application/grpc-web"), Some(Protocol::GrpcWeb));
        assert_eq!(p("application/grpc-web+proto"), Some(Protocol::GrpcWeb));
        assert_eq!(
            p("application/grpc-web-text+proto"),
            Some(Protocol::GrpcWebText)
        );
        assert_eq!(p("application/grpcx"), None);
        assert_eq!(p("application/json"), None);
        let mut h = HeaderMap::new();
        assert!(!is_grpc(&h));
        h.insert(CONTENT_TYPE, "application/grpc-web".parse().unwrap());
        assert!(!is_grpc(&h));
        assert!(is_any_grpc(&h));
    }

    #[test]
    fn paths() {
        assert_eq!(
            service_method("/weir.catalog.v1.Catalog/GetProduct"),
            Some(("weir.catalog.v1.Catalog", "GetProduct"))
        );
        assert_eq!(service_method("/svc"), None);
        assert_eq!(service_method("/svc/"), None);
        assert_eq!(service_method("//m"), None);
        assert_eq!(service_method("/a/b/c"), None);
    }
}
