//! Config sections the gateway and the sidecar read alike.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ByteSize, HumanDuration};

/// `shutdown:` how long in-flight work may take after SIGTERM.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    pub drain: HumanDuration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain: HumanDuration::from_secs(30),
        }
    }
}

/// `limits:` what one client connection may cost the proxy.
///
/// Every listener (gateway listeners, admin, sidecar inbound, outbound and
/// transparent, the injection webhook) is served by the same function with
/// these limits, so each bound below holds on all of them.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Accepted connections beyond this wait in the kernel backlog.
    pub max_connections: usize,
    /// Time a client has to send a complete request head (slowloris guard),
    /// for the first request of a connection and every one after it.
    pub header_read_timeout: HumanDuration,
    /// A connection with no request in flight is closed after this long;
    /// HTTP/2 PING frames (ours or the client's) do not count as activity.
    pub idle_timeout: HumanDuration,
    /// A connection with requests in flight is closed when nothing moves for
    /// this long: no request starts or ends and no body data flows either way
    /// (a request waiting on an upstream that never answers, on a route with
    /// no timeout).
    pub request_idle_timeout: HumanDuration,
    /// A request body that delivers no data for this long fails (the client
    /// sent the head and part of the body, then went silent).
    pub body_read_timeout: HumanDuration,
    /// An upgraded connection (WebSocket, transparent opaque TCP) that moves
    /// no byte in either direction for this long is closed.
    pub tunnel_idle_timeout: HumanDuration,
    /// Largest request head accepted (`431` beyond it).
    pub max_header_bytes: ByteSize,
    /// Most header fields in an HTTP/1.1 request head (`431` beyond it).
    pub max_headers: usize,
    /// Largest request body accepted (`413` beyond it); routes may lower or raise it.
    pub max_body_bytes: ByteSize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: HumanDuration::from_secs(10),
            idle_timeout: HumanDuration::from_secs(60),
            request_idle_timeout: HumanDuration::from_secs(300),
            body_read_timeout: HumanDuration::from_secs(30),
            tunnel_idle_timeout: HumanDuration::from_secs(3600),
            max_header_bytes: ByteSize::kib(64),
            max_headers: 100,
            max_body_bytes: ByteSize::mib(10),
        }
    }
}

/// One upstream endpoint: a socket address, or a DNS name re-resolved on an
/// interval (`dns: catalog.shop.svc.cluster.local:4143`), which is how a
/// Kubernetes headless Service exposes every pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointAddr {
    Static(SocketAddr),
    Dns { host: String, port: u16 },
}

impl FromStr for EndpointAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("dns:") {
            let rest = rest.trim();
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("endpoint {s:?} needs a port (dns:name:port)"))?;
            let port = port
                .parse()
                .map_err(|_| format!("endpoint {s:?} has an invalid port"))?;
            if host.is_empty() {
                return Err(format!("endpoint {s:?} has an empty host name"));
            }
            return Ok(EndpointAddr::Dns {
                host: host.to_owned(),
                port,
            });
        }
        s.parse::<SocketAddr>()
            .map(EndpointAddr::Static)
            .map_err(|_| {
                format!("endpoint {s:?} is not host:port (use dns:name:port for DNS names)")
            })
    }
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddr::Static(a) => write!(f, "{a}"),
            EndpointAddr::Dns { host, port } => write!(f, "dns:{host}:{port}"),
        }
    }
}

impl<'de> Deserialize<'de> for EndpointAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept both `127.0.0.1:80` and the YAML map form `{dns: name:port}`,
        // since `- dns: x:1` in a flow list parses as a map.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Dns { dns: String },
        }
        match Raw::deserialize(d)? {
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
            Raw::Dns { dns } => format!("dns:{dns}")
                .parse()
                .map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for EndpointAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Protocol spoken to an upstream.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// HTTP/1.1 with a keep-alive pool.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (gRPC upstreams).
    Http2,
    /// HTTP/2 when the client spoke HTTP/2, HTTP/1.1 otherwise.
    Auto,
}

/// How a request picks an endpoint.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadBalancerKind {
    RoundRobin,
    /// Power of two choices over the fewest in-flight requests.
    #[default]
    P2c,
    /// Power of two choices over peak-EWMA latency weighted by load.
    P2cEwma,
}

/// Active health checking of each endpoint: `GET <path>` (2xx or 3xx is
/// healthy), or with `grpc` the standard `grpc.health.v1.Health/Check`
/// (`SERVING` is healthy).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub path: String,
    /// Check over gRPC instead of `GET <path>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheckConfig>,
    pub interval: HumanDuration,
    pub timeout: HumanDuration,
    /// Consecutive successes that bring an unhealthy endpoint back.
    pub healthy: u32,
    /// Consecutive failures that take an endpoint out.
    pub unhealthy: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/healthz".into(),
            grpc: None,
            interval: HumanDuration::from_secs(5),
            timeout: HumanDuration::from_secs(1),
            healthy: 2,
            unhealthy: 3,
        }
    }
}

/// `health_check.grpc`: the gRPC health checking protocol.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcHealthCheckConfig {
    /// The service whose health is asked (`weir.catalog.v1.Catalog`); empty:
    /// the server as a whole.
    pub service: String,
}

/// Connection pool sizing per upstream.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    pub idle_timeout: HumanDuration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_idle_per_endpoint: 4096,
            idle_timeout: HumanDuration::from_secs(90),
        }
    }
}

/// Upstream timeouts the forwarding client enforces.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    pub connect: HumanDuration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect: HumanDuration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            "127.0.0.1:80".parse::<EndpointAddr>().unwrap(),
            EndpointAddr::Static("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            "dns: a.b.svc:4143".parse::<EndpointAddr>().unwrap(),
            EndpointAddr::Dns {
                host: "a.b.svc".into(),
                port: 4143
            }
        );
        assert!("localhost".parse::<EndpointAddr>().is_err());
        let v: Vec<EndpointAddr> =
            serde_norway::from_str("[127.0.0.1:1, {dns: x.y:2}, 'dns:z:3']").unwrap();
        assert_eq!(v.len(), 3);
    }
}
