//! The pooled upstream client.
//!
//! One client per upstream, built when the config is loaded and shared by every
//! request to it. Connections are pooled per endpoint (the URI authority is the
//! endpoint address picked by the balancer), so keep-alive is reused across
//! requests and across config reloads that keep the upstream unchanged. The
//! pool is Weir's own (`pool.rs`), over hyper's connection API.

use std::net::SocketAddr;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;

use super::client_error::ClientError;
use super::pool::{Pool, PoolSettings};
use super::tls::UpstreamTls;
use crate::body::Body;
use crate::config::{PoolConfig, Protocol};

/// How to talk to one upstream.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    pub pool: PoolConfig,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            protocol: Protocol::Http1,
            connect_timeout: Duration::from_secs(1),
            pool: PoolConfig::default(),
        }
    }
}

/// A pooled HTTP/1.1 and/or HTTP/2 client for one upstream (see
/// [`pool`](super::pool) for how connections are kept and reused).
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    protocol: Protocol,
    pool: Pool,
}

impl UpstreamClient {
    pub fn new(opts: &ClientOptions) -> Self {
        Self::build(opts, None)
    }

    /// A client whose every connection is mutual TLS (see [`UpstreamTls`]).
    pub fn with_tls(opts: &ClientOptions, tls: UpstreamTls) -> Self {
        Self::build(opts, Some(tls))
    }

    fn build(opts: &ClientOptions, tls: Option<UpstreamTls>) -> Self {
        Self {
            protocol: opts.protocol,
            pool: Pool::new(
                PoolSettings {
                    max_idle: opts.pool.max_idle_per_endpoint,
                    idle_timeout: opts.pool.idle_timeout.get(),
                    connect_timeout: opts.connect_timeout,
                },
                tls,
            ),
        }
    }

    /// Sends `req` to `endpoint`, rewriting its URI to the endpoint while keeping
    /// the client's `Host` (an HTTP/2 client's `:authority` becomes `Host`).
    /// Formats the address per call: for an address that varies per request;
    /// a fixed one is kept as an [`endpoint_authority`] and sent with
    /// [`send_to`](Self::send_to).
    pub async fn send(
        &self,
        req: Request<Body>,
        endpoint: SocketAddr,
    ) -> Result<Response<Incoming>, ClientError> {
        self.send_to(req, endpoint_authority(endpoint)).await
    }

    /// [`send`](Self::send) with the endpoint already as an authority (see
    /// `balance::Endpoint::authority`), which spares formatting it per request.
    pub async fn send_to(
        &self,
        mut req: Request<Body>,
        endpoint: Authority,
    ) -> Result<Response<Incoming>, ClientError> {
        let negotiated = self.pool.negotiates();
        let to_h2 = match self.protocol {
            Protocol::Http1 => false,
            Protocol::Http2 => true,
            Protocol::Auto if negotiated => self.pool.negotiated_h2(&endpoint).await?,
            Protocol::Auto => req.version() == Version::HTTP_2,
        };
        if to_h2 {
            // HTTP/2 names the target in `:authority` (the endpoint); a `Host`
            // that differs makes strict servers reject the request (RFC 9113
            // §8.3.1). The client's host travels in `X-Forwarded-Host`.
            // Between sidecars that chose HTTP/2 by ALPN the client's host
            // becomes `:authority` instead, so the app behind the other
            // sidecar sees the same `Host` whichever protocol the hop used.
            let host = req.headers_mut().remove(header::HOST);
            let authority = host
                .filter(|_| negotiated)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                .unwrap_or_else(|| endpoint.clone());
            let mut parts = std::mem::take(req.uri_mut()).into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(authority);
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(PathAndQuery::from_static("/"));
            }
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            *req.version_mut() = Version::HTTP_2;
            self.pool.send_h2(req, &endpoint).await
        } else {
            if !req.headers().contains_key(header::HOST) {
                // The client's authority (absolute-form or HTTP/2), else the endpoint.
                let host = req
                    .uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    .or_else(|| HeaderValue::from_str(endpoint.as_str()).ok());
                if let Some(host) = host {
                    req.headers_mut().insert(header::HOST, host);
                }
            }
            let connect = req.method() == Method::CONNECT;
            h1_request_target(req.uri_mut(), connect, &endpoint);
            *req.version_mut() = Version::HTTP_11;
            self.pool.send_h1(req, &endpoint).await
        }
    }

    /// Idle HTTP/1 connections kept for `endpoint`.
    pub fn idle_connections(&self, endpoint: &Authority) -> usize {
        self.pool.idle_h1(endpoint)
    }
}

/// An endpoint address as the URI authority the pool is keyed by
/// (`127.0.0.1:8080`, `[::1]:8080`). Formatting it costs a few hundred
/// instructions: build it when the address is known, not per request.
pub fn endpoint_authority(addr: SocketAddr) -> Authority {
    Authority::try_from(addr.to_string())
        .unwrap_or_else(|_| Authority::from_static("invalid.endpoint"))
}

/// The HTTP/1.1 request target: origin-form (`/path?query`, what a server
/// connection hands us already, kept without a copy), authority-form for
/// `CONNECT`.
fn h1_request_target(uri: &mut Uri, connect: bool, endpoint: &Authority) {
    if connect {
        *uri = Uri::from(endpoint.clone());
        return;
    }
    if uri.scheme().is_none() && uri.authority().is_none() && uri.path_and_query().is_some() {
        return;
    }
    *uri = match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
        _ => Uri::default(),
    };
}
