//! Typed configuration building blocks shared by the gateway and the sidecar.
//!
//! Configuration is read in two steps (as sozu and Pingora do): serde structs that
//! mirror the file, with unknown fields rejected, then a validation pass that
//! builds the typed runtime form and reports *every* problem at once, each with
//! its field path (`routes[2].upstream`) and, where the YAML parser knows it,
//! its line.
//!
//! Secrets (API-key hashes, HMAC secrets, collector headers, passwords in
//! URLs) are held in [`Secret`] / [`SecretUrl`], which serialize and debug
//! as `<redacted>`: the admin `/config` document, logs and error messages are
//! built from those types and cannot show the value.

mod admin;
mod diff;
mod duration;
mod error;
mod load;
mod secret;
mod sections;
mod size;

pub use admin::AdminConfig;
pub use diff::{changed_fields, changed_values};
pub use duration::HumanDuration;
pub use error::{ConfigError, ConfigErrors};
pub use load::{parse_yaml, read_yaml_file};
pub use secret::{REDACTED, Secret, SecretUrl};
pub use sections::{
    EndpointAddr, GrpcHealthCheckConfig, HealthCheckConfig, LimitsConfig, LoadBalancerKind,
    PoolConfig, Protocol, ShutdownConfig, UpstreamTimeouts,
};
pub use size::ByteSize;
