//! Active health checks: each endpoint is asked `GET <path>` (or, with
//! `grpc`, `grpc.health.v1.Health/Check` over HTTP/2, see `grpc_health.rs`)
//! on an interval; consecutive failures take it out, consecutive successes
//! bring it back.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::Request;
use http_body_util::{Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::Endpoint;
use crate::config::HealthCheckConfig;

pub(super) async fn check_loop(
    upstream: String,
    cfg: HealthCheckConfig,
    set: Arc<ArcSwap<Vec<Arc<Endpoint>>>>,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(cfg.timeout.get()));
    // Checks use their own small pool so they never queue behind traffic.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector.clone());
    let grpc = cfg.grpc.as_ref().map(|g| {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .pool_max_idle_per_host(1)
            .build(connector.clone());
        (client, super::grpc_health::request_body(&g.service))
    });
    let mut tick = tokio::time::interval(cfg.interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let endpoints = set.load_full();
        let checks = endpoints.iter().map(|ep| {
            let client = client.clone();
            let cfg = &cfg;
            let grpc = &grpc;
            async move {
                if let Some((client, body)) = grpc {
                    let ok =
                        super::grpc_health::check(client, ep.addr, body.clone(), cfg.timeout.get())
                            .await;
                    return (ep, ok);
                }
                let uri = format!("http://{}{}", ep.addr, cfg.path);
                let ok = match Request::get(uri)
                    .header("user-agent", "weir-health-check")
                    .body(Empty::new())
                {
                    Ok(req) => matches!(
                        tokio::time::timeout(cfg.timeout.get(), client.request(req)).await,
                        Ok(Ok(resp)) if resp.status().is_success() || resp.status().is_redirection()
                    ),
                    Err(_) => false,
                };
                (ep, ok)
            }
        });
        for (ep, ok) in futures_util::future::join_all(checks).await {
            if let Some(now_healthy) = ep.record_check(ok, cfg.healthy, cfg.unhealthy) {
                if now_healthy {
                    tracing::info!(%upstream, endpoint = %ep.addr, "endpoint healthy again");
                } else {
                    tracing::warn!(%upstream, endpoint = %ep.addr, "endpoint failed health checks; taken out of rotation");
                }
            }
        }
    }
}
