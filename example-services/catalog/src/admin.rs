//! Who may change the catalog.
//!
//! The example services sit behind the gateway, which authenticates callers;
//! the catalog only checks a header the gateway (or an operator) sets. With a
//! configured token the header must carry it, compared in constant time.

use axum::http::HeaderMap;
use service_kit::Problem;
use subtle::ConstantTimeEq;

use crate::state::AppState;

/// Header granting admin rights when no token is configured.
pub const ADMIN_HEADER: &str = "x-weir-admin";
/// Header carrying the admin token when one is configured.
pub const ADMIN_TOKEN_HEADER: &str = "x-weir-admin-token";

/// `403` unless the request carries admin rights.
pub(crate) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), Problem> {
    let allowed = match &state.config.admin_token {
        Some(token) => headers
            .get(ADMIN_TOKEN_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(token.as_bytes()))),
        None => headers
            .get(ADMIN_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true")),
    };
    if allowed {
        Ok(())
    } else {
        let how = if state.config.admin_token.is_some() {
            "send the admin token in x-weir-admin-token"
        } else {
            "send x-weir-admin: true"
        };
        Err(Problem::forbidden(format!(
            "changing the catalog needs admin rights: {how}"
        )))
    }
}
