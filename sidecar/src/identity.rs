//! The sidecar's workload identity at run time: the `identity:` section's
//! source, shared with the gateway and kept in `weir-identity`
//! (`weir_identity::source`). Re-exported here because the sidecar's API
//! has always offered it as `sidecar::identity::start`.

pub use weir_identity::source::{IdentityError, start, state_json};
