//! API version selection.
//!
//! A request's version comes from the first of these that names one:
//! 1. a leading `/vN` path segment (when `versioning.path_prefix` is on); the
//!    route is then matched against the path without it;
//! 2. the configured headers in order (`Api-Version: 2`, `Accept-Version: v2`);
//! 3. a media type in `Accept` shaped like `versioning.media_type`
//!    (`application/vnd.weir.v2+json`), first match in header order;
//! 4. `versioning.default`.
//!
//! A value that names a version badly (`Api-Version: abc`, `Accept-Version:
//! 1.x`, `application/vnd.weir.vx+json`) is an error, answered with `400`:
//! falling back to the default would serve the client a version it did not
//! ask for, silently.

use http::header::{ACCEPT, HeaderMap, HeaderName};

use super::config::VersioningConfig;
use super::error::{RouteError, RouteErrorKind};

/// Where a request's version came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// A leading `/vN` path segment.
    Path,
    /// One of `versioning.headers`.
    Header,
    /// A versioned media type in `Accept`.
    MediaType,
    /// `versioning.default`.
    Default,
}

/// The compiled `versioning:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioning {
    default: u32,
    headers: Vec<HeaderName>,
    /// Media type split around `{n}`, lowercased.
    media: Option<(Box<str>, Box<str>)>,
    path_prefix: bool,
}

impl Default for Versioning {
    fn default() -> Self {
        let mut errors = Vec::new();
        Self::compile(&VersioningConfig::default(), &mut errors)
    }
}

impl Versioning {
    pub(crate) fn compile(cfg: &VersioningConfig, errors: &mut Vec<RouteError>) -> Self {
        if cfg.default == 0 {
            errors.push(RouteError::new(
                "versioning.default",
                RouteErrorKind::OutOfRange("versions start at 1"),
            ));
        }
        let mut headers = Vec::with_capacity(cfg.headers.len());
        for (i, h) in cfg.headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => headers.push(name),
                Err(e) => errors.push(RouteError::new(
                    format!("versioning.headers[{i}]"),
                    RouteErrorKind::BadHeaderName(h.clone(), e),
                )),
            }
        }
        let media = cfg.media_type.as_deref().and_then(|m| {
            let lower = m.to_ascii_lowercase();
            match lower.split_once("{n}") {
                Some((pre, suf))
                    if !suf.contains("{n}")
                        && !pre.is_empty()
                        && !lower.contains([',', ';', ' ']) =>
                {
                    Some((pre.into(), suf.into()))
                }
                _ => {
                    errors.push(RouteError::new(
                        "versioning.media_type",
                        RouteErrorKind::BadMediaType(m.to_owned()),
                    ));
                    None
                }
            }
        });
        Self {
            default: cfg.default.max(1),
            headers,
            media,
            path_prefix: cfg.path_prefix,
        }
    }

    /// Version of requests that name none.
    pub fn default_version(&self) -> u32 {
        self.default
    }

    /// Splits a leading `/vN` segment off `path`: `(N, "/vN", rest)`, where
    /// `rest` is `/` for a bare `/vN`.
    pub(crate) fn path_version<'p>(&self, path: &'p str) -> Option<(u32, &'p str, &'p str)> {
        if !self.path_prefix {
            return None;
        }
        let after = path.strip_prefix("/v")?;
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &after[digits..];
        if digits == 0 || !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let n = parse_number(&after[..digits])?;
        let segment = &path[..2 + digits];
        Some((n, segment, if rest.is_empty() { "/" } else { rest }))
    }

    /// The version named by headers or the media type, else the default.
    /// `Err` names the header whose value is not a version.
    pub(crate) fn header_version(
        &self,
        headers: &HeaderMap,
    ) -> Result<(u32, VersionSource), HeaderName> {
        for name in &self.headers {
            let mut values = headers.get_all(name).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    // Two versions named: neither can be picked silently.
                    return Err(name.clone());
                }
                let v = value.to_str().map_err(|_| name.clone())?.trim();
                let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
                return match parse_number(v) {
                    Some(n) => Ok((n, VersionSource::Header)),
                    None => Err(name.clone()),
                };
            }
        }
        if let Some((pre, suf)) = &self.media {
            for value in headers.get_all(ACCEPT) {
                let Ok(v) = value.to_str() else { continue };
                for range in v.split(',') {
                    let media = range.split(';').next().unwrap_or("").trim();
                    match media_version(media, pre, suf) {
                        Some(Some(n)) => return Ok((n, VersionSource::MediaType)),
                        Some(None) => return Err(ACCEPT),
                        None => {}
                    }
                }
            }
        }
        Ok((self.default, VersionSource::Default))
    }
}

/// When `media` is `pre` + something + `suf` (compared case-insensitively):
/// `Some(Some(N))` if the something is a version number, `Some(None)` if not.
/// `None` for other media types.
fn media_version(media: &str, pre: &str, suf: &str) -> Option<Option<u32>> {
    if media.len() < pre.len() + suf.len()
        || !media.is_char_boundary(pre.len())
        || !media.is_char_boundary(media.len() - suf.len())
    {
        return None;
    }
    let (head, rest) = media.split_at(pre.len());
    let (digits, tail) = rest.split_at(rest.len() - suf.len());
    if !head.eq_ignore_ascii_case(pre) || !tail.eq_ignore_ascii_case(suf) {
        return None;
    }
    Some(parse_number(digits))
}

/// A positive version number of at most 9 digits.
fn parse_number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn path_segment() {
        let v = Versioning::default();
        assert_eq!(
            v.path_version("/v2/products"),
            Some((2, "/v2", "/products"))
        );
        assert_eq!(v.path_version("/v12"), Some((12, "/v12", "/")));
        assert_eq!(v.path_version("/v3/"), Some((3, "/v3", "/")));
        assert_eq!(v.path_version("/v2x/products"), None);
        assert_eq!(v.path_version("/video"), None);
        assert_eq!(v.path_version("/v0/x"), None);
        assert_eq!(v.path_version("/products/v2"), None);
        let off = Versioning::compile(
            &VersioningConfig {
                path_prefix: false,
                ..VersioningConfig::default()
            },
            &mut Vec::new(),
        );
        assert_eq!(off.path_version("/v2/products"), None);
    }

    #[test]
    fn headers_in_configured_order_then_media_type_then_default() {
        let v = Versioning::default();
        assert_eq!(
            v.header_version(&headers(&[("accept-version", "3"), ("api-version", "2")])),
            Ok((2, VersionSource::Header))
        );
        assert_eq!(
            v.header_version(&headers(&[("accept-version", "v3")])),
            Ok((3, VersionSource::Header))
        );
        assert_eq!(
            v.header_version(&headers(&[(
                "accept",
                "text/html, Application/VND.weir.v5+JSON;q=0.9"
            )])),
            Ok((5, VersionSource::MediaType))
        );
        assert_eq!(
            v.header_version(&headers(&[("accept", "application/json, text/html")])),
            Ok((1, VersionSource::Default))
        );
        assert_eq!(
            v.header_version(&HeaderMap::new()),
            Ok((1, VersionSource::Default))
        );
    }

    #[test]
    fn values_that_name_no_version_are_errors_not_the_default() {
        let v = Versioning::default();
        for (name, value) in [
            ("api-version", "abc"),
            ("api-version", "latest"),
            ("api-version", ""),
            ("api-version", "0"),
            ("api-version", "2, 3"),
            ("accept-version", "1.x"),
            ("accept-version", "v"),
            ("accept", "application/vnd.weir.v+json"),
            ("accept", "text/html, application/vnd.weir.vx+json"),
        ] {
            assert_eq!(
                v.header_version(&headers(&[(name, value)])),
                Err(HeaderName::from_static(name)),
                "{name}: {value}"
            );
        }
        assert_eq!(
            v.header_version(&headers(&[("api-version", "2"), ("api-version", "3")])),
            Err(HeaderName::from_static("api-version"))
        );
        // The first configured header present decides; a bad one is not
        // skipped in favour of the next.
        assert_eq!(
            v.header_version(&headers(&[
                ("api-version", "latest"),
                ("accept-version", "4")
            ])),
            Err(HeaderName::from_static("api-version"))
        );
    }

    #[test]
    fn custom_media_type_and_default() {
        let v = Versioning::compile(
            &VersioningConfig {
                default: 3,
                headers: vec!["X-Api".into()],
                media_type: Some("application/x.shop-v{n}+json".into()),
                path_prefix: true,
            },
            &mut Vec::new(),
        );
        assert_eq!(
            v.header_version(&headers(&[("api-version", "2")])),
            Ok((3, VersionSource::Default))
        );
        assert_eq!(
            v.header_version(&headers(&[("x-api", "2")])),
            Ok((2, VersionSource::Header))
        );
        assert_eq!(
            v.header_version(&headers(&[("accept", "application/x.shop-v7+json")])),
            Ok((7, VersionSource::MediaType))
        );
        assert_eq!(
            v.header_version(&headers(&[("accept", "application/vnd.weir.v2+json")])),
            Ok((3, VersionSource::Default))
        );
    }

    #[test]
    fn bad_section_reports_fields() {
        let mut errors = Vec::new();
        Versioning::compile(
            &VersioningConfig {
                default: 0,
                headers: vec!["bad header".into()],
                media_type: Some("application/json".into()),
                path_prefix: true,
            },
            &mut errors,
        );
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "versioning.default",
                "versioning.headers[0]",
                "versioning.media_type"
            ]
        );
    }
}
