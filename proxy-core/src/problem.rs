//! RFC 9457 problem documents for the errors the proxies generate themselves.
//!
//! Every response that Weir (not the upstream) produces for a failure goes
//! through [`Problem`], so clients see one shape: `application/problem+json`
//! with a stable `type` URI they can switch on, and the request id that ties
//! it to the access log and the trace. This is the one renderer: the gateway,
//! the sidecar and the policies (`policy::Rejection`) all answer through it.
//!
//! A gRPC client reads none of that: it reads `grpc-status`. When the request
//! was gRPC (learned from its headers by [`Problem::request_id_from`], or
//! told with [`Problem::grpc`]) the problem is rendered as a trailers-only
//! gRPC response whose code follows from the HTTP status
//! ([`Code::from_http_status`](crate::grpc::Code::from_http_status)) and
//! whose `grpc-message` is the detail. Every problem response also carries a
//! [`GrpcRefusal`](crate::grpc::GrpcRefusal) extension, so a proxy that only
//! knows later whom it answers converts it with
//! [`grpc::answer_as_grpc`](crate::grpc::answer_as_grpc).
//!
//! # Layout
//!
//! - this file: [`Problem`], the document and its response;
//! - `upstream.rs`: [`upstream_error`], the problem for an error of a
//!   resilience stack (circuit open, timeouts, connect failures, retries spent).

mod upstream;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value};

use crate::body::{self, Body};
use crate::grpc::{self, Code, GrpcRefusal, Protocol};

pub use upstream::{error_chain, upstream_error, upstream_error_kind};

/// Base of every problem `type` URI.
pub const TYPE_BASE: &str = "https://weir.dev/problems/";

/// The response header naming the component that generated an error.
pub const GENERATED_BY: HeaderName = HeaderName::from_static("x-weir-error");

/// A problem response under construction.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: Option<String>,
    request_id: Option<String>,
    extensions: Map<String, Value>,
    headers: HeaderMap,
    /// The client speaks gRPC (or gRPC-Web): answer trailers-only.
    grpc: Option<Protocol>,
}

impl Problem {
    /// `slug` becomes the stable type URI `https://weir.dev/problems/<slug>`.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str) -> Self {
        Self {
            status,
            slug,
            title,
            detail: None,
            request_id: None,
            extensions: Map::new(),
            headers: HeaderMap::new(),
            grpc: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Carries the request id taken from the request headers, if any, and
    /// answers in gRPC terms when the request's `content-type` is gRPC's.
    pub fn request_id_from(mut self, headers: &HeaderMap) -> Self {
        self.grpc = Protocol::of(headers);
        if let Some(id) = headers
            .get(crate::forward::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
        {
            self.request_id = Some(id.to_owned());
        }
        self
    }

    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Answers a client speaking `protocol` (gRPC or gRPC-Web) with a
    /// trailers-only response instead of the JSON document; `None` keeps JSON.
    pub fn grpc(mut self, protocol: Option<Protocol>) -> Self {
        self.grpc = protocol;
        self
    }

    /// The gRPC code and message this problem gives a gRPC client.
    pub fn grpc_refusal(&self) -> GrpcRefusal {
        GrpcRefusal {
            code: Code::from_http_status(self.status),
            message: self.detail.clone().unwrap_or_else(|| self.title.to_owned()),
        }
    }

    /// Adds a member beside the standard ones (RFC 9457 §3.2).
    pub fn extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header (e.g. `Allow`, `Retry-After`, `WWW-Authenticate`).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Adds every header of `headers` (a policy's rate-limit or CORS headers).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        if self.headers.is_empty() {
            self.headers = headers;
        } else {
            self.headers.extend(headers);
        }
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn slug(&self) -> &'static str {
        self.slug
    }

    /// The JSON document.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("type".into(), format!("{TYPE_BASE}{}", self.slug).into());
        doc.insert("title".into(), self.title.into());
        doc.insert("status".into(), self.status.as_u16().into());
        if let Some(detail) = &self.detail {
            doc.insert("detail".into(), detail.clone().into());
        }
        if let Some(id) = &self.request_id {
            doc.insert("request_id".into(), id.clone().into());
        }
        for (k, v) in &self.extensions {
            doc.insert(k.clone(), v.clone());
        }
        Value::Object(doc)
    }

    /// The response with the proxies' body type.
    pub fn into_response(self) -> Response<Body> {
        self.into_bytes_response().map(body::full)
    }

    /// The response with the document as plain bytes, for callers with their
    /// own body type: `application/problem+json`, `x-request-id` and
    /// `x-weir-error: <slug>`, then the added headers. For a gRPC client, a
    /// trailers-only response with the same headers and no body.
    pub fn into_bytes_response(self) -> Response<Bytes> {
        let refusal = self.grpc_refusal();
        let mut resp = match self.grpc {
            Some(protocol) => {
                let mut resp = Response::new(Bytes::new());
                let mut status = resp.status();
                grpc::set_trailers_only(
                    &mut status,
                    resp.headers_mut(),
                    protocol,
                    refusal.code,
                    &refusal.message,
                );
                resp
            }
            None => {
                let bytes = serde_json::to_vec(&self.to_json()).unwrap_or_default();
                let mut resp = Response::new(Bytes::from(bytes));
                *resp.status_mut() = self.status;
                resp.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                resp.extensions_mut().insert(refusal);
                resp
            }
        };
        let headers = resp.headers_mut();
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            headers.insert(crate::forward::REQUEST_ID, id);
        }
        headers.insert(GENERATED_BY, HeaderValue::from_static(self.slug));
        for (name, value) in self.headers {
            if let Some(name) = name {
                headers.append(name, value);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_rfc9457_document() {
        let resp = Problem::new(
            StatusCode::BAD_GATEWAY,
            "upstream-unavailable",
            "Upstream unavailable",
        )
        .detail("connection refused")
        .request_id("abc")
        .into_response();
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(resp.headers()["x-request-id"], "abc");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "https://weir.dev/problems/upstream-unavailable");
        assert_eq!(v["status"], 502);
        assert_eq!(v["request_id"], "abc");
    }

    #[tokio::test]
    async fn answers_a_grpc_request_trailers_only() {
        let mut req = HeaderMap::new();
        req.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        req.insert("x-request-id", HeaderValue::from_static("r9"));
        let resp = Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Unauthorized")
            .detail("missing API key")
            .header(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("ApiKey"),
            )
            .request_id_from(&req)
            .into_response();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(resp.headers()["grpc-status"], "16");
        assert_eq!(resp.headers()["grpc-message"], "missing API key");
        assert_eq!(resp.headers()["x-request-id"], "r9");
        assert_eq!(resp.headers()["www-authenticate"], "ApiKey");
        assert_eq!(resp.headers()[GENERATED_BY], "unauthenticated");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}
