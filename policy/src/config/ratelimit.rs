//! `rate_limits:` (top level).

use std::collections::BTreeMap;

use proxy_core::config::SecretUrl;
use serde::{Deserialize, Serialize};

use super::HumanDuration;

/// Named rate-limit policies and where their state lives.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    #[serde(default)]
    pub backend: RateLimitBackend,
    /// Required when `backend: redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
    #[serde(default)]
    pub local: LocalConfig,
    #[serde(default)]
    pub policies: BTreeMap<String, RateLimitPolicyConfig>,
    /// Peers (CIDRs or addresses) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Which response headers describe the limits.
    #[serde(default)]
    pub headers: HeaderStyle,
    /// Policies for routes without a `rate_limit:` list.
    #[serde(default)]
    pub default: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In this process: right for one replica, or per-replica limits.
    #[default]
    Local,
    /// Shared by every replica through Redis.
    Redis,
}

/// Connection to the shared Redis and what to do when it fails.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port/db`; shown without the password.
    pub url: SecretUrl,
    /// Longest a request waits for a decision before `on_error` applies.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default)]
    pub on_error: OnError,
    /// Number of gateway replicas; `on_error: local` divides limits by it.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Prefix of every Redis key we write.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(20)
}

fn default_replicas() -> u32 {
    1
}

fn default_prefix() -> String {
    "weir:rl:".to_owned()
}

/// Behaviour while Redis cannot answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Admit the request (and count the failure).
    Open,
    /// Reject with 503.
    Closed,
    /// Use this replica's own limiter with the limit divided by `replicas`.
    #[default]
    Local,
}

/// Bounds of the in-memory limiter.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Most keys one policy tracks; beyond it the keys closest to being
    /// forgotten anyway are evicted first.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            max_keys: default_max_keys(),
        }
    }
}

fn default_max_keys() -> usize {
    1_000_000
}

/// One named limit: `rate` requests per `per`, bursts up to `burst`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicyConfig {
    pub rate: u64,
    pub per: HumanDuration,
    /// Requests admitted at once from a full bucket; defaults to `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    /// What separates callers: any of `client_ip`, `consumer`, `route`,
    /// `header:NAME`, `claim:NAME`; empty means one limit for everyone.
    #[serde(default)]
    pub key: Vec<String>,
    /// One separate limit per route using the policy, instead of one limit
    /// shared by all of them.
    #[serde(default)]
    pub per_route: bool,
}

/// `RateLimit-Policy`/`RateLimit` (IETF draft), `X-RateLimit-*` (legacy), both or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderStyle {
    #[default]
    Draft,
    Legacy,
    Both,
    None,
}
