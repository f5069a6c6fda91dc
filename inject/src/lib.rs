//! Sidecar injection into Kubernetes manifests and the mutating admission webhook.
//!
//! Two ways in, one implementation: `sidecar inject` ([`run_inject_cli`],
//! [`inject_yaml`]) rewrites manifests, `sidecar webhook` ([`run_webhook`])
//! patches pods as the API server creates them, and both call
//! [`inject_pod_template`], so a pod is injected identically either way.
//!
//! # Layout
//! - `options`: defaults ([`InjectOptions`]) and the `weir.dev/*` annotations that override them.
//! - `pod`: [`inject_pod_template`], what injection does to a pod; `containers`: the containers it adds.
//! - `manifest`: multi-document YAML, workload kinds, lists; `render`: key order on output.
//! - `cli`: `sidecar inject` flags and entry point.
//! - `webhook`: AdmissionReview handling and the HTTPS server.

mod cli;
mod containers;
mod error;
mod manifest;
mod options;
mod pod;
mod render;
pub mod webhook;

pub use cli::{InjectArgs, InjectDefaults, run_inject, run_inject_cli};
pub use error::{InjectError, WebhookError};
pub use manifest::{Injected, WorkloadReport, inject_manifests, inject_yaml};
pub use options::{
    ANNOTATION_PREFIX, DEFAULT_IMAGE, INIT_CONTAINER, INJECT_ANNOTATION, INJECTED_ANNOTATION,
    InjectOptions, Mode, PROXY_UID, SIDECAR_CONTAINER,
};
pub use pod::{Outcome, SkipReason, inject_pod_template};
pub use webhook::certs::CertificateFiles;
pub use webhook::review::{ReviewError, review};
pub use webhook::server::{
    WebhookArgs, load_tls, run_webhook, serve_webhook, serve_webhook_with_limits, webhook_limits,
};
