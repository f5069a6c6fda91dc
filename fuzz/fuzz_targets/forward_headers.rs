//! Header hygiene on a proxy hop (`proxy_core::forward`): `strip_hop_by_hop`
//! and `prepare_request_headers` on arbitrary header maps, checked against
//! RFC 9110 §7.6.1:
//!
//! - no hop-by-hop header survives (`Connection`, `Keep-Alive`,
//!   `Proxy-Connection`, `Proxy-Authenticate`, `Proxy-Authorization`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`), nor any header a
//!   `Connection` token names, except `Connection: upgrade` and `Upgrade` on a
//!   protocol switch;
//! - `TE` survives only as `trailers` (for gRPC), and not when `Connection`
//!   names it;
//! - every other header reaches the next hop with all its values, in order;
//! - `X-Forwarded-For` ends with the client's address (after the previous
//!   hops, when they are readable), `X-Forwarded-Proto` and `X-Forwarded-Host`
//!   are what the proxy knows, each exactly once, whatever the client sent.
#![no_main]

use std::collections::HashSet;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use proxy_core::forward::{
    ForwardedInfo, is_upgrade_request, prepare_request_headers, strip_hop_by_hop,
};
use weir_fuzz::{list, word};

const NAMES: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "te",
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-weir-consumer",
    "x-request-id",
    "authorization",
    "accept",
    "x-a",
];

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn value(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=5)? {
        0 => u.arbitrary::<Vec<u8>>()?,
        1 => b"trailers".to_vec(),
        2 => b"Upgrade".to_vec(),
        3 => b"1.2.3.4, 10.0.0.1".to_vec(),
        _ => {
            // A token list such as `keep-alive, x-a ,Upgrade`.
            let tokens = list(u, 4, |u| word(u, NAMES))?;
            let sep = *u.choose(&[",", ", ", " ,", ",,"])?;
            tokens.join(sep).into_bytes()
        }
    })
}

fn headers(u: &mut Unstructured<'_>) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, v) in list(u, 12, |u| Ok((word(u, NAMES)?, value(u)?)))? {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            map.append(n, v);
        }
    }
    Ok(map)
}

/// The header names `Connection` lists, as the stripping code reads them.
fn connection_tokens(h: &HeaderMap) -> HashSet<HeaderName> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect()
}

fn values(h: &HeaderMap, n: &HeaderName) -> Vec<HeaderValue> {
    h.get_all(n).iter().cloned().collect()
}

/// What `strip_hop_by_hop(before, keep_upgrade)` must leave.
fn check_stripped(before: &HeaderMap, after: &HeaderMap, keep_upgrade: bool) {
    let named = connection_tokens(before);
    let switching = keep_upgrade && before.contains_key(header::UPGRADE);
    for n in HOP_BY_HOP {
        if switching && (*n == "connection" || *n == "upgrade") {
            continue;
        }
        assert!(!after.contains_key(*n), "{n} survived");
    }
    if switching {
        assert_eq!(values(after, &header::CONNECTION), ["upgrade"]);
        assert_eq!(
            values(after, &header::UPGRADE),
            [before[header::UPGRADE].clone()]
        );
    }
    for n in &named {
        if switching && (*n == header::UPGRADE || *n == header::CONNECTION) {
            continue;
        }
        assert!(!after.contains_key(n), "{n}, named by Connection, survived");
    }
    for v in after.get_all(header::TE) {
        assert!(
            v.as_bytes().eq_ignore_ascii_case(b"trailers"),
            "TE {v:?} was forwarded"
        );
    }
    for n in before.keys() {
        let hop = HOP_BY_HOP.contains(&n.as_str()) || *n == header::TE;
        if !hop && !named.contains(n) {
            assert_eq!(values(after, n), values(before, n), "{n} changed");
        }
    }
    for n in after.keys() {
        let reinserted = switching && *n == header::CONNECTION;
        assert!(before.contains_key(n) || reinserted, "{n} appeared");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(before) = headers(&mut u) else {
        return;
    };
    let keep_upgrade = u.arbitrary::<bool>().unwrap_or(false);
    let mut after = before.clone();
    strip_hop_by_hop(&mut after, keep_upgrade);
    check_stripped(&before, &after, keep_upgrade);

    // The whole preparation of a forwarded request.
    let ip: IpAddr = match u.arbitrary::<bool>() {
        Ok(true) => IpAddr::from(u.arbitrary::<[u8; 16]>().unwrap_or_default()),
        _ => IpAddr::from(u.arbitrary::<[u8; 4]>().unwrap_or_default()),
    };
    let ip_text = ip.to_string();
    let formatted = HeaderValue::from_str(&ip_text).expect("an address is a header value");
    let host = HeaderValue::from_bytes(&value(&mut u).unwrap_or_default()).ok();
    let info = ForwardedInfo {
        client_ip: ip,
        proto: if u.arbitrary::<bool>().unwrap_or(false) {
            "https"
        } else {
            "http"
        },
        host: host.as_ref(),
        client_ip_header: u.arbitrary::<bool>().unwrap_or(false).then_some(&formatted),
    };
    let mut prepared = before.clone();
    prepare_request_headers(&mut prepared, info);

    let xff_name = HeaderName::from_static("x-forwarded-for");
    let xfp_name = HeaderName::from_static("x-forwarded-proto");
    let xfh_name = HeaderName::from_static("x-forwarded-host");
    let mut stripped = before.clone();
    strip_hop_by_hop(&mut stripped, is_upgrade_request(&before));
    // Everything but the X-Forwarded-* family is the plain strip.
    for n in stripped.keys().chain(prepared.keys()) {
        if *n != xff_name && *n != xfp_name && *n != xfh_name {
            assert_eq!(values(&prepared, n), values(&stripped, n), "{n} differs");
        }
    }
    let xff = values(&prepared, &xff_name);
    assert_eq!(xff.len(), 1, "X-Forwarded-For: {xff:?}");
    let xff = xff[0].to_str().expect("X-Forwarded-For is text");
    assert!(
        xff == ip_text || xff.ends_with(&format!(", {ip_text}")),
        "X-Forwarded-For {xff:?} does not end with {ip_text}"
    );
    if let Some(prev) = stripped
        .get(&xff_name)
        .and_then(|v| v.to_str().ok())
        .filter(|p| !p.trim().is_empty())
    {
        assert_eq!(xff, format!("{prev}, {ip_text}"));
    }
    assert_eq!(values(&prepared, &xfp_name), [info.proto]);
    match &host {
        Some(h) => assert_eq!(values(&prepared, &xfh_name), [h.clone()]),
        None => assert_eq!(values(&prepared, &xfh_name), values(&stripped, &xfh_name)),
    }
});
