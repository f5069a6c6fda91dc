//! The local Weir stack in one process: catalog, order and payment, a sidecar
//! in front of each, and the gateway in front of the sidecars, wired with the
//! configs in `config/`.
//!
//! ```text
//! client → gateway :8080 → sidecar(inbound) → app
//! order app → its sidecar(outbound) → catalog's / payment's sidecar(inbound) → app
//! ```
//!
//! The `demo` binary runs it on the documented ports; end-to-end tests run the
//! very same code with every port taken from `127.0.0.1:0`.

mod identity;
mod patch;
mod stack;

pub use identity::TRUST_DOMAIN;
pub use stack::{EnvLookup, SidecarAddrs, Stack, StackError, StackOptions};
