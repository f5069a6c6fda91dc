//! Refusing a gRPC call in gRPC terms: a trailers-only response.
//!
//! An HTML page or a problem+json document means nothing to a gRPC client:
//! it reads `grpc-status`, and a non-200 status or a body that is not gRPC
//! framing becomes an opaque `UNKNOWN`/`INTERNAL` error on its side. So a call
//! the proxy refuses is answered the way a gRPC server answers one it fails
//! before any message: HTTP 200, `content-type: application/grpc`, and
//! `grpc-status`/`grpc-message` in the headers of a response with no body
//! (the spec's "Trailers-Only" response).
//!
//! [`Problem`](crate::problem::Problem) renders this itself when it knows the
//! request was gRPC; every problem response also carries a [`GrpcRefusal`]
//! extension, so a proxy that decides later (the gateway's respond phase,
//! for the policies' rejections) converts it with [`answer_as_grpc`]. Both
//! paths end in [`set_trailers_only`]: one shape for every refusal.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::status::{GRPC_MESSAGE, GRPC_STATUS, encode_message};
use super::{Code, Protocol};
use crate::body::{self, Body};

/// What a problem response says to a gRPC client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRefusal {
    pub code: Code,
    pub message: String,
}

/// The `content-type` of a response to a client speaking `protocol`.
pub fn content_type(protocol: Protocol) -> HeaderValue {
    HeaderValue::from_static(match protocol {
        Protocol::Grpc => "application/grpc",
        Protocol::GrpcWeb => "application/grpc-web+proto",
        Protocol::GrpcWebText => "application/grpc-web-text+proto",
    })
}

/// Turns a response head into a trailers-only one: status 200, the gRPC
/// content type, `grpc-status` and `grpc-message`, no `content-length`.
/// Other headers (`retry-after`, `www-authenticate`, the request id, CORS)
/// stay: they are metadata the client may read.
pub fn set_trailers_only(
    status: &mut StatusCode,
    headers: &mut HeaderMap,
    protocol: Protocol,
    code: Code,
    message: &str,
) {
    *status = StatusCode::OK;
    headers.remove(CONTENT_LENGTH);
    headers.insert(CONTENT_TYPE, content_type(protocol));
    headers.insert(GRPC_STATUS, code.header_value());
    if !message.is_empty() {
        headers.insert(GRPC_MESSAGE, encode_message(message));
    }
}

/// A trailers-only response refusing a call.
pub fn refuse(protocol: Protocol, code: Code, message: &str) -> Response<Body> {
    let mut resp = Response::new(body::empty());
    let (mut status, headers) = (resp.status(), resp.headers_mut());
    set_trailers_only(&mut status, headers, protocol, code, message);
    *resp.status_mut() = status;
    resp
}

/// When `resp` is a problem the proxy generated (it carries a
/// [`GrpcRefusal`]) and the client speaks `protocol`, the same refusal as a
/// trailers-only response; any other response unchanged.
pub fn answer_as_grpc(resp: Response<Body>, protocol: Protocol) -> Response<Body> {
    let is_problem = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !is_problem {
        return resp;
    }
    let Some(refusal) = resp.extensions().get::<GrpcRefusal>().cloned() else {
        return resp;
    };
    let (mut head, _problem_json) = resp.into_parts();
    set_trailers_only(
        &mut head.status,
        &mut head.headers,
        protocol,
        refusal.code,
        &refusal.message,
    );
    Response::from_parts(head, body::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Problem;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_problem_becomes_a_trailers_only_refusal() {
        let resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too Many")
            .detail("limit l exceeded")
            .header(http::header::RETRY_AFTER, HeaderValue::from_static("2"))
            .request_id("r1")
            .into_response();
        assert_eq!(resp.status(), 429);
        let resp = answer_as_grpc(resp, Protocol::Grpc);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers()[GRPC_STATUS], "8");
        assert_eq!(resp.headers()[GRPC_MESSAGE], "limit l exceeded");
        assert_eq!(resp.headers()["retry-after"], "2");
        assert_eq!(resp.headers()["x-request-id"], "r1");
        assert_eq!(resp.headers()["x-weir-error"], "rate-limited");
        assert!(resp.headers().get(CONTENT_LENGTH).is_none());
        let body = resp.into_body().collect().await.unwrap();
        assert!(body.trailers().is_none());
        assert!(body.to_bytes().is_empty());
    }

    #[test]
    fn other_responses_are_left_alone() {
        let mut resp = Response::new(body::full("{}"));
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let resp = answer_as_grpc(resp, Protocol::Grpc);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        // an upstream's problem+json (no extension) is the upstream's answer
        let mut resp = Response::new(body::full("{}"));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        assert_eq!(answer_as_grpc(resp, Protocol::Grpc).status(), 404);
    }

    #[test]
    fn refuse_builds_the_head() {
        let resp = refuse(Protocol::GrpcWeb, Code::Unauthenticated, "no key");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc-web+proto");
        assert_eq!(resp.headers()[GRPC_STATUS], "16");
    }
}
