//! Helpers for tests that start services in-process: a unique data directory,
//! a server handle with a shutdown switch, and a JSON client.
//!
//! Public so the service crates' integration tests and the end-to-end tests
//! share one harness instead of copying it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::outbound::{Outbound, OutboundError};

pub mod kafka;
mod spans;

pub use kafka::KafkaBroker;
pub use spans::{RecordedSpan, SpanRecorder, recording_telemetry};

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<tmp>/weir-<prefix>-<uuid>`.
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("weir-{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("create test dir");
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server running in a task, stopped by [`Running::stop`].
#[derive(Debug)]
pub struct Running<E> {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> Running<E> {
    /// Binds `127.0.0.1:0` and runs `serve(listener, shutdown)` in a task.
    pub async fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(TcpListener, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        let handle = tokio::spawn(serve(listener, shutdown));
        Self {
            addr,
            shutdown: Some(tx),
            handle,
        }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Signals shutdown and waits for the server to finish.
    pub async fn stop(mut self) -> Result<(), E> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.expect("server task panicked")
    }

    /// Stops the task without a graceful shutdown, as a crash would.
    pub fn kill(self) {
        self.handle.abort();
    }
}

/// A JSON-over-HTTP client for tests.
#[derive(Debug, Clone)]
pub struct TestClient {
    outbound: Outbound,
}

/// A response as tests look at it.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body parsed as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    /// Body as text (lossy UTF-8), for the responses that are not JSON.
    pub text: String,
}

impl Default for TestClient {
    fn default() -> Self {
        Self::new()
    }
}

impl TestClient {
    /// A direct client with a generous timeout.
    pub fn new() -> Self {
        Self {
            outbound: Outbound::new(None, Duration::from_secs(30)),
        }
    }

    /// Sends `method url` with `headers` and an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<TestResponse, OutboundError> {
        let response = self
            .outbound
            .send_json(method, url, &HeaderMap::new(), headers, body)
            .await?;
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&response.body).into_owned();
        Ok(TestResponse {
            status: response.status,
            headers: response.headers,
            json,
            text,
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> TestResponse {
        self.call(Method::GET, url, &[], None).await.expect("GET")
    }

    /// `POST url` with a JSON body and headers.
    pub async fn post(&self, url: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        self.call(Method::POST, url, headers, Some(body))
            .await
            .expect("POST")
    }

    /// `PUT url` with a JSON body and headers.
    pub async fn put(&self, url: &str, headers: &[(&str, &str)], body: &Value) -> TestResponse {
        self.call(Method::PUT, url, headers, Some(body))
            .await
            .expect("PUT")
    }
}

/// Whether a test that needs an external service must fail (CI) or may skip.
pub fn must_not_skip() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A fresh PostgreSQL schema for one test, so tests run in parallel against
/// one database. `None` (the test should return) when no server answers,
/// unless `CI=true`, where that panics.
#[derive(Debug)]
pub struct PgSchema {
    /// `DATABASE_URL` with `search_path` set to the fresh schema.
    pub url: String,
    base: String,
    schema: String,
}

impl PgSchema {
    /// Creates `<prefix>_<uuid>` in `DATABASE_URL` (default
    /// `postgres://postgres@127.0.0.1:5432/test`).
    pub async fn create(prefix: &str) -> Option<Self> {
        let base = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        sqlx::any::install_default_drivers();
        let connect =
            tokio::time::timeout(Duration::from_secs(5), sqlx::AnyPool::connect(&base)).await;
        let pool = match connect {
            Ok(Ok(pool)) => pool,
            Ok(Err(error)) => return skip(&base, &error.to_string()),
            Err(_) => return skip(&base, "timed out"),
        };
        let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await
            .expect("create schema");
        pool.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        Some(Self { url, base, schema })
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        if let Ok(pool) = sqlx::AnyPool::connect(&self.base).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA {} CASCADE",
                self.schema
            )))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

fn skip(base: &str, reason: &str) -> Option<PgSchema> {
    assert!(
        !must_not_skip(),
        "PostgreSQL at {base} is required under CI: {reason}"
    );
    eprintln!("skipping: PostgreSQL at {base} unavailable: {reason}");
    None
}

/// Runs `check` every 25 ms until it gives `Ok`, for state a service reaches
/// in the background (a sweeper, recovery, a broker's confirm) that a test
/// has no event to await for; after `within` it panics with the last `Err`.
pub async fn eventually<T>(
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) => assert!(tokio::time::Instant::now() < deadline, "{why}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
