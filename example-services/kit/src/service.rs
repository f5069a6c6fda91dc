//! A service's life from its `run` function: open the database, serve the
//! API with the shared stack, and close down in order.
//!
//! Every example service did the same thing in its `run`: build the database
//! URL, open and migrate, attach the tracing handle, then wrap its routes in
//! the SERVER span, the health and OpenAPI routes and the shared middleware,
//! serve, and on the way out stop background work, close the pool and flush
//! spans. It lives here once; a service's `run` says only what is its own
//! (seeding, background loops, its routes).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use axum::Router;
use tokio::net::TcpListener;

use crate::db::{Db, DbError, Migrations, database_url};
use crate::env::EnvError;
use crate::server::TaskSet;
use crate::telemetry::ServiceTelemetry;

/// Why a service stopped: each service re-exports this as its `Error`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The settings in the environment are unusable.
    #[error("invalid configuration")]
    Config(#[from] EnvError),
    /// The database could not be opened or migrated.
    #[error("database")]
    Db(#[from] DbError),
    /// A start-up step of the service's own (seeding, say) failed.
    #[error("{step} failed")]
    Setup {
        /// What was being done, e.g. `"seeding the catalog"`.
        step: &'static str,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Serving failed.
    #[error("serving failed")]
    Serve(#[source] std::io::Error),
}

/// The `Migrations` of the calling crate, embedded from its
/// `migrations/sqlite` and `migrations/postgres` folders.
///
/// A macro because `sqlx::migrate!` reads the folders of the crate it is
/// expanded in; the calling crate needs `sqlx` as a dependency.
#[macro_export]
macro_rules! migrations {
    () => {{
        static SQLITE: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/sqlite");
        static POSTGRES: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/postgres");
        $crate::Migrations {
            sqlite: &SQLITE,
            postgres: &POSTGRES,
        }
    }};
}

/// Opens (and migrates) service `name`'s database, the explicit URL or else
/// `<data_dir>/<name>.db`, with its queries traced through `telemetry`.
pub async fn open_db(
    explicit_url: Option<&str>,
    data_dir: &Path,
    name: &str,
    migrations: Migrations,
    telemetry: &ServiceTelemetry,
) -> Result<Db, DbError> {
    let url = database_url(explicit_url, data_dir, name);
    Ok(Db::open(&url, migrations)
        .await?
        .with_telemetry(telemetry.clone()))
}

/// Serves `api` (the service's own routes, state applied) on `listener`
/// until `shutdown` completes.
///
/// The API routes get the SERVER span; `/healthz`, `/readyz` (on `db`) and
/// the OpenAPI document `doc` are merged in untraced, and the whole wrapped
/// in the shared stack. Afterwards `background` is stopped, then the pool
/// closed and the spans flushed, in that order, so no task uses a closed pool.
pub async fn serve(
    listener: TcpListener,
    api: Router,
    doc: utoipa::openapi::OpenApi,
    db: Db,
    telemetry: &ServiceTelemetry,
    background: TaskSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let app = rest_app(api, doc, &db, telemetry);
    serve_app(listener, app, db, telemetry, background, shutdown).await
}

/// What a service serving gRPC beside REST serves.
pub struct Apis {
    /// The REST API's own routes, state applied (as for [`serve`]).
    pub rest: Router,
    /// The gRPC services (tonic's `Routes` as an axum router); the gRPC
    /// stack of [`crate::grpc::stack`] is added here.
    pub grpc: Router,
    /// The REST API's OpenAPI document.
    pub doc: utoipa::openapi::OpenApi,
}

/// [`serve`] with gRPC on the same listener: calls with a gRPC
/// `content-type` go to `apis.grpc` (see [`crate::grpc`]), everything else
/// to the REST API.
pub async fn serve_with_grpc(
    listener: TcpListener,
    apis: Apis,
    db: Db,
    telemetry: &ServiceTelemetry,
    background: TaskSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let rest = rest_app(apis.rest, apis.doc, &db, telemetry);
    let grpc = crate::grpc::stack(apis.grpc, telemetry);
    let app = crate::grpc::with_rest(rest, grpc);
    serve_app(listener, app, db, telemetry, background, shutdown).await
}

/// The REST API with its SERVER spans, the probes and the OpenAPI document,
/// in the shared stack.
fn rest_app(
    api: Router,
    doc: utoipa::openapi::OpenApi,
    db: &Db,
    telemetry: &ServiceTelemetry,
) -> Router {
    let api = crate::server::traced(api, telemetry);
    crate::server::finish(
        api.merge(crate::health::routes(db.clone()))
            .merge(crate::openapi::routes(doc)),
    )
}

/// Serves `app` until `shutdown`, then stops `background`, closes the pool
/// and flushes the spans, in that order.
async fn serve_app(
    listener: TcpListener,
    app: Router,
    db: Db,
    telemetry: &ServiceTelemetry,
    background: TaskSet,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let result = crate::server::serve(listener, app, shutdown).await;
    drop(background);
    db.close().await;
    crate::telemetry::flush(telemetry).await;
    result.map_err(ServiceError::Serve)
}

/// The whole `main` of a service binary named `name`: logs, settings from
/// `from_env` (exit 2 when unusable), the listener on the address `parts`
/// names, `run` until SIGINT/SIGTERM, then the telemetry `parts` names shut
/// down. Errors are printed as `name: cause: cause…`.
///
/// `run` is given the settings and the listener and is expected to call the
/// service's `run` with [`crate::server::shutdown_signal`].
pub async fn main<C, E, Fut>(
    name: &str,
    from_env: impl FnOnce() -> Result<C, E>,
    parts: impl FnOnce(&C) -> (SocketAddr, ServiceTelemetry),
    run: impl FnOnce(C, TcpListener) -> Fut,
) -> ExitCode
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<(), ServiceError>>,
{
    crate::telemetry::init_logs();
    let config = match from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{name}: {error}");
            return ExitCode::from(2);
        }
    };
    let (listen, telemetry) = parts(&config);
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{name}: cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match run(config, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {}", crate::server::error_chain(&error));
            ExitCode::FAILURE
        }
    };
    crate::telemetry::shutdown(&telemetry).await;
    code
}
