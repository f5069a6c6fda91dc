//! gRPC-Web: browser clients, translated to gRPC for the upstreams.
//!
//! A browser cannot read HTTP/2 trailers, so gRPC-Web carries a call's
//! trailers in the response body, as a last frame whose flag byte is `0x80`
//! (`grpc-status: 0\r\ngrpc-message: …\r\n`); `application/grpc-web-text`
//! also base64-encodes the body both ways, for clients that cannot stream
//! binary. The gateway does what Envoy's `grpc_web` filter does:
//!
//! - the request's `content-type` becomes `application/grpc[+codec]`, `te:
//!   trailers` is added, a `-text` body is decoded from base64 as it streams
//!   ([`text::Decoded`]);
//! - the response's `content-type` becomes the client's again, its trailers
//!   become the trailer frame at the end of the body ([`response::Framed`]),
//!   base64-encoded for `-text`; a trailers-only answer keeps `grpc-status`
//!   in its headers, which gRPC-Web clients read too;
//! - a cross-origin response exposes `grpc-status` and `grpc-message`, or the
//!   browser would hide the outcome from the client.
//!
//! Everything in between (routing, policies, refusals, deadlines, metrics)
//! sees an ordinary gRPC call. CORS preflights are answered by the route's
//! `cors` rules like any other.

mod response;
mod text;

use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_LENGTH, CONTENT_TYPE, TE,
};
use http::{HeaderMap, HeaderValue, Request, Response};
use proxy_core::body::{self, Body};
use proxy_core::grpc::Protocol;

pub(crate) use text::Decoded;

/// The gRPC-Web flavour of a request the gateway translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Web {
    /// Base64 bodies (`application/grpc-web-text`).
    pub(crate) text: bool,
    /// The client's own `content-type`, for the response.
    content_type: HeaderValue,
}

/// Turns a gRPC-Web request into a gRPC one (headers only; a `-text` body is
/// decoded where the body is wrapped, see [`Decoded`]). `None`, and the
/// request untouched, for anything else.
pub(crate) fn accept<B>(req: &mut Request<B>) -> Option<Web> {
    let protocol = Protocol::of(req.headers())?;
    if !protocol.is_web() {
        return None;
    }
    let original = req.headers().get(CONTENT_TYPE)?.clone();
    let ct = original.to_str().ok()?;
    let media = ct.split(';').next().unwrap_or("").trim();
    let codec = media.split_once('+').map(|(_, c)| c);
    let grpc = match codec {
        Some(c) => HeaderValue::from_str(&format!("application/grpc+{c}")).ok()?,
        None => HeaderValue::from_static("application/grpc"),
    };
    let text = protocol == Protocol::GrpcWebText;
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, grpc);
    headers.insert(TE, HeaderValue::from_static("trailers"));
    if text {
        // The decoded body is shorter.
        headers.remove(CONTENT_LENGTH);
    }
    Some(Web {
        text,
        content_type: original,
    })
}

/// Turns the gRPC response (or the gateway's own refusal) back into the
/// client's gRPC-Web.
pub(crate) fn respond(resp: Response<Body>, web: &Web) -> Response<Body> {
    let grpc = Protocol::of(resp.headers()) == Some(Protocol::Grpc);
    let (mut head, inner) = resp.into_parts();
    expose_grpc_headers(&mut head.headers);
    if !grpc {
        // Not a gRPC answer (an upstream's HTML error page): as it is.
        return Response::from_parts(head, inner);
    }
    head.headers.insert(CONTENT_TYPE, web.content_type.clone());
    head.headers.remove(CONTENT_LENGTH);
    Response::from_parts(head, body::boxed(response::Framed::new(inner, web.text)))
}

/// Adds `grpc-status, grpc-message` to `Access-Control-Expose-Headers` of a
/// cross-origin response.
fn expose_grpc_headers(headers: &mut HeaderMap) {
    if !headers.contains_key(ACCESS_CONTROL_ALLOW_ORIGIN) {
        return;
    }
    let listed = |name: &str| {
        headers
            .get_all(ACCESS_CONTROL_EXPOSE_HEADERS)
            .iter()
            .any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|h| h.trim() == "*" || h.trim().eq_ignore_ascii_case(name))
                })
            })
    };
    let missing: Vec<&str> = ["grpc-status", "grpc-message"]
        .into_iter()
        .filter(|n| !listed(n))
        .collect();
    if !missing.is_empty()
        && let Ok(v) = HeaderValue::from_str(&missing.join(", "))
    {
        headers.append(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_grpc() {
        let mut req = Request::post("/pkg.Svc/M")
            .header(CONTENT_TYPE, "application/grpc-web-text+proto")
            .header(CONTENT_LENGTH, "12")
            .body(())
            .unwrap();
        let web = accept(&mut req).unwrap();
        assert!(web.text);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc+proto");
        assert_eq!(req.headers()[TE], "trailers");
        assert!(req.headers().get(CONTENT_LENGTH).is_none());

        let mut req = Request::post("/pkg.Svc/M")
            .header(CONTENT_TYPE, "application/grpc-web")
            .body(())
            .unwrap();
        assert!(!accept(&mut req).unwrap().text);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/grpc");

        let mut plain = Request::post("/")
            .header(CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        assert_eq!(accept(&mut plain), None);
    }

    #[test]
    fn cross_origin_responses_expose_the_status() {
        let mut h = HeaderMap::new();
        expose_grpc_headers(&mut h);
        assert!(h.is_empty());
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("grpc-status, x-request-id"),
        );
        expose_grpc_headers(&mut h);
        let all: Vec<_> = h.get_all(ACCESS_CONTROL_EXPOSE_HEADERS).iter().collect();
        assert_eq!(all, ["grpc-status, x-request-id", "grpc-message"]);
    }
}
