//! `auth:` config -> [`Authenticator`], with every problem reported by path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

use super::api_key::{self, ApiKeys, StoredKey};
use super::fetch::Target;
use super::jwks::RemoteJwks;
use super::jwt::{KeySource, Provider};
use super::keys::{self, KeySet};
use super::{Authenticator, RouteAuth};
use crate::config::{
    ApiKeyConfig, AuthConfig, AuthMethod, ConfigErrors, JwksConfig, JwtProviderConfig,
    RouteAuthConfig,
};
use crate::identity::IdentityHeaders;
use crate::state::PolicyState;

/// Largest `leeway` accepted: it absorbs clock skew, and a bigger one would
/// quietly extend every token's lifetime.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Builds the authenticator. With a `state`, remote JWK sets are shared with
/// earlier config generations and their background refresh is started;
/// without one (validation only) nothing is spawned or fetched.
pub(crate) fn compile(
    cfg: &AuthConfig,
    base_dir: &Path,
    state: Option<&PolicyState>,
    errs: &mut ConfigErrors,
) -> Authenticator {
    let api_key_header = header_name(&cfg.api_key_header, "auth.api_key_header", errs);
    let consumer = header_name(&cfg.consumer_header, "auth.consumer_header", errs);
    let scopes = cfg
        .scopes_header
        .as_deref()
        .map(|h| header_name(h, "auth.scopes_header", errs));
    let mut strip = vec![consumer.clone()];
    strip.extend(scopes.clone());
    for (i, h) in cfg.strip_headers.iter().enumerate() {
        strip.push(header_name(h, &format!("auth.strip_headers[{i}]"), errs));
    }

    let mut stored = Vec::new();
    add_keys(&cfg.api_keys, "auth.api_keys", &mut stored, errs);
    if let Some(file) = &cfg.api_keys_file {
        let path = base_dir.join(file);
        match proxy_core::config::read_yaml_file::<Vec<ApiKeyConfig>>(&path) {
            Ok(list) => add_keys(
                &list,
                &format!("auth.api_keys_file({file})"),
                &mut stored,
                errs,
            ),
            Err(e) => {
                for err in e.iter() {
                    let at = if err.path.is_empty() {
                        String::new()
                    } else {
                        format!(" at {}", err.path)
                    };
                    errs.push(
                        "auth.api_keys_file",
                        format!("{}{at}: {}", path.display(), err.message),
                    );
                }
            }
        }
    }

    let mut providers = Vec::new();
    let mut by_issuer = HashMap::new();
    for (i, p) in cfg.jwt.iter().enumerate() {
        let at = format!("auth.jwt[{i}]");
        if by_issuer
            .insert(p.issuer.clone(), providers.len())
            .is_some()
        {
            errs.push(
                format!("{at}.issuer"),
                format!("issuer {} is configured twice", p.issuer),
            );
        }
        if let Some(provider) = compile_provider(p, &at, base_dir, state, errs) {
            strip.extend(provider.forward_claims.iter().map(|(_, h)| h.clone()));
            providers.push(provider);
        } else {
            by_issuer.remove(&p.issuer);
        }
    }
    check_namespaces(&cfg.jwt, errs);
    strip.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    strip.dedup();

    Authenticator {
        api_keys: ApiKeys::new(stored),
        api_key_header,
        api_key_query: cfg.api_key_query.clone(),
        providers,
        by_issuer,
        identity_headers: IdentityHeaders {
            consumer,
            scopes,
            strip: strip.into(),
        },
        forward_unused: cfg.forward_unused_credentials,
    }
}

/// Consumers are `jwt:<sub>` or `jwt:<namespace>:<sub>`. With one issuer
/// the namespace is optional; with several, each needs its own, and a
/// namespace has no `:`, so no two issuers' consumers can ever be equal.
fn check_namespaces(providers: &[JwtProviderConfig], errs: &mut ConfigErrors) {
    let mut seen = HashMap::new();
    for (i, p) in providers.iter().enumerate() {
        let at = format!("auth.jwt[{i}].consumer_namespace");
        match p.consumer_namespace.as_deref() {
            None if providers.len() > 1 => errs.push(
                at,
                "several issuers are configured: give each a distinct consumer_namespace, so their subjects cannot name the same consumer",
            ),
            None => {}
            Some(ns) => {
                if ns.is_empty()
                    || !ns
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    errs.push(at.clone(), "use letters, digits and - _ . only");
                }
                if let Some(j) = seen.insert(ns, i) {
                    errs.push(at, format!("already used by auth.jwt[{j}]"));
                }
            }
        }
    }
}

fn add_keys(list: &[ApiKeyConfig], at: &str, out: &mut Vec<StoredKey>, errs: &mut ConfigErrors) {
    for (i, k) in list.iter().enumerate() {
        if k.name.is_empty() {
            errs.push(format!("{at}[{i}].name"), "must not be empty");
        }
        match api_key::parse_hash(k.sha256.expose()) {
            Ok(hash) => out.push(StoredKey {
                hash,
                name: k.name.as_str().into(),
                scopes: k.scopes.clone().into(),
            }),
            Err(e) => errs.push(format!("{at}[{i}].sha256"), e),
        }
    }
}

fn compile_provider(
    p: &JwtProviderConfig,
    at: &str,
    base_dir: &Path,
    state: Option<&PolicyState>,
    errs: &mut ConfigErrors,
) -> Option<Provider> {
    let before = errs.len();
    if p.issuer.is_empty() {
        errs.push(format!("{at}.issuer"), "must not be empty");
    }
    let mut algorithms = Vec::new();
    for (j, a) in p.algorithms.iter().enumerate() {
        match a.parse::<Algorithm>() {
            Ok(alg) => algorithms.push(alg),
            Err(_) => errs.push(
                format!("{at}.algorithms[{j}]"),
                format!("unknown algorithm {a:?} (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA, HS256, HS384, HS512)"),
            ),
        }
    }
    if p.algorithms.is_empty() {
        errs.push(
            format!("{at}.algorithms"),
            "list the accepted algorithms, e.g. [RS256]",
        );
    }
    let hmac = algorithms
        .iter()
        .any(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac);
    let asym = algorithms
        .iter()
        .any(|a| a.family() != jsonwebtoken::AlgorithmFamily::Hmac);
    let sources = [p.jwks.is_some(), p.pem.is_some(), p.secret.is_some()];
    if sources.iter().filter(|s| **s).count() != 1 {
        errs.push(at.to_owned(), "set exactly one of jwks, pem, secret");
    }
    if p.secret.is_some() && asym {
        errs.push(
            format!("{at}.algorithms"),
            "a shared secret only verifies HS256/HS384/HS512",
        );
    }
    if p.pem.is_some() && hmac {
        errs.push(
            format!("{at}.algorithms"),
            "HS* algorithms need a secret, not a public key",
        );
    }
    let mut forward_claims = Vec::new();
    for (claim, h) in &p.forward_claims {
        let name = header_name(h, &format!("{at}.forward_claims.{claim}"), errs);
        forward_claims.push((claim.clone(), name));
    }

    let leeway = p.leeway.get();
    if leeway > MAX_LEEWAY {
        errs.push(
            format!("{at}.leeway"),
            format!(
                "at most {}s: clock skew, not token lifetime",
                MAX_LEEWAY.as_secs()
            ),
        );
    }
    if let Some(typ) = &p.typ
        && typ.trim().is_empty()
    {
        errs.push(format!("{at}.typ"), "must not be empty");
    }
    let keys = if let Some(secret) = &p.secret {
        // RFC 7518 §3.2: a key at least as long as the hash output.
        let need = algorithms
            .iter()
            .map(|a| match a {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            })
            .max()
            .unwrap_or(32);
        if secret.expose().len() < need {
            errs.push(
                format!("{at}.secret"),
                format!("use at least {need} bytes for this HMAC secret (RFC 7518 §3.2)"),
            );
        }
        Some(KeySource::Static(Arc::new(KeySet {
            keys: vec![keys::from_secret(secret.expose().as_bytes())],
        })))
    } else if let Some(pem) = &p.pem {
        let path = base_dir.join(pem);
        match std::fs::read(&path) {
            Ok(bytes) => match keys::from_pem(&bytes, &algorithms) {
                Ok(k) => Some(KeySource::Static(Arc::new(KeySet { keys: vec![k] }))),
                Err(e) => {
                    errs.push(format!("{at}.pem"), format!("{}: {e}", path.display()));
                    None
                }
            },
            Err(e) => {
                errs.push(
                    format!("{at}.pem"),
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    } else if let Some(jwks) = &p.jwks {
        jwks_source(jwks, &format!("{at}.jwks"), base_dir, state, errs)
    } else {
        None
    };

    if errs.len() != before {
        return None;
    }
    Some(Provider {
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone(),
        algorithms,
        keys: keys?,
        leeway_secs: leeway.as_secs(),
        consumer_prefix: match &p.consumer_namespace {
            Some(ns) => format!("{}{ns}:", crate::identity::JWT_PREFIX),
            None => crate::identity::JWT_PREFIX.to_owned(),
        },
        typ: p.typ.as_deref().map(super::jwt::normalize_media_type),
        forward_claims,
        required_claims: p.required_claims.clone(),
        scope_claim: p.scope_claim.clone(),
        consumer_claim: p.consumer_claim.clone(),
    })
}

fn jwks_source(
    j: &JwksConfig,
    at: &str,
    base_dir: &Path,
    state: Option<&PolicyState>,
    errs: &mut ConfigErrors,
) -> Option<KeySource> {
    let set = [j.file.is_some(), j.url.is_some(), j.inline.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        errs.push(at.to_owned(), "set exactly one of file, url, inline");
        return None;
    }
    let parse = |v: &serde_json::Value, field: &str, errs: &mut ConfigErrors| {
        let mut skipped = Vec::new();
        match KeySet::from_jwks_json(v, &mut skipped) {
            Ok(set) if set.keys.is_empty() => {
                errs.push(
                    format!("{at}.{field}"),
                    format!("no usable key ({})", skipped.join("; ")),
                );
                None
            }
            Ok(set) => Some(KeySource::Static(Arc::new(set))),
            Err(e) => {
                errs.push(format!("{at}.{field}"), e);
                None
            }
        }
    };
    if let Some(file) = &j.file {
        let path = base_dir.join(file);
        let value = std::fs::read(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display()))
            });
        return match value {
            Ok(v) => parse(&v, "file", errs),
            Err(e) => {
                errs.push(format!("{at}.file"), e);
                None
            }
        };
    }
    if let Some(inline) = &j.inline {
        return parse(inline, "inline", errs);
    }
    let url = j.url.as_ref().map_or("", |u| u.expose());
    let ca = j.ca_file.as_ref().map(|f| base_dir.join(f));
    let target = match Target::new(url, ca.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            errs.push(format!("{at}.url"), e);
            return None;
        }
    };
    let refresh = j.refresh.get();
    let floor = j.min_refresh_interval.get();
    if refresh < Duration::from_secs(1) {
        errs.push(format!("{at}.refresh"), "must be at least 1s");
    }
    if floor > refresh {
        errs.push(
            format!("{at}.min_refresh_interval"),
            "must not exceed refresh",
        );
    }
    let timeout = j.timeout.get();
    Some(KeySource::Remote(match state {
        Some(s) => s.remote_jwks(url, target, refresh, floor, timeout),
        None => RemoteJwks::new(url.to_owned(), target, refresh, floor, timeout),
    }))
}

/// A route's `auth:` block, checked.
pub(crate) fn route_auth(
    cfg: &RouteAuthConfig,
    at: &str,
    auth: &Authenticator,
    errs: &mut ConfigErrors,
) -> RouteAuth {
    if cfg.any_of.is_empty() {
        errs.push(
            format!("{at}.any_of"),
            "list at least one of none, api_key, jwt",
        );
    }
    if cfg.any_of.contains(&AuthMethod::Jwt) && auth.providers.is_empty() {
        errs.push(
            format!("{at}.any_of"),
            "jwt needs at least one provider in auth.jwt",
        );
    }
    if cfg.any_of.contains(&AuthMethod::ApiKey) && auth.api_keys.is_empty() {
        errs.push(
            format!("{at}.any_of"),
            "api_key needs keys in auth.api_keys or auth.api_keys_file",
        );
    }
    if cfg.any_of.contains(&AuthMethod::None)
        && !(cfg.scopes.is_empty() && cfg.required_claims.is_empty())
    {
        errs.push(
            format!("{at}.scopes"),
            "a route admitting anonymous callers cannot require scopes or claims",
        );
    }
    RouteAuth {
        methods: cfg.any_of.clone(),
        scopes: cfg.scopes.clone(),
        required_claims: cfg.required_claims.clone(),
        forward_authorization: cfg.forward_authorization,
        forward_unused: cfg
            .forward_unused_credentials
            .unwrap_or(auth.forward_unused),
    }
}

pub(crate) fn header_name(s: &str, at: &str, errs: &mut ConfigErrors) -> HeaderName {
    match HeaderName::from_bytes(s.as_bytes()) {
        Ok(h) => h,
        Err(_) => {
            errs.push(at.to_owned(), format!("{s:?} is not a valid header name"));
            HeaderName::from_static("x-weir-invalid")
        }
    }
}
