//! `weir.catalog.v1.CatalogService`: each call is its REST twin's handler.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use futures_util::Stream;
use service_kit::Problem;
use service_kit::extract::{ApiJson, QueryMap};
use service_kit::grpc::status_from_problem;
use tonic::{Request, Response, Status};

use super::pb;
use super::pb::catalog_service_server::CatalogService;
use crate::model::{ProductPage, ProductV2};
use crate::state::AppState;
use crate::{holds, products, reservations};

/// Products fetched per query while streaming a listing (the REST maximum).
const PAGE: &str = "100";

/// The catalog's gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct CatalogGrpc {
    state: AppState,
}

impl CatalogGrpc {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

fn status(problem: Problem) -> Status {
    status_from_problem(&problem)
}

/// A listing being streamed: the filters, the page in hand and where the
/// next one starts.
struct Pager {
    state: AppState,
    filters: HashMap<String, String>,
    page: VecDeque<ProductV2>,
    next: Option<String>,
}

impl Pager {
    /// Fetches one page through the REST listing (its validation, its query).
    async fn fetch(
        state: &AppState,
        filters: &HashMap<String, String>,
        cursor: Option<String>,
    ) -> Result<ProductPage<ProductV2>, Problem> {
        let mut query = filters.clone();
        if let Some(cursor) = cursor {
            query.insert("cursor".into(), cursor);
        }
        let Json(page) = products::list_v2(State(state.clone()), QueryMap(query)).await?;
        Ok(page)
    }

    /// The next product, fetching a page when the one in hand is used up.
    async fn next_product(mut self) -> Option<(Result<pb::Product, Status>, Self)> {
        loop {
            if let Some(product) = self.page.pop_front() {
                return Some((Ok(product.into()), self));
            }
            let cursor = self.next.take()?;
            match Self::fetch(&self.state, &self.filters, Some(cursor)).await {
                Ok(page) => {
                    self.page = page.items.into();
                    self.next = page.next_cursor;
                }
                Err(problem) => return Some((Err(status(problem)), self)),
            }
        }
    }
}

/// The listing filters as the REST query parameters they mean.
fn filters(request: pb::ListProductsRequest) -> HashMap<String, String> {
    let mut query = HashMap::from([("limit".to_owned(), PAGE.to_owned())]);
    if !request.q.is_empty() {
        query.insert("q".into(), request.q);
    }
    if let Some(min) = request.min_price {
        query.insert("min_price".into(), min.to_string());
    }
    if let Some(max) = request.max_price {
        query.insert("max_price".into(), max.to_string());
    }
    if let Some(in_stock) = request.in_stock {
        query.insert("in_stock".into(), in_stock.to_string());
    }
    query
}

type ProductStream = Pin<Box<dyn Stream<Item = Result<pb::Product, Status>> + Send>>;

#[tonic::async_trait]
impl CatalogService for CatalogGrpc {
    async fn get_product(
        &self,
        request: Request<pb::GetProductRequest>,
    ) -> Result<Response<pb::Product>, Status> {
        let id = request.into_inner().id;
        let Json(product) = products::get_v2(State(self.state.clone()), Path(id))
            .await
            .map_err(status)?;
        Ok(Response::new(product.into()))
    }

    type ListProductsStream = ProductStream;

    /// The first page is fetched before answering, so bad filters fail the
    /// call with a status instead of ending a stream that began. The rest
    /// are fetched as the client reads: a client that stops reading stops
    /// the queries, and one that cancels drops the stream and its state.
    async fn list_products(
        &self,
        request: Request<pb::ListProductsRequest>,
    ) -> Result<Response<ProductStream>, Status> {
        let filters = filters(request.into_inner());
        let first = Pager::fetch(&self.state, &filters, None)
            .await
            .map_err(status)?;
        let pager = Pager {
            state: self.state.clone(),
            filters,
            page: first.items.into(),
            next: first.next_cursor,
        };
        let stream = futures_util::stream::unfold(pager, Pager::next_product);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        let request = request.into_inner().into();
        let (code, Json(reservation)) =
            reservations::reserve(State(self.state.clone()), ApiJson(request))
                .await
                .map_err(status)?;
        Ok(Response::new(pb::ReserveStockResponse {
            reservation: Some(reservation.into()),
            created: code == StatusCode::CREATED,
        }))
    }

    async fn get_reservation(
        &self,
        request: Request<pb::GetReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = request.into_inner().id;
        let Json(reservation) = reservations::get(State(self.state.clone()), Path(id))
            .await
            .map_err(status)?;
        Ok(Response::new(reservation.into()))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = request.into_inner().id;
        let Json(reservation) = holds::commit(State(self.state.clone()), Path(id))
            .await
            .map_err(status)?;
        Ok(Response::new(reservation.into()))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::Reservation>, Status> {
        let id = request.into_inner().id;
        let Json(reservation) = holds::release(State(self.state.clone()), Path(id))
            .await
            .map_err(status)?;
        Ok(Response::new(reservation.into()))
    }
}
