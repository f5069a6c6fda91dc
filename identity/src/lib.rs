//! Workload identity for Weir: where a sidecar's (or the gateway's) mTLS
//! credentials come from.
//!
//! Each sidecar proves a SPIFFE ID, `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`,
//! with a short-lived X.509 certificate (24 h by default) whose only SAN is
//! that URI. The key is made in the sidecar's memory and never written; the
//! certificate comes from the **issuer**, a small CA service reached over
//! HTTPS that decides which identity a caller may have from its bearer token
//! (a bootstrap token per service, or in Kubernetes the pod's projected
//! ServiceAccount token checked with `TokenReview`). Certificates written by
//! cert-manager into files are the other source.
//!
//! Both sources publish into a [`proxy_core::identity::CredentialsSender`];
//! the mTLS acceptor and connector read the latest value per handshake.
//!
//! # Layout
//!
//! - `ca.rs`: the trust anchor and issuer certificate on disk (`init`, `load`).
//! - `sign.rs`: signing a CSR for an authorized SPIFFE ID.
//! - `authn/`: who is calling (bootstrap tokens, Kubernetes TokenReview).
//! - `api.rs`: the HTTP API, `POST /v1/certificates`.
//! - `issuer.rs`: the issuer service (CA + authn + API over TLS).
//! - `client.rs`: the workload side: key, CSR, renewal at 70 %, retries.
//! - `files.rs`: the cert-manager files source, reloaded on change.
//! - `svid.rs`: the checks every certificate passes before it is published.
//! - `https.rs`: the small JSON-over-HTTPS client both sides use.
//! - `metrics.rs`: renewals, failures, expiry.
//! - `settings.rs`: the `identity:` config section both binaries share, and
//!   its validation.
//! - `source.rs`: starting the source a section names (`start`), what
//!   `/state` shows of it.
//! - `cli.rs`: `sidecar identity init / token / issuer`.

pub mod api;
pub mod authn;
pub mod ca;
pub mod cli;
pub mod client;
pub mod files;
pub mod https;
pub mod issuer;
pub mod metrics;
pub mod settings;
pub mod sign;
pub mod source;
pub mod svid;

pub use ca::Ca;
pub use client::{IdentityClient, RenewPolicy, TokenSource};
pub use files::FileSource;
pub use issuer::{Issuer, IssuerOptions};
pub use metrics::IdentityMetrics;
pub use settings::{IdentityFile, IdentitySettings, IdentitySource};
pub use source::{IdentityError, start};
