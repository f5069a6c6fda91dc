//! What a credentials source reports: how often it got a certificate, how
//! often it failed, and when the current one expires (alert on
//! `weir_identity_certificate_expiry_timestamp_seconds - time() < 3600`).

use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters of one credentials source (clones share the values).
#[derive(Clone, Debug, Default)]
pub struct IdentityMetrics {
    /// Certificates obtained and published (first issue, renewals, file reloads).
    pub renewals: Counter,
    /// Attempts that failed (issuer unreachable or refusing, invalid files).
    pub failures: Counter,
    /// Expiry of the published certificate, seconds since the epoch.
    pub expiry: Gauge,
}

impl IdentityMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "weir_identity_renewals",
            "Workload certificates obtained and published",
            self.renewals.clone(),
        );
        registry.register(
            "weir_identity_renewal_failures",
            "Failed attempts to obtain or load a workload certificate",
            self.failures.clone(),
        );
        registry.register(
            "weir_identity_certificate_expiry_timestamp_seconds",
            "When the published workload certificate expires (Unix time)",
            self.expiry.clone(),
        );
    }

    pub(crate) fn published(&self, not_after: SystemTime) {
        self.renewals.inc();
        let secs = not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.expiry.set(i64::try_from(secs).unwrap_or(i64::MAX));
    }
}
