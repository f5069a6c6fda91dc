//! The saga's calls to the catalog, over gRPC (`weir.catalog.v1`) or REST.
//!
//! Both ways run the same three operations with the same meaning: reserve
//! the order's stock (keyed by order id), commit, release. Each answers with
//! the reservation, a definite refusal (`conflict` for the catalog's "the
//! state forbids it": REST `409`, gRPC `FAILED_PRECONDITION`), or no definite
//! answer after the retries, which the saga treats as "try again later".
//! The saga is therefore the same whichever API is configured
//! ([`CatalogApi`], `CATALOG_API`).
//!
//! Over gRPC the call goes to the same place as a REST call: the sidecar's
//! outbound port, with the logical name (`catalog`) as the HTTP/2
//! `:authority`, which the sidecar routes like a `Host`.

use std::time::Duration;

use axum::http::{HeaderMap, Method};
use serde_json::json;
use service_kit::grpc::client::{ClientCall, generated_by_proxy, is_definite, mark_proxy_answers};
use service_kit::{Outbound, OutboundResponse};
use tonic::transport::{Channel, Endpoint};

use crate::config::Config;
use crate::model::OrderLine;
use crate::peers::{Reply, backoff_capped, call, problem_detail};

/// The client generated from the catalog's `.proto`.
mod pb {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    tonic::include_proto!("weir.catalog.v1");
}

use pb::catalog_service_client::CatalogServiceClient;

/// Which of the catalog's APIs the saga calls (`CATALOG_API`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CatalogApi {
    /// `weir.catalog.v1.CatalogService` over HTTP/2 (`grpc`, the default).
    #[default]
    Grpc,
    /// `/v1/reservations…` over HTTP/1.1 JSON (`rest`).
    Rest,
}

impl CatalogApi {
    /// Parses `grpc` or `rest`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(CatalogApi::Grpc),
            "rest" => Some(CatalogApi::Rest),
            _ => None,
        }
    }
}

/// What the catalog holds for an order after reserving.
#[derive(Debug)]
pub(crate) struct Reserved {
    pub(crate) id: String,
    /// `held`, `committed`, `released` or `expired`.
    pub(crate) status: String,
    pub(crate) total_minor: i64,
    pub(crate) currency: String,
}

/// The catalog's definite "no".
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The state forbids it (short stock, reservation no longer held).
    pub(crate) conflict: bool,
    /// The catalog's explanation.
    pub(crate) detail: String,
}

/// An operation's outcome: the catalog's definite answer, or (`Err`) why
/// there is none yet.
pub(crate) type Answer<T> = Result<Result<T, Refusal>, String>;

type GrpcClient = CatalogServiceClient<
    tower::util::MapResponse<
        Channel,
        fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>,
    >,
>;

/// The catalog as the saga sees it.
#[derive(Debug)]
pub(crate) enum CatalogClient {
    Rest,
    Grpc(GrpcClient),
}

impl CatalogClient {
    /// The client for `config.catalog_api`: over gRPC a lazily connected
    /// channel to the sidecar (or straight to `catalog_url` without one).
    pub(crate) fn new(config: &Config) -> Self {
        if config.catalog_api == CatalogApi::Rest {
            return CatalogClient::Rest;
        }
        let origin: http::Uri = config
            .catalog_url
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://catalog"));
        // A socket address always makes a valid authority.
        let proxy = config
            .outbound_proxy
            .and_then(|proxy| format!("http://{proxy}").parse::<http::Uri>().ok());
        let endpoint = match proxy {
            Some(proxy) => Endpoint::from(proxy).origin(origin),
            None => Endpoint::from(origin),
        };
        let channel = endpoint
            .connect_timeout(config.call_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let mark: fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> =
            mark_proxy_answers;
        CatalogClient::Grpc(CatalogServiceClient::new(tower::util::MapResponse::new(
            channel, mark,
        )))
    }

    pub(crate) async fn reserve(
        &self,
        outbound: &Outbound,
        config: &Config,
        order_id: &str,
        items: &[OrderLine],
        incoming: &HeaderMap,
    ) -> Answer<Reserved> {
        let CatalogClient::Grpc(client) = self else {
            let body = json!({ "order_id": order_id, "items": items });
            let url = config.catalog("/v1/reservations");
            return rest(outbound, config, &url, incoming, Some(&body))
                .await
                .and_then(|answer| match answer {
                    Ok(response) => response
                        .json::<RestReservation>()
                        .map(|r| {
                            Ok(Reserved {
                                id: r.id,
                                status: r.status,
                                total_minor: r.total_minor,
                                currency: r.currency,
                            })
                        })
                        .map_err(|_| "catalog answered with an unreadable reservation".to_owned()),
                    Err(refusal) => Ok(Err(refusal)),
                });
        };
        let message = pb::ReserveStockRequest {
            order_id: order_id.to_owned(),
            items: items
                .iter()
                .map(|line| pb::ReservationLine {
                    product_id: line.product_id.clone(),
                    quantity: line.quantity,
                })
                .collect(),
        };
        let answer = grpc(client, config, incoming, &Operation::Reserve(message)).await?;
        Ok(answer.and_then(|r| {
            let reservation = r.ok_or_else(|| Refusal {
                conflict: false,
                detail: "catalog answered without a reservation".into(),
            })?;
            Ok(Reserved {
                status: status_name(reservation.status()).to_owned(),
                id: reservation.id,
                total_minor: reservation.total_minor,
                currency: reservation.currency,
            })
        }))
    }

    /// Commits (`commit = true`) or releases a reservation.
    pub(crate) async fn end(
        &self,
        outbound: &Outbound,
        config: &Config,
        reservation: &str,
        commit: bool,
        incoming: &HeaderMap,
    ) -> Answer<()> {
        let CatalogClient::Grpc(client) = self else {
            let action = if commit { "commit" } else { "release" };
            let url = config.catalog(&format!("/v1/reservations/{reservation}/{action}"));
            return rest(outbound, config, &url, incoming, None::<&()>)
                .await
                .map(|answer| answer.map(|_| ()));
        };
        let id = reservation.to_owned();
        let operation = if commit {
            Operation::Commit(id)
        } else {
            Operation::Release(id)
        };
        let answer = grpc(client, config, incoming, &operation).await?;
        Ok(answer.map(|_| ()))
    }
}

/// The fields of a REST reservation the saga reads.
#[derive(Debug, serde::Deserialize)]
struct RestReservation {
    id: String,
    status: String,
    total_minor: i64,
    currency: String,
}

/// A REST POST with the saga's retries.
async fn rest<B: serde::Serialize>(
    outbound: &Outbound,
    config: &Config,
    url: &str,
    incoming: &HeaderMap,
    body: Option<&B>,
) -> Answer<OutboundResponse> {
    match call(outbound, config, Method::POST, url, incoming, &[], body).await {
        Reply::Definite(response) if response.status.is_success() => Ok(Ok(response)),
        Reply::Definite(response) => Ok(Err(Refusal {
            conflict: response.status == http::StatusCode::CONFLICT,
            detail: problem_detail(&response),
        })),
        Reply::Unknown(reason) => Err(reason),
    }
}

/// One of the catalog calls the saga makes over gRPC.
enum Operation {
    Reserve(pb::ReserveStockRequest),
    Commit(String),
    Release(String),
}

impl Operation {
    fn path(&self) -> &'static str {
        match self {
            Operation::Reserve(_) => "/weir.catalog.v1.CatalogService/ReserveStock",
            Operation::Commit(_) => "/weir.catalog.v1.CatalogService/CommitReservation",
            Operation::Release(_) => "/weir.catalog.v1.CatalogService/ReleaseReservation",
        }
    }

    /// Makes the call once; the reservation a reserve answered with.
    async fn send(
        &self,
        client: &GrpcClient,
        call: &ClientCall,
        timeout: Duration,
    ) -> Result<Option<pb::Reservation>, tonic::Status> {
        let mut client = client.clone();
        match self {
            Operation::Reserve(message) => client
                .reserve_stock(call.request(message.clone(), timeout))
                .await
                .map(|r| r.into_inner().reservation),
            Operation::Commit(id) => client
                .commit_reservation(
                    call.request(pb::CommitReservationRequest { id: id.clone() }, timeout),
                )
                .await
                .map(|r| Some(r.into_inner())),
            Operation::Release(id) => client
                .release_reservation(
                    call.request(pb::ReleaseReservationRequest { id: id.clone() }, timeout),
                )
                .await
                .map(|r| Some(r.into_inner())),
        }
    }
}

/// A gRPC call with the saga's retries: up to `config.call_attempts` tries
/// while the answer is not definite (see `is_definite`), each a CLIENT span.
async fn grpc(
    client: &GrpcClient,
    config: &Config,
    incoming: &HeaderMap,
    operation: &Operation,
) -> Answer<Option<pb::Reservation>> {
    let path = operation.path();
    let attempts = config.call_attempts.max(1);
    let mut last = String::new();
    for n in 1..=attempts {
        let call = ClientCall::start(&config.telemetry, incoming, path, "catalog");
        let result = operation.send(client, &call, config.call_timeout).await;
        call.finish(match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        });
        match result {
            Ok(value) => return Ok(Ok(value)),
            Err(status) if is_definite(&status) => {
                return Ok(Err(Refusal {
                    conflict: status.code() == tonic::Code::FailedPrecondition,
                    detail: status.message().to_owned(),
                }));
            }
            Err(status) => {
                last = match generated_by_proxy(&status) {
                    Some(kind) => {
                        format!("the sidecar answered {path} ({kind}): {}", status.message())
                    }
                    None => format!("{path} answered {:?}: {}", status.code(), status.message()),
                };
            }
        }
        tracing::info!(%path, attempt = n, attempts, reason = %last, "call failed, will retry");
        if n < attempts {
            tokio::time::sleep(backoff_capped(
                config.retry_backoff,
                Duration::from_secs(2),
                n,
            ))
            .await;
        }
    }
    Err(last)
}

fn status_name(status: pb::ReservationStatus) -> &'static str {
    match status {
        pb::ReservationStatus::Held => "held",
        pb::ReservationStatus::Committed => "committed",
        pb::ReservationStatus::Released => "released",
        pb::ReservationStatus::Expired => "expired",
        pb::ReservationStatus::Unspecified => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_names() {
        assert_eq!(CatalogApi::parse("grpc"), Some(CatalogApi::Grpc));
        assert_eq!(CatalogApi::parse(" REST "), Some(CatalogApi::Rest));
        assert_eq!(CatalogApi::parse("soap"), None);
    }
}
