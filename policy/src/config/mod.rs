//! The policy sections of `gateway.yaml`, as raw serde structs.
//!
//! These mirror the file one to one (unknown fields are errors) and are turned
//! into runtime state by [`crate::Policies::build`], which validates them first
//! and reports every problem at once with its field path
//! (`auth.jwt[0].jwks.file`). The gateway owns the file as a whole: it embeds
//! [`AuthConfig`] as `auth:`, [`RateLimitsConfig`] as `rate_limits:`, and per
//! route [`RouteAuthConfig`] (`auth:`), a list of policy names (`rate_limit:`)
//! and [`CorsConfig`] (`cors:`).

mod auth;
mod auth_failures;
mod cors;
mod ratelimit;
mod validate;

pub use auth::{
    ApiKeyConfig, AuthConfig, AuthMethod, JwksConfig, JwtProviderConfig, RouteAuthConfig,
};
pub use auth_failures::AuthFailureLimitConfig;
pub use cors::CorsConfig;
pub use ratelimit::{
    HeaderStyle, LocalConfig, OnError, RateLimitBackend, RateLimitPolicyConfig, RateLimitsConfig,
    RedisConfig,
};
pub use validate::validate;

pub use proxy_core::config::{ConfigError, ConfigErrors, HumanDuration};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_equal_empty_sections() {
        let parsed: AuthConfig = serde_json::from_str("{}").unwrap();
        let default = AuthConfig::default();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(&default).unwrap()
        );
        let parsed: RateLimitsConfig = serde_json::from_str("{}").unwrap();
        let default = RateLimitsConfig::default();
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(&default).unwrap()
        );
    }
}
