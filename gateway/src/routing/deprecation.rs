//! Deprecation and sunset of a route: response headers and `410 Gone`.
//!
//! - `Deprecation` (RFC 9745) is a structured-field Date, `@<unix seconds>`.
//!   It carries `deprecated.since`; a route marked deprecated without a date
//!   sends `@0` (the Unix epoch), which RFC 9745 clients read as "deprecated,
//!   at a date in the past" — the honest statement when no date was given.
//! - `Sunset` (RFC 8594) is an HTTP-date, sent when `deprecated.sunset` is set.
//!   From that instant on, lookups return [`RouteMatch::Gone`](super::RouteMatch::Gone).
//! - `Link: <url>; rel="deprecation"` (RFC 9745 §3) points at the migration
//!   document when `deprecated.link` is set.
//!
//! All header values are rendered once, at compile time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue, LINK};

use super::config::DeprecationConfig;
use super::error::{RouteError, RouteErrorKind};

/// `Deprecation` response header (RFC 9745).
pub const DEPRECATION: HeaderName = HeaderName::from_static("deprecation");
/// `Sunset` response header (RFC 8594).
pub const SUNSET: HeaderName = HeaderName::from_static("sunset");

/// A compiled `deprecated:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprecation {
    since: Option<SystemTime>,
    sunset: Option<SystemTime>,
    link: Option<Box<str>>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Deprecation {
    pub(crate) fn compile(
        cfg: &DeprecationConfig,
        field: &str,
        errors: &mut Vec<RouteError>,
    ) -> Option<Self> {
        let before = errors.len();
        let since = cfg
            .since
            .as_deref()
            .and_then(|s| parse_date(s, &format!("{field}.since"), errors));
        let sunset = cfg
            .sunset
            .as_deref()
            .and_then(|s| parse_date(s, &format!("{field}.sunset"), errors));
        if let (Some(d), Some(s)) = (since, sunset)
            && d > s
        {
            errors.push(RouteError::new(
                format!("{field}.since"),
                RouteErrorKind::OutOfRange("deprecation date is after the sunset date"),
            ));
        }
        let link = cfg.link.as_deref().and_then(|l| {
            let ok = (l.starts_with("https://") || l.starts_with("http://"))
                && !l.contains(['<', '>', ' ', '"'])
                && HeaderValue::from_str(l).is_ok();
            if !ok {
                errors.push(RouteError::new(
                    format!("{field}.link"),
                    RouteErrorKind::BadLink(l.to_owned()),
                ));
            }
            ok.then(|| l.into())
        });
        if errors.len() > before {
            return None;
        }
        let mut headers = Vec::with_capacity(3);
        let secs = since.map_or(0, |t| {
            t.duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs()
        });
        headers.push((DEPRECATION, value(&format!("@{secs}"))));
        if let Some(s) = sunset {
            headers.push((SUNSET, value(&httpdate::fmt_http_date(s))));
        }
        if let Some(l) = &link {
            headers.push((LINK, value(&format!("<{l}>; rel=\"deprecation\""))));
        }
        Some(Self {
            since,
            sunset,
            link,
            headers,
        })
    }

    /// When the route was (or will be) deprecated, if configured.
    pub fn since(&self) -> Option<SystemTime> {
        self.since
    }

    /// When the route stops serving, if configured.
    pub fn sunset(&self) -> Option<SystemTime> {
        self.sunset
    }

    /// Migration document.
    pub fn link(&self) -> Option<&str> {
        self.link.as_deref()
    }

    /// Whether the sunset has passed at `now`.
    pub fn is_gone(&self, now: SystemTime) -> bool {
        self.sunset.is_some_and(|s| now >= s)
    }

    /// Adds `Deprecation`, `Sunset` and `Link` to a response (on success and on `410`).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if name == LINK {
                headers.append(name.clone(), value.clone());
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// Renders a value that is ASCII by construction (digits, HTTP-dates, checked links).
fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Parses RFC 3339 UTC (`2027-06-30T00:00:00Z`) or a plain date (`2027-06-30`, midnight UTC).
fn parse_date(s: &str, field: &str, errors: &mut Vec<RouteError>) -> Option<SystemTime> {
    let full;
    let text = if s.len() == 10 {
        full = format!("{s}T00:00:00Z");
        &full
    } else {
        s
    };
    match humantime::parse_rfc3339(text) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(RouteError::new(
                field,
                RouteErrorKind::BadDate(s.to_owned(), e),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(since: Option<&str>, sunset: Option<&str>, link: Option<&str>) -> DeprecationConfig {
        DeprecationConfig {
            since: since.map(Into::into),
            sunset: sunset.map(Into::into),
            link: link.map(Into::into),
        }
    }

    #[test]
    fn headers_follow_rfc_9745_and_8594() {
        let mut errors = Vec::new();
        let d = Deprecation::compile(
            &cfg(
                Some("2026-01-01T00:00:00Z"),
                Some("2027-06-30"),
                Some("https://docs.example.com/migrate"),
            ),
            "routes[0].deprecated",
            &mut errors,
        )
        .unwrap();
        let mut h = HeaderMap::new();
        d.apply(&mut h);
        assert_eq!(h["deprecation"], "@1767225600");
        assert_eq!(h["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
        assert_eq!(
            h["link"],
            "<https://docs.example.com/migrate>; rel=\"deprecation\""
        );
    }

    #[test]
    fn without_date_deprecation_is_epoch_and_no_sunset() {
        let mut errors = Vec::new();
        let d = Deprecation::compile(&cfg(None, None, None), "f", &mut errors).unwrap();
        let mut h = HeaderMap::new();
        d.apply(&mut h);
        assert_eq!(h["deprecation"], "@0");
        assert!(!h.contains_key("sunset") && !h.contains_key("link"));
        assert!(!d.is_gone(SystemTime::now() + Duration::from_secs(1 << 40)));
    }

    #[test]
    fn gone_from_the_sunset_instant() {
        let mut errors = Vec::new();
        let d = Deprecation::compile(
            &cfg(None, Some("2027-06-30T00:00:00Z"), None),
            "f",
            &mut errors,
        )
        .unwrap();
        let sunset = d.sunset().unwrap();
        assert!(!d.is_gone(sunset - Duration::from_secs(1)));
        assert!(d.is_gone(sunset));
    }

    #[test]
    fn bad_values_name_their_fields() {
        let mut errors = Vec::new();
        let d = Deprecation::compile(
            &cfg(Some("2028-01-01"), Some("2027-06-30"), Some("javascript:x")),
            "routes[2].deprecated",
            &mut errors,
        );
        assert!(d.is_none());
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["routes[2].deprecated.since", "routes[2].deprecated.link"]
        );

        let mut errors = Vec::new();
        Deprecation::compile(&cfg(None, Some("next tuesday"), None), "r", &mut errors);
        assert_eq!(errors[0].field, "r.sunset");
        assert!(errors[0].to_string().contains("RFC 3339"));
    }
}
