//! Product endpoints: reads for everyone in two API versions, writes for admins.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use service_kit::extract::{ApiJson, QueryMap};
use service_kit::{Problem, ProblemDetails, now_millis};
use sqlx::AssertSqlSafe;

use crate::admin::require_admin;
use crate::model::{Product, ProductInput, ProductPage, ProductRow, ProductV2};
use crate::state::AppState;

/// The product columns, and its units sold from the event read model (v2 shows them).
const COLUMNS: &str = "id, sku, name, description, price_minor, currency, stock, \
    COALESCE((SELECT s.units_sold FROM product_sales s WHERE s.product_id = products.id), 0) AS units_sold";

/// The filters and page position of a product listing.
#[derive(Debug, Default)]
struct ListQuery {
    q: Option<String>,
    min_price: Option<i64>,
    max_price: Option<i64>,
    in_stock: Option<bool>,
    cursor: Option<String>,
    limit: i64,
}

impl ListQuery {
    fn parse(query: &QueryMap) -> Result<Self, Problem> {
        let cursor = query.string("cursor").map(str::to_owned);
        if let Some(cursor) = &cursor {
            let ok =
                cursor.len() <= 64 && cursor.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if !ok {
                return Err(Problem::invalid(
                    "cursor",
                    "not a cursor returned by this API",
                ));
            }
        }
        let q = query.string("q").map(str::to_owned);
        if q.as_ref().is_some_and(|q| q.chars().count() > 100) {
            return Err(Problem::invalid("q", "must be at most 100 characters"));
        }
        let parsed = Self {
            q,
            min_price: query.int("min_price", 0, i64::MAX)?,
            max_price: query.int("max_price", 0, i64::MAX)?,
            in_stock: query.boolean("in_stock")?,
            cursor,
            limit: query.limit(20, 100)?,
        };
        if let (Some(min), Some(max)) = (parsed.min_price, parsed.max_price)
            && min > max
        {
            return Err(Problem::invalid("max_price", "must not be below min_price"));
        }
        Ok(parsed)
    }
}

/// Runs a listing: keyset pagination on `id`, filters as bound parameters.
async fn list_rows(
    state: &AppState,
    query: &ListQuery,
) -> Result<(Vec<ProductRow>, Option<String>), Problem> {
    let mut sql = format!("SELECT {COLUMNS} FROM products WHERE 1 = 1");
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let like = query.q.as_ref().map(|q| format!("%{}%", q.to_lowercase()));
    if like.is_some() {
        let p = next();
        sql.push_str(&format!(
            " AND (LOWER(name) LIKE {p} OR LOWER(sku) LIKE {p} OR LOWER(description) LIKE {p})"
        ));
    }
    if query.min_price.is_some() {
        sql.push_str(&format!(" AND price_minor >= {}", next()));
    }
    if query.max_price.is_some() {
        sql.push_str(&format!(" AND price_minor <= {}", next()));
    }
    match query.in_stock {
        Some(true) => sql.push_str(" AND stock > 0"),
        Some(false) => sql.push_str(" AND stock = 0"),
        None => {}
    }
    if query.cursor.is_some() {
        sql.push_str(&format!(" AND id > {}", next()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", next()));

    let mut q = sqlx::query_as::<_, ProductRow>(AssertSqlSafe(sql));
    if let Some(like) = like {
        q = q.bind(like);
    }
    if let Some(min) = query.min_price {
        q = q.bind(min);
    }
    if let Some(max) = query.max_price {
        q = q.bind(max);
    }
    if let Some(cursor) = &query.cursor {
        q = q.bind(cursor.clone());
    }
    q = q.bind(query.limit + 1);
    let mut rows = state
        .db
        .traced("SELECT", "products", q.fetch_all(state.db.pool()))
        .await?;
    let next_cursor = if rows.len() as i64 > query.limit {
        rows.truncate(query.limit as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok((rows, next_cursor))
}

pub(crate) async fn fetch(state: &AppState, id: &str) -> Result<ProductRow, Problem> {
    state
        .db
        .fetch_by_id("products", COLUMNS, id)
        .await?
        .ok_or_else(|| Problem::no_such("product", id))
}

/// One page of products in either version's shape (`Product` or `ProductV2`).
async fn list_page<P: From<ProductRow>>(
    state: &AppState,
    query: &QueryMap,
) -> Result<Json<ProductPage<P>>, Problem> {
    let (rows, next_cursor) = list_rows(state, &ListQuery::parse(query)?).await?;
    Ok(Json(ProductPage {
        items: rows.into_iter().map(P::from).collect(),
        next_cursor,
    }))
}

/// List products (v1).
#[utoipa::path(get, path = "/v1/products", tag = "products",
    params(
        ("q" = Option<String>, Query, description = "Case-insensitive text in name, sku or description"),
        ("min_price" = Option<i64>, Query, description = "Lowest price_minor"),
        ("max_price" = Option<i64>, Query, description = "Highest price_minor"),
        ("in_stock" = Option<bool>, Query, description = "Only products with (true) or without (false) stock"),
        ("limit" = Option<i64>, Query, description = "Page size, 1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = ProductPage<Product>),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_v1(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Json<ProductPage<Product>>, Problem> {
    list_page(&state, &query).await
}

/// List products (v2: price as an object).
#[utoipa::path(get, path = "/v2/products", tag = "products",
    params(
        ("q" = Option<String>, Query, description = "Case-insensitive text in name, sku or description"),
        ("min_price" = Option<i64>, Query, description = "Lowest price amount"),
        ("max_price" = Option<i64>, Query, description = "Highest price amount"),
        ("in_stock" = Option<bool>, Query, description = "Only products with (true) or without (false) stock"),
        ("limit" = Option<i64>, Query, description = "Page size, 1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = ProductPage<ProductV2>),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_v2(
    State(state): State<AppState>,
    query: QueryMap,
) -> Result<Json<ProductPage<ProductV2>>, Problem> {
    list_page(&state, &query).await
}

/// Get one product (v1).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, body = Product),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, Problem> {
    Ok(Json(fetch(&state, &id).await?.into()))
}

/// Get one product (v2: price as an object).
#[utoipa::path(get, path = "/v2/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 200, body = ProductV2),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProductV2>, Problem> {
    Ok(Json(fetch(&state, &id).await?.into()))
}

/// Create a product (admin).
#[utoipa::path(post, path = "/v1/products", tag = "products",
    request_body = ProductInput,
    responses(
        (status = 201, body = Product),
        (status = 403, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<(StatusCode, Json<Product>), Problem> {
    require_admin(&state, &headers)?;
    input.validate()?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_millis();
    let insert = sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_minor, currency, stock, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (sku) DO NOTHING",
    )
    .bind(&id)
    .bind(&input.sku)
    .bind(input.name.trim())
    .bind(&input.description)
    .bind(input.price_minor)
    .bind(&input.currency)
    .bind(input.stock)
    .bind(now)
    .execute(state.db.pool());
    let inserted = state.db.traced("INSERT", "products", insert).await?;
    if inserted.rows_affected() == 0 {
        return Err(sku_taken(&input.sku));
    }
    Ok((StatusCode::CREATED, Json(fetch(&state, &id).await?.into())))
}

/// Replace a product (admin); `stock` is set absolutely.
#[utoipa::path(put, path = "/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    request_body = ProductInput,
    responses(
        (status = 200, body = Product),
        (status = 403, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<Json<Product>, Problem> {
    require_admin(&state, &headers)?;
    input.validate()?;
    state
        .db
        .traced("UPDATE", "products", replace_in_db(&state, &id, &input))
        .await?;
    Ok(Json(fetch(&state, &id).await?.into()))
}

/// The checks and the update of [`replace`], in one transaction.
async fn replace_in_db(state: &AppState, id: &str, input: &ProductInput) -> Result<(), Problem> {
    let mut tx = state.db.begin().await?;
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM products WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(Problem::no_such("product", id));
    }
    let taken: Option<(String,)> =
        sqlx::query_as("SELECT id FROM products WHERE sku = $1 AND id <> $2")
            .bind(&input.sku)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    if taken.is_some() {
        return Err(sku_taken(&input.sku));
    }
    let updated = sqlx::query(
        "UPDATE products SET sku = $1, name = $2, description = $3, price_minor = $4, currency = $5, \
         stock = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(&input.sku)
    .bind(input.name.trim())
    .bind(&input.description)
    .bind(input.price_minor)
    .bind(&input.currency)
    .bind(input.stock)
    .bind(now_millis())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Problem::no_such("product", id));
    }
    tx.commit().await?;
    Ok(())
}

/// Delete a product (admin).
#[utoipa::path(delete, path = "/v1/products/{id}", tag = "products",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    require_admin(&state, &headers)?;
    let delete = sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(&id)
        .execute(state.db.pool());
    let deleted = state.db.traced("DELETE", "products", delete).await?;
    if deleted.rows_affected() == 0 {
        return Err(Problem::no_such("product", &id));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn sku_taken(sku: &str) -> Problem {
    Problem::conflict(
        "sku-taken",
        format!("another product already has sku {sku}"),
    )
    .with_field("sku")
}
