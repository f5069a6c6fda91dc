//! Order endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use opentelemetry::context::FutureExt as _;
use service_kit::extract::{ApiJson, IdempotencyKey, QueryMap};
use service_kit::telemetry::TraceContext;
use service_kit::{Problem, ProblemDetails};

use crate::model::{Order, OrderList, PlaceOrder, SagaLog};
use crate::state::AppState;
use crate::store::{self, Placed};

/// Place an order. Requires `Idempotency-Key`: the same key returns the same order.
///
/// The saga runs before the answer, so the order comes back `confirmed` or
/// `failed`, or `pending` when a peer gave no answer in time (recovery then
/// finishes it; `GET` it later, or repeat this request with the same key to
/// push it on).
#[utoipa::path(post, path = "/v1/orders", tag = "orders",
    request_body = PlaceOrder,
    params(("Idempotency-Key" = String, Header, description = "Same key, same order")),
    responses(
        (status = 201, description = "Placed (status says how it went)", body = Order),
        (status = 200, description = "The order placed earlier with this key", body = Order),
        (status = 409, description = "Key reused for a different order", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn place(
    State(state): State<AppState>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(request): ApiJson<PlaceOrder>,
) -> Result<(StatusCode, Json<Order>), Problem> {
    request.validate()?;
    let (status, order) = match store::place(&state.db, &key, &request).await? {
        Placed::New(order) => {
            state.saga.events.notify_one();
            (StatusCode::CREATED, order)
        }
        Placed::Existing(order) => (StatusCode::OK, order),
    };
    // Run in its own task: a client that hangs up does not cut a step in half.
    // The task carries this request's trace context, so the saga's calls and
    // queries are children of this request's span.
    let saga = Arc::clone(&state.saga);
    let id = order.id.clone();
    let incoming = service_kit::telemetry::propagation_headers(&headers);
    let driving = async move { saga.drive(&id, &incoming).await };
    let driven = tokio::spawn(driving.with_context(TraceContext::current())).await;
    match driven {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(order = %order.id, %error, "saga stopped on a database error")
        }
        Err(error) => tracing::error!(order = %order.id, %error, "saga task failed"),
    }
    let order = store::load(&state.db, &order.id).await?.unwrap_or(order);
    Ok((status, Json(order)))
}

/// Get an order.
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, Problem> {
    store::load(&state.db, &id)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::no_such("order", &id))
}

/// The saga log of an order: every step's outcome, oldest first.
#[utoipa::path(get, path = "/v1/orders/{id}/saga", tag = "orders",
    params(("id" = String, Path, description = "Order id")),
    responses(
        (status = 200, body = SagaLog),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn saga_log(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<SagaLog>, Problem> {
    if store::load(&state.db, &id).await?.is_none() {
        return Err(Problem::no_such("order", &id));
    }
    Ok(Json(SagaLog {
        items: store::saga_log(&state.db, &id).await?,
    }))
}

/// A customer's orders, newest first.
#[utoipa::path(get, path = "/v1/orders", tag = "orders",
    params(
        ("customer" = String, Query, description = "Customer id (required)"),
        ("limit" = Option<i64>, Query, description = "Page size, 1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = OrderList),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Json<OrderList>, Problem> {
    let customer = query.required("customer")?;
    let limit = query.limit(20, 100)?;
    let (items, next_cursor) =
        store::by_customer(&state.db, customer, query.string("cursor"), limit).await?;
    Ok(Json(OrderList { items, next_cursor }))
}
