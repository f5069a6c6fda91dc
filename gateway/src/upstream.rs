//! An upstream at run time: its endpoints, balancer and connection pool.
//!
//! Passive ejection (`passive_ejection`) is proxy-core's one ejection
//! mechanism with [`BreakerSettings::passive`]: the request path reports a
//! refused connection with `Endpoint::record_failure` and a response with
//! `Endpoint::mark_success`; the balancer skips ejected endpoints.

use std::sync::Arc;

use proxy_core::balance::{EndpointGroup, GroupOptions};
use proxy_core::forward::{ClientOptions, UpstreamClient};
use proxy_core::resilience::BreakerSettings;

use crate::config::UpstreamConfig;

/// One configured upstream. Reloads that leave an upstream's config unchanged
/// keep the same `Upstream`, so its pooled connections, health state and load
/// statistics survive.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub config: UpstreamConfig,
    pub group: Arc<EndpointGroup>,
    pub client: UpstreamClient,
}

impl Upstream {
    pub fn build(name: &str, config: &UpstreamConfig) -> Arc<Self> {
        let group = EndpointGroup::new(GroupOptions {
            name: name.to_owned(),
            endpoints: config.endpoints.clone(),
            load_balancer: config.load_balancer,
            health_check: config.health_check.clone(),
            dns_refresh: config.dns_refresh.get(),
            ejection: BreakerSettings::passive(
                config.passive_ejection.base.get(),
                config.passive_ejection.max.get(),
            ),
            ejection_hook: None,
        });
        let client = UpstreamClient::new(&ClientOptions {
            protocol: config.protocol,
            connect_timeout: config.timeouts.connect.get(),
            pool: config.pool.clone(),
        });
        Arc::new(Self {
            name: name.into(),
            config: config.clone(),
            group,
            client,
        })
    }

    /// The previous upstream when its config is unchanged, else a new one.
    pub fn reuse_or_build(
        name: &str,
        config: &UpstreamConfig,
        previous: Option<&Arc<Upstream>>,
    ) -> Arc<Self> {
        match previous {
            Some(prev) if prev.config == *config => prev.clone(),
            _ => Self::build(name, config),
        }
    }
}
