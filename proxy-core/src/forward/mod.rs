//! One proxy hop: header hygiene, request ids, the pooled upstream client,
//! the client's body on its way upstream, mutual TLS toward sidecars and
//! protocol upgrades (WebSocket and friends).

mod client;
mod client_body;
mod client_error;
mod error;
mod headers;
mod pool;
mod request_id;
mod tls;
mod upgrade;

pub use client::{ClientOptions, UpstreamClient, endpoint_authority};
pub use client_body::{BodyOutcome, ClientBody, ClientBodyError};
pub use client_error::ClientError;
pub use error::ForwardError;
pub use headers::{
    ForwardedInfo, is_upgrade_request, prepare_request_headers, set_forwarded_headers,
    strip_hop_by_hop,
};
pub use request_id::{REQUEST_ID, ensure_request_id, new_request_id};
pub use tls::UpstreamTls;
pub use upgrade::tunnel_upgrade;
