//! Spans for the services' database work.
//!
//! A request's time is mostly spent in SQL; a trace that shows only the HTTP
//! hops cannot tell a slow query from a slow peer. [`Db::traced`] wraps one
//! statement, or one transaction named after its main statement, in a CLIENT
//! span `"{operation} {table}"` (`SELECT products`) with `db.system.name`
//! (`sqlite`/`postgresql`), `db.operation.name` and `db.collection.name`,
//! a child of the request being handled.
//!
//! Only work that belongs to a request is traced: a query run outside one
//! (the reservation sweeper, the outbox relay) would otherwise start a new
//! one-span trace every few seconds. With tracing off `traced` is the query
//! itself, nothing more.

use std::future::Future;

use opentelemetry::KeyValue;
use opentelemetry::trace::TraceContextExt as _;

use crate::db::{Db, DbError};
use crate::problem::Problem;
use crate::telemetry::{ActiveSpan, TraceContext};

impl Db {
    /// Runs `query` as a span `"{operation} {table}"` under the current
    /// request's span; an error it returns sets `error.type` and the span's
    /// status (see [`SpanError`]).
    pub async fn traced<T, E, F>(
        &self,
        operation: &'static str,
        table: &'static str,
        query: F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: SpanError,
    {
        let Some(telemetry) = self.telemetry() else {
            return query.await;
        };
        if !TraceContext::current().has_active_span() {
            return query.await;
        }
        let mut span = telemetry.db_span(self.backend().otel_system(), operation, table);
        let result = telemetry.in_span(&span, query).await;
        if let Err(error) = &result {
            error.record_on(&mut span);
        }
        result
    }

    /// The row of `table` whose `id` is `id`, selecting `columns` into `T`,
    /// traced as `SELECT {table}`.
    pub async fn fetch_by_id<T>(
        &self,
        table: &'static str,
        columns: &str,
        id: &str,
    ) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(format!(
            "SELECT {columns} FROM {table} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool());
        self.traced("SELECT", table, query).await
    }
}

/// How an error of a traced query marks its span.
pub trait SpanError {
    /// Sets `error.type` and status Error when this is a failure of the
    /// query (a `404`/`409` answer built from a query's result is not).
    fn record_on(&self, span: &mut ActiveSpan);
}

impl SpanError for sqlx::Error {
    fn record_on(&self, span: &mut ActiveSpan) {
        let kind = match self {
            sqlx::Error::Database(db) => {
                if let Some(code) = db.code() {
                    span.set(KeyValue::new("db.response.status_code", code.into_owned()));
                }
                "database"
            }
            sqlx::Error::RowNotFound => "row_not_found",
            sqlx::Error::PoolTimedOut => "pool_timed_out",
            sqlx::Error::PoolClosed => "pool_closed",
            sqlx::Error::Io(_) => "io",
            sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. } => "decode",
            _ => "sqlx",
        };
        span.record_error(kind);
    }
}

impl SpanError for DbError {
    fn record_on(&self, span: &mut ActiveSpan) {
        match self {
            DbError::Query(error) => error.record_on(span),
            _ => span.record_error("database"),
        }
    }
}

impl SpanError for Problem {
    fn record_on(&self, span: &mut ActiveSpan) {
        if self.status_code().is_server_error() {
            span.record_error("database");
        }
    }
}
