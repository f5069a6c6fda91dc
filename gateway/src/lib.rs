//! Weir edge gateway.

pub mod routing;
