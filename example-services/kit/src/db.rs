//! Database pools: an embedded SQLite file by default, PostgreSQL when the URL says so.
//!
//! Services talk to either through `sqlx::Any` with runtime queries, so one
//! query text serves both: placeholders are written `$1, $2…` (SQLite accepts
//! the same numbered form), ids are `TEXT`, money and times are `BIGINT`.
//! Each service embeds two migration folders (`migrations/sqlite`,
//! `migrations/postgres`) and [`Db::open`] runs the one for the backend.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Any, AnyPool, Transaction};

use crate::telemetry::ServiceTelemetry;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the default).
    Sqlite,
    /// A PostgreSQL server (`DATABASE_URL=postgres://…`).
    Postgres,
}

impl Backend {
    /// The backend a URL points at.
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(DbError::UnsupportedUrl(redact(url)))
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The OpenTelemetry `db.system.name`: `"sqlite"` or `"postgresql"`.
    pub fn otel_system(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// The migrations a service embeds, one set per backend.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// `sqlx::migrate!("./migrations/sqlite")`.
    pub sqlite: &'static Migrator,
    /// `sqlx::migrate!("./migrations/postgres")`.
    pub postgres: &'static Migrator,
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database url `{0}` (expected sqlite: or postgres://)")]
    UnsupportedUrl(String),
    /// The data directory for the SQLite file could not be created.
    #[error("cannot create data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[source] MigrateError),
    /// A query failed.
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
}

/// A pool plus the backend it talks to, and the service's tracing handle
/// for the spans of its queries (see [`Db::traced`]).
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    telemetry: Option<ServiceTelemetry>,
}

/// The URL a service uses: the explicit one, else `sqlite://<data_dir>/<name>.db?mode=rwc`.
pub fn database_url(explicit: Option<&str>, data_dir: &Path, name: &str) -> String {
    match explicit {
        Some(url) if !url.is_empty() => url.to_owned(),
        _ => format!("sqlite://{}/{name}.db?mode=rwc", data_dir.display()),
    }
}

impl Db {
    /// Connects, creating the SQLite file's directory if needed, and runs the
    /// backend's migrations.
    pub async fn open(url: &str, migrations: Migrations) -> Result<Self, DbError> {
        install_default_drivers();
        let backend = Backend::of_url(url)?;
        if backend == Backend::Sqlite {
            create_sqlite_dir(url)?;
        }
        let max = match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| DbError::Connect {
                url: redact(url),
                source,
            })?;
        if backend == Backend::Sqlite {
            // WAL lets readers proceed while one writer writes; the setting is
            // stored in the file, so once is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        let migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator.run(&pool).await.map_err(DbError::Migrate)?;
        tracing::info!(backend = backend.name(), "database ready");
        Ok(Self {
            pool,
            backend,
            telemetry: None,
        })
    }

    /// Queries wrapped in [`Db::traced`] become spans of `telemetry`.
    pub fn with_telemetry(mut self, telemetry: ServiceTelemetry) -> Self {
        self.telemetry = telemetry.telemetry().is_enabled().then_some(telemetry);
        self
    }

    /// The tracing handle, when tracing is on.
    pub(crate) fn telemetry(&self) -> Option<&ServiceTelemetry> {
        self.telemetry.as_ref()
    }

    /// The pool, for reads and single statements.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken up front, so
    /// two writers queue on the busy timeout instead of one failing at once when
    /// it upgrades from reading to writing.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn create_sqlite_dir(url: &str) -> Result<(), DbError> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DbError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// The URL without its password, for logs and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_is_a_sqlite_file_in_the_data_dir() {
        let url = database_url(None, Path::new("./data"), "catalog");
        assert_eq!(url, "sqlite://./data/catalog.db?mode=rwc");
        assert_eq!(Backend::of_url(&url).unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::of_url("mysql://h/db").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://user:secret@host/db"),
            "postgres://user:***@host/db"
        );
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
    }
}
