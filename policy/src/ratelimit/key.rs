//! What separates one caller's limit from another's, and who the client is.

use std::net::IpAddr;

use crate::ip_text::push_ip;

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use crate::identity::Identity;

/// One component of a rate-limit key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KeyPart {
    ClientIp,
    /// The authenticated consumer; anonymous callers fall back to their IP.
    Consumer,
    Route,
    Header(HeaderName),
    Claim(String),
}

impl KeyPart {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        match s {
            "client_ip" => Ok(Self::ClientIp),
            "consumer" => Ok(Self::Consumer),
            "route" => Ok(Self::Route),
            _ => {
                if let Some(h) = s.strip_prefix("header:") {
                    HeaderName::from_bytes(h.as_bytes())
                        .map(Self::Header)
                        .map_err(|_| format!("{h:?} is not a header name"))
                } else if let Some(c) = s.strip_prefix("claim:").filter(|c| !c.is_empty()) {
                    Ok(Self::Claim(c.to_owned()))
                } else {
                    Err(format!(
                        "unknown key part {s:?}: use client_ip, consumer, route, header:NAME or claim:NAME"
                    ))
                }
            }
        }
    }
}

/// What a key is built from, for one request.
pub(crate) struct KeyInput<'a> {
    pub(crate) route: &'a str,
    pub(crate) client_ip: IpAddr,
    pub(crate) identity: Option<&'a Identity>,
    pub(crate) headers: &'a HeaderMap,
}

/// Longest key stored as written; longer ones (big header values) are hashed.
const MAX_KEY: usize = 200;

/// Builds `policy|part|part…`. The policy name comes first, so a policy used
/// by many routes is one limit unless `route` is part of its key.
pub(crate) fn build(policy: &str, parts: &[KeyPart], input: &KeyInput<'_>) -> String {
    let mut key = String::with_capacity(64);
    key.push_str(policy);
    for part in parts {
        key.push('|');
        match part {
            KeyPart::ClientIp => push_ip(&mut key, input.client_ip),
            KeyPart::Consumer => match input.identity.and_then(|i| i.consumer.as_deref()) {
                Some(c) => {
                    key.push_str("c:");
                    key.push_str(c);
                }
                None => {
                    key.push_str("ip:");
                    push_ip(&mut key, input.client_ip);
                }
            },
            KeyPart::Route => key.push_str(input.route),
            KeyPart::Header(h) => {
                if let Some(v) = input.headers.get(h) {
                    key.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
            }
            KeyPart::Claim(c) => {
                if let Some(v) = input.identity.and_then(|i| i.claim_str(c)) {
                    key.push_str(&v);
                }
            }
        }
    }
    if key.len() > MAX_KEY {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        key.truncate(policy.len());
        key.push_str("|#");
        key.push_str(&digest);
    }
    key
}

/// An IP network written as CIDR (`10.0.0.0/8`) or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .map_err(|e| format!("{s:?}: prefix {e}"))?,
            None => max,
        };
        if prefix > max {
            return Err(format!("{s:?}: prefix longer than {max}"));
        }
        Ok(Self {
            addr: addr.to_canonical(),
            prefix,
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is walked from the right (the entries our
/// proxies appended) past every trusted hop; the first untrusted address is
/// the client. Entries further left were written by the client and are never
/// believed.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .rsplit(',')
                .map(str::trim)
                .collect::<Vec<_>>()
        });
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(client) {
                    return client;
                }
            }
            // Garbage in the chain: stop at the last address we could trust.
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(v: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in v {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.2.3.4".parse().unwrap()));
        assert!(c.contains("::ffff:10.2.3.4".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(
            Cidr::parse("1.2.3.4")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(outsider, &xff(&["1.1.1.1"]), &trusted), outsider);
        // Trusted peer: rightmost untrusted hop, forged left entries ignored.
        let h = xff(&["6.6.6.6, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
        // Garbage stops the walk.
        assert_eq!(client_ip(peer, &xff(&["1.1.1.1, junk"]), &trusted), peer);
    }

    #[test]
    fn keys() {
        let h = xff(&[]);
        let input = KeyInput {
            route: "r1",
            client_ip: "1.2.3.4".parse().unwrap(),
            identity: None,
            headers: &h,
        };
        let parts = [KeyPart::Route, KeyPart::Consumer, KeyPart::ClientIp];
        assert_eq!(build("p", &parts, &input), "p|r1|ip:1.2.3.4|1.2.3.4");
        assert_eq!(build("global", &[], &input), "global");
        let long = HeaderMap::from_iter([(
            HeaderName::from_static("x-k"),
            "v".repeat(500).parse().unwrap(),
        )]);
        let input = KeyInput {
            headers: &long,
            ..input
        };
        let k = build(
            "p",
            &[KeyPart::Header(HeaderName::from_static("x-k"))],
            &input,
        );
        assert!(k.len() < 80 && k.starts_with("p|#"), "{k}");
        assert!(KeyPart::parse("claim:tenant").is_ok());
        assert!(KeyPart::parse("claim:").is_err());
        assert!(KeyPart::parse("ip").is_err());
    }
}
