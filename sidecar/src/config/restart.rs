//! The parts of `sidecar.yaml` a reload cannot apply.
//!
//! The listeners are bound with their `limits:`, the telemetry pipeline is
//! built and the drain time is fixed when the sidecar starts; everything else (destinations,
//! retries, breakers, the app address, opaque ports…) lives in the runtime
//! snapshot a reload swaps. A reload that changes one of these fields says so
//! (`POST /reload` answers `restart-required`, the log names the field)
//! instead of claiming a full reload.

use proxy_core::config::changed_fields;

use super::SidecarFile;

/// Field paths whose value in `new` differs from the `running` file (both
/// after environment overrides) and that only a restart applies.
pub fn restart_required(running: &SidecarFile, new: &SidecarFile) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(changed_fields(
        "inbound.address",
        &running.inbound.address,
        &new.inbound.address,
    ));
    out.extend(changed_fields(
        "outbound.address",
        &running.outbound.address,
        &new.outbound.address,
    ));
    out.extend(changed_fields(
        "outbound.transparent",
        &running.outbound.transparent,
        &new.outbound.transparent,
    ));
    out.extend(changed_fields("admin", &running.admin, &new.admin));
    out.extend(changed_fields(
        "telemetry",
        &running.telemetry,
        &new.telemetry,
    ));
    out.extend(changed_fields("shutdown", &running.shutdown, &new.shutdown));
    out.extend(changed_fields("limits", &running.limits, &new.limits));
    out.extend(changed_fields("identity", &running.identity, &new.identity));
    out
}
