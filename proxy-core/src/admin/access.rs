//! Who may use the admin listener.
//!
//! Three checks, in this order, each answered with a problem document:
//!
//! 1. **Host** (every request): the `Host` (or HTTP/2 `:authority`) must name
//!    the listener itself (the local `ip:port` the connection reached, or
//!    `localhost:port`) or an entry of `admin.allowed_hosts`; anything else
//!    gets `421`. A web page cannot then reach the admin port through a DNS
//!    name it controls and re-points at 127.0.0.1 (DNS rebinding), because its
//!    requests carry that name. A request without any authority passes: no
//!    browser sends one.
//! 2. **Same origin** (mutating methods): a browser's `Sec-Fetch-Site` other
//!    than `same-origin`/`none`, or an `Origin` that is not the admin's own,
//!    gets `403`, so a page on another site cannot `POST /reload` through the
//!    operator's browser. Clients that are not browsers send neither header.
//! 3. **Bearer token** (mutating methods, when one is configured): `401`
//!    unless `Authorization: Bearer <token>` matches, compared in constant time.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use http::header::{AUTHORIZATION, HOST, HeaderValue, ORIGIN, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode, Uri};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AdminConfig, ConfigErrors, Secret};
use crate::problem::Problem;

/// Environment variable holding the admin token itself.
pub const TOKEN_ENV: &str = "WEIR_ADMIN_TOKEN";
/// Environment variable naming a file that holds the admin token.
pub const TOKEN_FILE_ENV: &str = "WEIR_ADMIN_TOKEN_FILE";

/// Tokens shorter than this are accepted with a warning: they can be guessed.
const SHORT_TOKEN: usize = 16;

/// One `admin.allowed_hosts` entry, or a parsed `Host` header: a lowercase
/// name or IP (without brackets or a trailing dot) and an optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses `name`, `name:port`, `1.2.3.4:port` or `[::1]:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or("an IPv6 address needs its closing bracket")?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("expected :port after ]")?),
            };
            (ip, port)
        } else {
            match s.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err("write an IPv6 address in brackets: [::1]:9901".into());
                }
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| format!("{p:?} is not a port")))
            .transpose()?;
        let host = host.strip_suffix('.').unwrap_or(host);
        let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
        if host.is_empty() || !host.chars().all(name_char) {
            return Err(
                "expected a host name or IP, optionally with :port (no scheme or path)".into(),
            );
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// The bearer token mutating endpoints require.
#[derive(Clone, Debug)]
pub enum AdminToken {
    /// Given directly (`WEIR_ADMIN_TOKEN`).
    Value(Secret<String>),
    /// Read from this file on each check, so a rotated Kubernetes Secret
    /// applies without a restart.
    File(PathBuf),
}

impl AdminToken {
    async fn current(&self) -> Result<Secret<String>, String> {
        match self {
            AdminToken::Value(v) => Ok(v.clone()),
            AdminToken::File(path) => read_token(path).await,
        }
    }
}

async fn read_token(path: &Path) -> Result<Secret<String>, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    token_from(text).ok_or_else(|| format!("{} is empty", path.display()))
}

fn token_from(text: String) -> Option<Secret<String>> {
    let t = text.trim();
    (!t.is_empty()).then(|| Secret::new(t.to_owned()))
}

/// What the admin listener checks before it routes a request.
#[derive(Clone, Debug, Default)]
pub struct AdminAccess {
    allowed_hosts: Vec<HostPattern>,
    token: Option<AdminToken>,
}

impl AdminAccess {
    /// Only the listener's own address and `localhost`; no token.
    pub fn local_only() -> Self {
        Self::default()
    }

    /// Reads `admin:` and the token variables (`WEIR_ADMIN_TOKEN`, then
    /// `WEIR_ADMIN_TOKEN_FILE`, then `admin.token_file` resolved against
    /// `base_dir`). A token file must be readable and non-empty now, so a
    /// typo fails at start-up rather than locking operators out later.
    pub fn resolve(
        config: &AdminConfig,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut errors = config.validate("admin");
        let allowed_hosts = config
            .allowed_hosts
            .iter()
            .filter_map(|h| HostPattern::parse(h).ok())
            .collect();
        let (token, field) = if let Some(t) = env(TOKEN_ENV).and_then(token_from) {
            (Some(AdminToken::Value(t)), TOKEN_ENV)
        } else if let Some(f) = env(TOKEN_FILE_ENV).filter(|f| !f.trim().is_empty()) {
            (
                Some(AdminToken::File(PathBuf::from(f.trim()))),
                TOKEN_FILE_ENV,
            )
        } else if let Some(f) = &config.token_file {
            (Some(AdminToken::File(base_dir.join(f))), "admin.token_file")
        } else {
            (None, "")
        };
        let length = match &token {
            Some(AdminToken::File(path)) => match std::fs::read_to_string(path) {
                Ok(text) => match token_from(text) {
                    Some(t) => Some(t.expose().len()),
                    None => {
                        errors.push(field, format!("{} is empty", path.display()));
                        None
                    }
                },
                Err(e) => {
                    errors.push(field, format!("cannot read {}: {e}", path.display()));
                    None
                }
            },
            Some(AdminToken::Value(v)) => Some(v.expose().len()),
            None => None,
        };
        if length.is_some_and(|n| n < SHORT_TOKEN) {
            tracing::warn!(
                source = field,
                "the admin token is shorter than {SHORT_TOKEN} characters and can be guessed"
            );
        }
        errors.into_result(Self {
            allowed_hosts,
            token,
        })
    }

    /// Whether mutating endpoints require a bearer token.
    pub fn token_required(&self) -> bool {
        self.token.is_some()
    }

    /// Runs the checks of the module docs; `Err` is the response to send.
    pub(crate) async fn check(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        local: SocketAddr,
    ) -> Result<(), Box<Problem>> {
        let authority = self.check_host(uri, headers, local)?;
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        check_same_origin(headers, authority.as_deref())?;
        self.check_token(headers).await
    }

    /// The request's authority when it is one the listener answers to.
    fn check_host(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        local: SocketAddr,
    ) -> Result<Option<String>, Box<Problem>> {
        let misdirected = || {
            Box::new(
                Problem::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "admin-host-refused",
                    "Host not served here",
                )
                .detail(
                    "the admin listener answers only to its own address, localhost, \
                 and the names in admin.allowed_hosts",
                ),
            )
        };
        let mut hosts = headers.get_all(HOST).iter();
        let header = hosts.next();
        if hosts.next().is_some() {
            return Err(misdirected());
        }
        let header = match header.map(HeaderValue::to_str) {
            Some(Ok(h)) => Some(h),
            Some(Err(_)) => return Err(misdirected()),
            None => None,
        };
        let from_uri = uri.authority().map(|a| a.as_str());
        let mut seen = None;
        for authority in [header, from_uri].into_iter().flatten() {
            if !self.host_allowed(authority, local) {
                return Err(misdirected());
            }
            seen.get_or_insert_with(|| authority.to_owned());
        }
        Ok(seen)
    }

    fn host_allowed(&self, authority: &str, local: SocketAddr) -> bool {
        let Ok(req) = HostPattern::parse(authority) else {
            return false;
        };
        let own_port = req.port.unwrap_or(80) == local.port();
        let own_ip = req
            .ip()
            .is_some_and(|ip| ip.to_canonical() == local.ip().to_canonical());
        if own_port && (own_ip || req.host == "localhost") {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|p| p.host == req.host && p.port.is_none_or(|port| Some(port) == req.port))
    }

    async fn check_token(&self, headers: &HeaderMap) -> Result<(), Box<Problem>> {
        let Some(source) = &self.token else {
            return Ok(());
        };
        let expected = source.current().await.map_err(|e| {
            tracing::error!(error = %e, "admin token unavailable; refusing mutating admin requests");
            Box::new(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "admin-token-unavailable",
                "Admin token unavailable",
            ))
        })?;
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let challenge = |error: Option<&str>| {
            let value = match error {
                Some(e) => format!("Bearer realm=\"weir-admin\", error=\"{e}\""),
                None => "Bearer realm=\"weir-admin\"".to_owned(),
            };
            Box::new(
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "admin-unauthorized",
                    "Admin token required",
                )
                .detail("mutating admin endpoints need Authorization: Bearer <admin token>")
                .header(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer")),
                ),
            )
        };
        let Some(presented) = presented else {
            return Err(challenge(None));
        };
        // Hashing first makes the comparison independent of both lengths.
        let a = Sha256::digest(presented.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        if bool::from(a.ct_eq(&b)) {
            Ok(())
        } else {
            tracing::warn!("admin request refused: wrong bearer token");
            Err(challenge(Some("invalid_token")))
        }
    }
}

/// Refuses a mutating request a browser sent from another site.
fn check_same_origin(headers: &HeaderMap, authority: Option<&str>) -> Result<(), Box<Problem>> {
    let refuse = || {
        Box::new(
            Problem::new(
                StatusCode::FORBIDDEN,
                "admin-cross-site-refused",
                "Cross-site admin request refused",
            )
            .detail("mutating admin endpoints accept only same-origin requests"),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Err(refuse());
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin_authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.parse::<Uri>().ok())
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
            .and_then(|u| u.authority().map(|a| a.as_str().to_owned()));
        let same = match (origin_authority, authority) {
            (Some(o), Some(a)) => o.eq_ignore_ascii_case(a),
            _ => false,
        };
        if !same {
            return Err(refuse());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:9901".parse().unwrap()
    }

    fn access(hosts: &[&str]) -> AdminAccess {
        AdminAccess {
            allowed_hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
            token: None,
        }
    }

    #[test]
    fn own_address_and_localhost_pass_other_names_do_not() {
        let a = access(&[]);
        assert!(a.host_allowed("127.0.0.1:9901", local()));
        assert!(a.host_allowed("LOCALHOST:9901", local()));
        assert!(!a.host_allowed("localhost:9902", local()));
        assert!(!a.host_allowed("localhost", local()), "port 80 is not ours");
        assert!(!a.host_allowed("127.0.0.2:9901", local()));
        assert!(!a.host_allowed("attacker.example:9901", local()));
        assert!(!a.host_allowed("user@127.0.0.1:9901", local()));
        let v6: SocketAddr = "[::1]:9901".parse().unwrap();
        assert!(a.host_allowed("[::1]:9901", v6));
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:9901".parse().unwrap();
        assert!(a.host_allowed("10.0.0.5:9901", mapped));
    }

    #[test]
    fn configured_names_match_any_port_or_their_own() {
        let a = access(&["gw-admin.weir.svc.", "admin.example:443"]);
        assert!(a.host_allowed("gw-admin.weir.svc:80", local()));
        assert!(a.host_allowed("GW-ADMIN.weir.svc", local()));
        assert!(a.host_allowed("admin.example:443", local()));
        assert!(!a.host_allowed("admin.example:8443", local()));
        assert!(!a.host_allowed("admin.example", local()));
    }

    #[test]
    fn cross_site_signals_are_refused_and_same_origin_passes() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            m
        };
        let own = Some("127.0.0.1:9901");
        assert!(check_same_origin(&h(&[]), own).is_ok());
        assert!(check_same_origin(&h(&[("sec-fetch-site", "same-origin")]), own).is_ok());
        assert!(check_same_origin(&h(&[("origin", "http://127.0.0.1:9901")]), own).is_ok());
        assert!(check_same_origin(&h(&[("sec-fetch-site", "cross-site")]), own).is_err());
        assert!(check_same_origin(&h(&[("sec-fetch-site", "same-site")]), own).is_err());
        assert!(check_same_origin(&h(&[("origin", "http://evil.example")]), own).is_err());
        assert!(check_same_origin(&h(&[("origin", "null")]), own).is_err());
        assert!(check_same_origin(&h(&[("origin", "http://127.0.0.1:9901")]), None).is_err());
    }

    #[test]
    fn token_sources_in_order_of_precedence() {
        let dir = std::env::temp_dir().join(format!("weir-admin-token-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "from-the-file-0123456789\n").unwrap();
        let mut cfg = AdminConfig::at(local());
        cfg.token_file = Some("token".into());
        let none = |_: &str| None;
        let a = AdminAccess::resolve(&cfg, &dir, &none).unwrap();
        assert!(matches!(&a.token, Some(AdminToken::File(p)) if p == &dir.join("token")));
        let env = |k: &str| (k == TOKEN_ENV).then(|| "from-the-env-0123456789".to_owned());
        let a = AdminAccess::resolve(&cfg, &dir, &env).unwrap();
        assert!(
            matches!(&a.token, Some(AdminToken::Value(v)) if v.expose() == "from-the-env-0123456789")
        );
        cfg.token_file = Some("missing".into());
        let err = AdminAccess::resolve(&cfg, &dir, &none).unwrap_err();
        assert_eq!(err.0[0].path, "admin.token_file");
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let env = |k: &str| (k == TOKEN_FILE_ENV).then(|| dir.join("empty").display().to_string());
        let err = AdminAccess::resolve(&cfg, &dir, &env).unwrap_err();
        assert_eq!(err.0[0].path, TOKEN_FILE_ENV);
        assert!(
            AdminAccess::resolve(&AdminConfig::at(local()), &dir, &none)
                .unwrap()
                .token
                .is_none()
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
