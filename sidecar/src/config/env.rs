//! The `WEIR_*` environment overrides (the table is in the parent module's docs).

use std::net::SocketAddr;

use proxy_core::config::ConfigErrors;

use super::SidecarFile;

/// Applies the `WEIR_*` overrides; an unparsable value is a config error that
/// names the variable.
pub fn apply_env(
    file: &mut SidecarFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let get = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut addr = |var: &str, slot: &mut SocketAddr| {
        if let Some(v) = get(var) {
            match v.parse() {
                Ok(a) => *slot = a,
                Err(_) => errs.push(
                    format!("${var}"),
                    format!("{v:?} is not an ip:port address"),
                ),
            }
        }
    };
    addr("WEIR_INBOUND_ADDRESS", &mut file.inbound.address);
    addr("WEIR_APP_ADDRESS", &mut file.inbound.app);
    addr("WEIR_OUTBOUND_ADDRESS", &mut file.outbound.address);
    addr("WEIR_ADMIN_ADDRESS", &mut file.admin.address);
    if let Some(s) = get("WEIR_SERVICE") {
        file.service = s;
    }
    if let Some(v) = get("WEIR_MODE") {
        match v.as_str() {
            "transparent" => file.outbound.transparent = true,
            "explicit" => file.outbound.transparent = false,
            _ => errs.push(
                "$WEIR_MODE",
                format!("{v:?} is not transparent or explicit"),
            ),
        }
    }
    if let Some(v) = get("WEIR_OUTBOUND_TRANSPARENT") {
        match v.as_str() {
            "true" | "1" => file.outbound.transparent = true,
            "false" | "0" => file.outbound.transparent = false,
            _ => errs.push(
                "$WEIR_OUTBOUND_TRANSPARENT",
                format!("{v:?} is not true or false"),
            ),
        }
    }
    super::identity::apply_env(&mut file.identity, env);
    errs.into_result(())
}
