//! Typed configuration building blocks shared by the gateway and the sidecar.
//!
//! Configuration is read in two steps (as sozu and Pingora do): serde structs that
//! mirror the file, with unknown fields rejected, then a validation pass that
//! builds the typed runtime form and reports *every* problem at once, each with
//! its field path (`routes[2].upstream`) and, where the YAML parser knows it,
//! its line.

mod duration;
mod error;
mod load;
mod sections;
mod size;

pub use duration::HumanDuration;
pub use error::{ConfigError, ConfigErrors};
pub use load::{parse_yaml, read_yaml_file};
pub use sections::{
    AdminConfig, EndpointAddr, HealthCheckConfig, LimitsConfig, LoadBalancerKind, PoolConfig,
    Protocol, ShutdownConfig, UpstreamTimeouts,
};
pub use size::ByteSize;
