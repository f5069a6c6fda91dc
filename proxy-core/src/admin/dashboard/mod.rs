//! The live dashboard on the admin listener: `GET /dashboard`.
//!
//! A page of plain HTML, CSS and JavaScript embedded in the binary (no build
//! step, no CDN, works offline) that draws what the proxy already counts.
//!
//! | path | what |
//! | --- | --- |
//! | `/dashboard` | the page |
//! | `/dashboard/app.js`, `/dashboard/style.css` | its assets |
//! | `/dashboard/api/state` | the state document the page draws (JSON) |
//! | `/dashboard/events` | the same document once per tick (Server-Sent Events) |
//!
//! What a proxy shows comes from its [`DashboardSource`], which builds the
//! document from an explicit list of fields (never from the config's
//! serialisation, so a secret added to the config later cannot leak here).
//! Everything is read-only: the dashboard has no mutating endpoint.
//!
//! Cost: a request pays nothing for the dashboard beyond counters `/metrics`
//! already has (and the gateway's slow-request ring, one atomic compare).
//! Figures are sampled on a timer that runs only while a stream is open
//! (`stream.rs`), and streams are bounded.
//!
//! # Layout
//!
//! - [`samples`]: the registry read back as numbers.
//! - [`certs`]: names and expiry of serving certificates.
//! - [`rates`]: per-second figures and latency quantiles between two ticks.
//! - [`outliers`]: the slowest recent requests of a route, for trace links.
//! - [`peers`]: other proxies' dashboards, for the gateway's mesh view.
//! - `stream.rs`: the sampler and the SSE streams.
//! - `assets/`: the page.

pub mod certs;
mod config;
pub mod outliers;
pub mod peers;
pub mod rates;
pub mod samples;
mod stream;

pub use certs::{CertSummary, summarize as summarize_certificate};
pub use config::{DashboardConfig, MAX_PEERS, PeerConfig};
pub use outliers::{SlowRequest, SlowRing};
pub use peers::Peer;
pub use rates::{Counts, RateTracker, Rates};
pub use samples::{Sample, Samples};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};

use crate::body::{self, Body};
use crate::problem::Problem;

/// Produces the proxy-specific part of the dashboard's state document.
///
/// Called once per tick while a page is open, and for each
/// `GET /dashboard/api/state`. Build the document from named fields of the
/// running state and metrics; never serialise a config struct into it.
pub trait DashboardSource: Send + Sync + 'static {
    /// `"gateway"` or `"sidecar"`: which page the browser draws.
    fn kind(&self) -> &'static str;
    /// The fields of the state document (`kind`, `generated_at_unix_ms`,
    /// `links` and `mesh` are added around them).
    fn snapshot(&self) -> Map<String, Value>;
}

/// How the dashboard behaves.
#[derive(Clone, Debug)]
pub struct DashboardSettings {
    /// Time between frames of an open page.
    pub interval: Duration,
    /// Pages that may stream at once.
    pub max_streams: usize,
    /// Other proxies whose state the page shows (the gateway's mesh view).
    pub peers: Vec<Peer>,
    /// The bound on each peer request.
    pub peer_timeout: Duration,
    /// Jaeger's UI, for trace links.
    pub jaeger_url: Option<String>,
    /// Where the metric names the page shows are documented (the rendered
    /// `docs/operations.md`, section `#metrics`); without it they link to
    /// this listener's own `/metrics`.
    pub metrics_docs_url: Option<String>,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            max_streams: 8,
            peers: Vec::new(),
            peer_timeout: Duration::from_millis(800),
            jaeger_url: None,
            metrics_docs_url: None,
        }
    }
}

impl From<&DashboardConfig> for DashboardSettings {
    fn from(c: &DashboardConfig) -> Self {
        let d = Self::default();
        Self {
            interval: c.interval.map_or(d.interval, |i| i.get()),
            max_streams: c.max_streams.unwrap_or(d.max_streams),
            peers: c.peers(),
            peer_timeout: d.peer_timeout,
            jaeger_url: c
                .jaeger_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            metrics_docs_url: c.metrics_docs_url.clone(),
        }
    }
}

/// One proxy's dashboard.
pub struct Dashboard {
    source: Arc<dyn DashboardSource>,
    settings: DashboardSettings,
    streams: Arc<Semaphore>,
    tx: watch::Sender<stream::Published>,
    sampling: AtomicBool,
}

impl Dashboard {
    pub fn new(source: Arc<dyn DashboardSource>, settings: DashboardSettings) -> Arc<Self> {
        Arc::new(Self {
            source,
            streams: Arc::new(Semaphore::new(settings.max_streams)),
            settings,
            tx: watch::Sender::new(None),
            sampling: AtomicBool::new(false),
        })
    }

    /// Pages streaming now.
    pub fn open_streams(&self) -> usize {
        self.settings.max_streams - self.streams.available_permits()
    }

    /// Whether the sampler runs (a page is open).
    pub fn is_sampling(&self) -> bool {
        self.sampling.load(Ordering::Acquire)
    }

    /// Answers a request under `/dashboard`; `None` for other paths.
    pub async fn handle(self: &Arc<Self>, method: &Method, path: &str) -> Option<Response<Body>> {
        if path != "/dashboard" && !path.starts_with("/dashboard/") {
            return None;
        }
        if !matches!(*method, Method::GET | Method::HEAD) {
            return Some(
                Problem::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method-not-allowed",
                    "Method not allowed",
                )
                .detail("the dashboard is read-only")
                .header(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"))
                .into_response(),
            );
        }
        Some(match path {
            "/dashboard" | "/dashboard/" => asset(
                "text/html; charset=utf-8",
                include_str!("assets/index.html"),
            ),
            "/dashboard/app.js" => asset(
                "text/javascript; charset=utf-8",
                include_str!("assets/app.js"),
            ),
            "/dashboard/style.css" => {
                asset("text/css; charset=utf-8", include_str!("assets/style.css"))
            }
            "/dashboard/api/state" => {
                let frame = self.frame_now().await;
                let mut resp = Response::new(body::full(Bytes::clone(&frame)));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                resp.headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                resp
            }
            "/dashboard/events" => stream::events(self.clone()).await,
            _ => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found")
                .detail(format!("no dashboard resource at {path}"))
                .into_response(),
        })
    }

    /// The latest frame while the sampler runs, else a fresh one.
    async fn frame_now(&self) -> Arc<Bytes> {
        if self.is_sampling()
            && let Some(f) = self.tx.borrow().clone()
        {
            return f;
        }
        self.build_frame().await
    }

    async fn build_frame(&self) -> Arc<Bytes> {
        let mut doc = Map::new();
        doc.insert("kind".into(), json!(self.source.kind()));
        doc.insert("generated_at_unix_ms".into(), json!(unix_ms()));
        doc.insert(
            "interval_ms".into(),
            json!(self.settings.interval.as_millis() as u64),
        );
        doc.insert(
            "links".into(),
            json!({
                "jaeger": self.settings.jaeger_url,
                "metrics_docs": self.settings.metrics_docs_url,
            }),
        );
        doc.extend(self.source.snapshot());
        if !self.settings.peers.is_empty() {
            let peers = peers::fetch_all(&self.settings.peers, self.settings.peer_timeout).await;
            doc.insert("mesh".into(), json!(peers));
        }
        Arc::new(Bytes::from(
            serde_json::to_vec(&Value::Object(doc)).unwrap_or_default(),
        ))
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An embedded asset with headers that keep the page to itself: scripts and
/// styles only from the admin listener, no framing, no referrer to links out.
fn asset(content_type: &'static str, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(Bytes::from_static(text.as_bytes())));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;

    use super::*;

    /// Counts how often it is asked, and puts a fixed secret-free field in.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl DashboardSource for Counting {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn snapshot(&self) -> Map<String, Value> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            Map::from_iter([("n".to_owned(), json!(n))])
        }
    }

    async fn next_event(body: &mut Body) -> Value {
        loop {
            let frame = body.frame().await.unwrap().unwrap();
            let data = frame.into_data().unwrap();
            let text = std::str::from_utf8(&data).unwrap();
            if let Some(json) = text.lines().find_map(|l| l.strip_prefix("data: ")) {
                return serde_json::from_str(json).unwrap();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_runs_only_while_a_stream_is_open() {
        let source = Arc::new(Counting::default());
        let settings = DashboardSettings {
            max_streams: 1,
            ..DashboardSettings::default()
        };
        let d = Dashboard::new(source.clone(), settings);
        assert!(!d.is_sampling());

        let resp = d.handle(&Method::GET, "/dashboard/events").await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(d.is_sampling());
        assert_eq!(d.open_streams(), 1);
        let refused = d.handle(&Method::GET, "/dashboard/events").await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);

        let mut body = resp.into_body();
        let first = next_event(&mut body).await;
        assert_eq!(first["kind"], "test");
        assert_eq!(first["n"], 1);
        // The next frames come from the sampler, one per tick.
        let second = next_event(&mut body).await;
        let third = next_event(&mut body).await;
        assert_eq!(
            (second["n"].as_u64(), third["n"].as_u64()),
            (Some(2), Some(3))
        );

        drop(body);
        assert_eq!(d.open_streams(), 0, "the slot is back as the page goes");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!d.is_sampling(), "no page, no sampler");
        let asked = source.0.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(source.0.load(Ordering::SeqCst), asked, "nothing sampled");

        // A page opening again starts it again.
        let resp = d.handle(&Method::GET, "/dashboard/events").await.unwrap();
        let mut body = resp.into_body();
        next_event(&mut body).await;
        next_event(&mut body).await;
        assert!(d.is_sampling());
    }

    #[tokio::test]
    async fn paths_outside_the_dashboard_are_not_taken() {
        let d = Dashboard::new(Arc::new(Counting::default()), DashboardSettings::default());
        assert!(d.handle(&Method::GET, "/dashboards").await.is_none());
        assert!(d.handle(&Method::GET, "/metrics").await.is_none());
        let post = d.handle(&Method::POST, "/dashboard/events").await.unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        let page = d.handle(&Method::GET, "/dashboard").await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.into_body().collect().await.unwrap().to_bytes();
        assert!(std::str::from_utf8(&html).unwrap().contains("app.js"));
    }
}
