//! Validation without side effects, for `gateway validate` and for reporting
//! a bad reload before anything is built.

use std::path::Path;

use super::{AuthConfig, ConfigErrors, RateLimitsConfig};
use crate::route::RouteRef;

/// Checks `auth:`, `rate_limits:` and each route's policy blocks, reporting
/// every problem with its field path. Reads the key files it names; starts no
/// task and opens no connection, so it runs outside a tokio runtime too.
/// Relative file paths are resolved against `base_dir` (the config file's
/// directory).
pub fn validate<'a>(
    auth: &AuthConfig,
    rate_limits: &RateLimitsConfig,
    base_dir: &Path,
    routes: impl IntoIterator<Item = RouteRef<'a>>,
) -> Result<(), ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let authenticator = crate::auth::compile(auth, base_dir, None, &mut errs);
    let settings = crate::ratelimit::compile(rate_limits, &mut errs);
    crate::auth_failures::compile(&auth.failure_limit, &mut errs);
    let default_auth = auth.default.as_ref();
    if default_auth.is_some() {
        // Checked once here, not once per route that inherits it.
        let probe = RouteRef {
            name: "",
            path: "auth",
            auth: None,
            rate_limit: Some(&[]),
            cors: None,
        };
        crate::route::compile(
            &probe,
            default_auth,
            &authenticator,
            &settings,
            |_| None,
            &mut errs,
        );
    }
    for r in routes {
        crate::route::compile(&r, None, &authenticator, &settings, |_| None, &mut errs);
    }
    errs.into_result(())
}
