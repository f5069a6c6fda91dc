//! Sidecar.
