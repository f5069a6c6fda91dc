//! The pooled upstream client.
//!
//! One client per upstream, built when the config is loaded and shared by every
//! request to it. Connections are pooled per endpoint (the URI authority is the
//! endpoint address picked by the balancer), so keep-alive is reused across
//! requests and across config reloads that keep the upstream unchanged.

use std::net::SocketAddr;
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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

/// A pooled HTTP/1.1 and/or HTTP/2 client for one upstream.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    h1: Option<Client<HttpConnector, Body>>,
    h2: Option<Client<HttpConnector, Body>>,
}

fn connector(opts: &ClientOptions) -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.set_connect_timeout(Some(opts.connect_timeout));
    c.set_keepalive(Some(Duration::from_secs(60)));
    c
}

impl UpstreamClient {
    pub fn new(opts: &ClientOptions) -> Self {
        let build = |h2_only: bool| {
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(opts.pool.idle_timeout.get())
                .pool_max_idle_per_host(opts.pool.max_idle_per_endpoint)
                .http2_only(h2_only);
            if h2_only {
                b.http2_keep_alive_interval(Duration::from_secs(30))
                    .http2_keep_alive_while_idle(false)
                    .http2_adaptive_window(true);
            }
            b.build(connector(opts))
        };
        let (h1, h2) = match opts.protocol {
            Protocol::Http1 => (Some(build(false)), None),
            Protocol::Http2 => (None, Some(build(true))),
            Protocol::Auto => (Some(build(false)), Some(build(true))),
        };
        Self { h1, h2 }
    }

    /// Sends `req` to `endpoint`, rewriting its URI to the endpoint while keeping
    /// the client's `Host` (an HTTP/2 client's `:authority` becomes `Host`).
    pub async fn send(
        &self,
        req: Request<Body>,
        endpoint: SocketAddr,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let authority = Authority::try_from(endpoint.to_string())
            .unwrap_or_else(|_| Authority::from_static("invalid.endpoint"));
        self.send_to(req, authority).await
    }

    /// [`send`](Self::send) with the endpoint already as an authority (see
    /// `balance::Endpoint::authority`), which spares formatting it per request.
    pub async fn send_to(
        &self,
        mut req: Request<Body>,
        endpoint: Authority,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let wants_h2 = req.version() == Version::HTTP_2;
        let (client, to_h2) = match (&self.h1, &self.h2) {
            (Some(h1), Some(h2)) => {
                if wants_h2 {
                    (h2, true)
                } else {
                    (h1, false)
                }
            }
            (Some(h1), None) => (h1, false),
            (None, Some(h2)) => (h2, true),
            (None, None) => unreachable!("UpstreamClient::new always builds a client"),
        };
        if to_h2 {
            // HTTP/2 names the target in `:authority` (the endpoint); a `Host`
            // that differs makes strict servers reject the request (RFC 9113
            // §8.3.1). The client's host travels in `X-Forwarded-Host`.
            req.headers_mut().remove(header::HOST);
        } else if !req.headers().contains_key(header::HOST)
            && let Some(host) = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(endpoint);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = if to_h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        client.request(req).await
    }
}
