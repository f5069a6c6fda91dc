//! An upstream at run time: its endpoints, balancer and connection pool.
//!
//! Passive ejection (`passive_ejection`) is proxy-core's one ejection
//! mechanism with [`BreakerSettings::passive`]: the request path reports a
//! refused connection with `Endpoint::record_failure` and a response with
//! `Endpoint::mark_success`; the balancer skips ejected endpoints.

use std::sync::Arc;

use proxy_core::balance::{EndpointGroup, GroupOptions};
use proxy_core::forward::{ClientOptions, UpstreamClient, UpstreamTls};
use proxy_core::identity::{SpiffeId, credentials_channel};
use proxy_core::mtls::{CredentialSource, ExpectedPeer};
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
    /// `mesh`: the gateway's workload credentials, for upstreams with `tls`.
    pub fn build(
        name: &str,
        config: &UpstreamConfig,
        mesh: Option<&CredentialSource>,
    ) -> Arc<Self> {
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
        let opts = ClientOptions {
            protocol: config.protocol,
            connect_timeout: config.timeouts.connect.get(),
            pool: config.pool.clone(),
        };
        let client = match upstream_tls(config, mesh) {
            Some(tls) => UpstreamClient::with_tls(&opts, tls),
            None => UpstreamClient::new(&opts),
        };
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
        mesh: Option<&CredentialSource>,
    ) -> Arc<Self> {
        match previous {
            Some(prev) if prev.config == *config => prev.clone(),
            _ => Self::build(name, config, mesh),
        }
    }
}

/// The mutual TLS of an upstream with `tls:`. Without gateway credentials
/// its connections fail (no certificate to present) rather than going out
/// in plaintext.
fn upstream_tls(config: &UpstreamConfig, mesh: Option<&CredentialSource>) -> Option<UpstreamTls> {
    let tls = config.tls.as_ref()?;
    let expected = tls
        .identity
        .as_deref()
        .and_then(|id| SpiffeId::parse(id).ok())
        .map_or(ExpectedPeer::TrustDomain, ExpectedPeer::Id);
    let source = mesh
        .cloned()
        .unwrap_or_else(|| CredentialSource::new(credentials_channel().1));
    Some(UpstreamTls::new(source, expected, config.protocol))
}
