//! One authority per request.
//!
//! The host that chooses the route (and so the policies) must be the host the
//! upstream sees. A request can name its authority twice: in the target URI
//! (HTTP/1.1 absolute-form, HTTP/2 `:authority`) and in `Host`. When the two
//! disagree, a proxy that routes by one and forwards the other lets a client
//! pass one route's policies and reach another host. So the request is
//! refused with `400` whenever there is not exactly one authority, as
//! RFC 9112 §3.2 and RFC 9113 §8.3.1 ask:
//!
//! - more than one `Host` line, or a `Host` that is not `host[:port]`;
//! - an HTTP/1.1 request without `Host` (absolute-form included);
//! - an HTTP/2 request with neither `:authority` nor `Host`;
//! - a target authority and a `Host` that name different hosts or ports
//!   (compared case-insensitively, a missing port meaning the scheme's
//!   default, per RFC 3986 §6.2.3).
//!
//! HTTP/1.0 may omit `Host`; such a request has no authority and only
//! matches routes without a host condition.

use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Uri, Version};

/// Why a request has no single authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthorityError {
    MultipleHost,
    MissingHost,
    InvalidHost,
    Disagree,
}

impl AuthorityError {
    /// The `detail` of the problem document.
    pub(super) fn detail(self) -> &'static str {
        match self {
            AuthorityError::MultipleHost => "the request has more than one Host header",
            AuthorityError::MissingHost => "the request names no host (Host or :authority)",
            AuthorityError::InvalidHost => "the Host header is not a valid host[:port]",
            AuthorityError::Disagree => {
                "the request target and the Host header name different hosts"
            }
        }
    }
}

/// The request's one authority, as the value the upstream receives in
/// `Host` and `X-Forwarded-Host`; `None` for an HTTP/1.0 request without one.
pub(super) fn authority(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<HeaderValue>, AuthorityError> {
    let mut hosts = headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::MultipleHost);
    }
    let host = match host {
        None => None,
        Some(v) if v.is_empty() => return Err(AuthorityError::MissingHost),
        Some(v) => {
            let parsed = v
                .to_str()
                .ok()
                .and_then(split_host_port)
                .ok_or(AuthorityError::InvalidHost)?;
            Some((v, parsed))
        }
    };
    // Only compared when the target has an authority, which comes with
    // its scheme (absolute-form, HTTP/2 `:scheme`).
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match (uri.authority(), host) {
        (Some(target), Some((value, (h, port)))) => {
            let same_port =
                target.port_u16().unwrap_or(default_port) == port.unwrap_or(default_port);
            if target.as_str().contains('@') || !same_port || !target.host().eq_ignore_ascii_case(h)
            {
                return Err(AuthorityError::Disagree);
            }
            Ok(Some(value.clone()))
        }
        (Some(_), None) if version == Version::HTTP_11 => Err(AuthorityError::MissingHost),
        (Some(target), None) => {
            if target.as_str().contains('@') {
                return Err(AuthorityError::InvalidHost);
            }
            HeaderValue::from_str(target.as_str())
                .map(Some)
                .map_err(|_| AuthorityError::InvalidHost)
        }
        (None, Some((value, _))) => Ok(Some(value.clone())),
        (None, None) if version == Version::HTTP_11 || version == Version::HTTP_2 => {
            Err(AuthorityError::MissingHost)
        }
        (None, None) => Ok(None),
    }
}

/// `host[:port]` as RFC 9110 §7.2 allows it in `Host` (no user info, no
/// path): the host (IPv6 literals keep their brackets) and the port, if any.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = s.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b'['
                        | b']'
                        | b':'
                )
        });
    if !host_ok || (!host.starts_with('[') && host.contains([':', '[', ']'])) {
        return None;
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        version: Version,
        uri: &str,
        hosts: &[&str],
    ) -> Result<Option<String>, AuthorityError> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(HOST, HeaderValue::from_str(h).unwrap());
        }
        authority(version, &uri.parse().unwrap(), &headers)
            .map(|v| v.map(|v| v.to_str().unwrap().to_owned()))
    }

    #[test]
    fn one_authority_is_taken() {
        let h11 = Version::HTTP_11;
        assert_eq!(
            check(h11, "/x", &["api.example.com"]),
            Ok(Some("api.example.com".into()))
        );
        assert_eq!(
            check(h11, "http://API.example.com/x", &["api.example.com:80"]),
            Ok(Some("api.example.com:80".into()))
        );
        assert_eq!(
            check(h11, "/x", &["[::1]:8080"]),
            Ok(Some("[::1]:8080".into()))
        );
        assert_eq!(
            check(Version::HTTP_2, "http://api.example.com/x", &[]),
            Ok(Some("api.example.com".into()))
        );
        assert_eq!(
            check(Version::HTTP_2, "/x", &["api.example.com"]),
            Ok(Some("api.example.com".into()))
        );
        assert_eq!(check(Version::HTTP_10, "/x", &[]), Ok(None));
    }

    #[test]
    fn ambiguous_authorities_are_refused() {
        let h11 = Version::HTTP_11;
        use AuthorityError::*;
        assert_eq!(check(h11, "/x", &[]), Err(MissingHost));
        assert_eq!(check(h11, "/x", &[""]), Err(MissingHost));
        assert_eq!(check(h11, "http://a.example/x", &[]), Err(MissingHost));
        assert_eq!(check(Version::HTTP_2, "/x", &[]), Err(MissingHost));
        assert_eq!(
            check(h11, "/x", &["a.example", "b.example"]),
            Err(MultipleHost)
        );
        assert_eq!(
            check(h11, "/x", &["a.example", "a.example"]),
            Err(MultipleHost)
        );
        assert_eq!(
            check(h11, "http://a.example/x", &["b.example"]),
            Err(Disagree)
        );
        assert_eq!(
            check(h11, "http://a.example:8080/x", &["a.example"]),
            Err(Disagree)
        );
        assert_eq!(
            check(h11, "https://a.example/x", &["a.example:80"]),
            Err(Disagree)
        );
        assert_eq!(
            check(Version::HTTP_2, "http://a.example/x", &["b.example"]),
            Err(Disagree)
        );
        for bad in [
            "user@a.example",
            "a.example/x",
            "a b",
            "a.example:http",
            "a.example:99999",
            "[::1",
        ] {
            assert_eq!(check(h11, "/x", &[bad]), Err(InvalidHost), "{bad}");
        }
    }
}
