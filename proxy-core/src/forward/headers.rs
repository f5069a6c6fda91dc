//! Header hygiene for a proxy hop (RFC 9110 §7.6.1) and the `X-Forwarded-*` family.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message, and so must not be
/// forwarded. `te: trailers` is the exception, kept for gRPC.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
///
/// With `keep_upgrade`, `Connection: upgrade` and `Upgrade` survive so the next
/// hop sees the protocol switch request (a tunnel is one logical hop).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    let upgrade = if keep_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    for name in named {
        if name != header::UPGRADE || !keep_upgrade {
            headers.remove(&name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    // Every value, not just the first: `TE: trailers` followed by
    // `TE: gzip` must not carry the second one through.
    if headers
        .get_all(header::TE)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// What the proxy knows about the client side of the hop.
#[derive(Clone, Copy, Debug)]
pub struct ForwardedInfo<'a> {
    pub client_ip: IpAddr,
    /// `https` when the client connection was TLS.
    pub proto: &'static str,
    /// The `Host` (or `:authority`) the client asked for.
    pub host: Option<&'a HeaderValue>,
    /// `client_ip` already formatted (see `ConnInfo::remote_ip_header`), so
    /// the common case copies a header instead of formatting per request.
    pub client_ip_header: Option<&'a HeaderValue>,
}

/// Strips hop-by-hop headers and records the hop in `X-Forwarded-For/Proto/Host`.
///
/// For a proxy that adds nothing of its own before forwarding. One that does
/// (identity headers, request ids) strips the client's hop-by-hop headers
/// with [`strip_hop_by_hop`] first, adds its own, and ends with
/// [`set_forwarded_headers`]: stripping after adding would let a client name
/// the proxy's own headers in `Connection` and have them removed.
pub fn prepare_request_headers(headers: &mut HeaderMap, info: ForwardedInfo<'_>) {
    let upgrade = is_upgrade_request(headers);
    strip_hop_by_hop(headers, upgrade);
    set_forwarded_headers(headers, info);
}

/// Records the hop in `X-Forwarded-For/Proto/Host`, removing nothing else.
pub fn set_forwarded_headers(headers: &mut HeaderMap, info: ForwardedInfo<'_>) {
    let prev = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.trim().is_empty());
    let xff = match (prev, info.client_ip_header) {
        (None, Some(formatted)) => Some(formatted.clone()),
        (None, None) => HeaderValue::from_str(&info.client_ip.to_string()).ok(),
        (Some(prev), _) => HeaderValue::from_str(&format!("{prev}, {}", info.client_ip)).ok(),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(info.proto));
    if let Some(host) = info.host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn removes_hop_by_hop_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "gzip"),
            ("transfer-encoding", "chunked"),
            ("accept", "*/*"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn keeps_te_trailers_for_grpc() {
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn drops_te_when_any_value_is_not_trailers() {
        let mut h = map(&[("te", "trailers"), ("te", "gzip")]);
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("te"), "{h:?}");
    }

    #[test]
    fn keeps_upgrade_for_tunnels() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade_request(&h));
        prepare_request_headers(
            &mut h,
            ForwardedInfo {
                client_ip: "10.0.0.1".parse().unwrap(),
                proto: "http",
                host: None,
                client_ip_header: None,
            },
        );
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        prepare_request_headers(
            &mut h,
            ForwardedInfo {
                client_ip: "10.0.0.1".parse().unwrap(),
                proto: "https",
                host: Some(&HeaderValue::from_static("api.example.com")),
                client_ip_header: Some(&HeaderValue::from_static("10.0.0.1")),
            },
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "api.example.com");

        let mut h = HeaderMap::new();
        prepare_request_headers(
            &mut h,
            ForwardedInfo {
                client_ip: "10.0.0.1".parse().unwrap(),
                proto: "http",
                host: None,
                client_ip_header: Some(&HeaderValue::from_static("10.0.0.1")),
            },
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
    }

    #[test]
    fn set_forwarded_headers_removes_nothing_a_connection_header_names() {
        let mut h = map(&[
            ("connection", "x-consumer, x-request-id"),
            ("x-consumer", "alice"),
            ("x-request-id", "abc"),
        ]);
        set_forwarded_headers(
            &mut h,
            ForwardedInfo {
                client_ip: "10.0.0.1".parse().unwrap(),
                proto: "http",
                host: Some(&HeaderValue::from_static("api.example.com")),
                client_ip_header: None,
            },
        );
        assert_eq!(h["x-consumer"], "alice");
        assert_eq!(h["x-request-id"], "abc");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
    }
}
