//! Per-route CORS. Preflights are answered here, never reaching the upstream;
//! actual cross-origin requests get the response headers that let the browser
//! read the answer.

use std::time::Duration;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method};

use crate::config::{ConfigErrors, CorsConfig};

/// A route's CORS rules, validated.
#[derive(Clone, Debug)]
pub(crate) struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    methods_value: HeaderValue,
    any_header: bool,
    headers: Vec<String>,
    expose: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<Duration>,
}

/// What CORS says about one request.
pub(crate) enum CorsVerdict {
    /// Not a cross-origin request (no `Origin`), or an origin we do not allow
    /// on an actual request: no CORS headers, the browser will block reading.
    None,
    /// An allowed actual request: add these to the response.
    Actual(HeaderMap),
    /// A preflight to answer now with 204 and these headers.
    Preflight(HeaderMap),
    /// A preflight we refuse, with the reason.
    Refused(&'static str),
}

impl Cors {
    pub(crate) fn compile(c: &CorsConfig, at: &str, errs: &mut ConfigErrors) -> Self {
        let any_origin = c.allow_origins.iter().any(|o| o == "*");
        if c.allow_origins.is_empty() {
            errs.push(
                format!("{at}.allow_origins"),
                "list at least one origin (or \"*\")",
            );
        }
        if any_origin && c.allow_credentials {
            errs.push(
                format!("{at}.allow_credentials"),
                "browsers refuse credentials with origin \"*\"; list the origins",
            );
        }
        let mut methods = Vec::new();
        for (i, m) in c.allow_methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => errs.push(
                    format!("{at}.allow_methods[{i}]"),
                    format!("{m:?} is not a method"),
                ),
            }
        }
        let joined = methods
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let any_header = c.allow_headers.iter().any(|h| h == "*");
        if any_header && c.allow_credentials {
            errs.push(
                format!("{at}.allow_headers"),
                "\"*\" is not honoured with credentials; list the headers",
            );
        }
        let expose = (!c.expose_headers.is_empty())
            .then(|| HeaderValue::from_str(&c.expose_headers.join(", ")))
            .and_then(|r| {
                r.map_err(|_| errs.push(format!("{at}.expose_headers"), "invalid header names"))
                    .ok()
            });
        Self {
            any_origin,
            origins: c
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
            methods,
            methods_value: HeaderValue::from_str(&joined)
                .unwrap_or(HeaderValue::from_static("GET")),
            any_header,
            headers: c
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose,
            credentials: c.allow_credentials,
            max_age: c.max_age.map(|d| d.get()),
        }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o == origin)
    }

    fn common(&self, origin: &HeaderValue, out: &mut HeaderMap) {
        if self.any_origin {
            out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            out.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            out.append(VARY, HeaderValue::from_static("Origin"));
        }
        if self.credentials {
            out.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    pub(crate) fn evaluate(&self, parts: &Parts) -> CorsVerdict {
        let Some(origin) = parts.headers.get(ORIGIN) else {
            return CorsVerdict::None;
        };
        let allowed = origin.to_str().is_ok_and(|o| self.origin_allowed(o));
        let preflight = parts.method == Method::OPTIONS
            && parts.headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            if !allowed {
                return CorsVerdict::None;
            }
            let mut out = HeaderMap::new();
            self.common(origin, &mut out);
            if let Some(e) = &self.expose {
                out.insert(ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
            }
            return CorsVerdict::Actual(out);
        }
        if !allowed {
            return CorsVerdict::Refused("origin not allowed");
        }
        let method_ok = parts
            .headers
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .is_some_and(|m| self.methods.contains(&m));
        if !method_ok {
            return CorsVerdict::Refused("method not allowed");
        }
        let requested = parts.headers.get(ACCESS_CONTROL_REQUEST_HEADERS);
        if let Some(req) = requested {
            let ok = self.any_header
                || req.to_str().is_ok_and(|s| {
                    s.split(',')
                        .map(|h| h.trim().to_ascii_lowercase())
                        .filter(|h| !h.is_empty())
                        .all(|h| self.headers.contains(&h))
                });
            if !ok {
                return CorsVerdict::Refused("header not allowed");
            }
        }
        let mut out = HeaderMap::new();
        self.common(origin, &mut out);
        out.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods_value.clone());
        if let Some(req) = requested {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, req.clone());
        }
        if let Some(age) = self.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age.as_secs()));
        }
        out.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Method"),
        );
        out.append(
            VARY,
            HeaderValue::from_static("Access-Control-Request-Headers"),
        );
        CorsVerdict::Preflight(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(yaml: &str) -> Cors {
        let c: CorsConfig = serde_json::from_str(yaml).unwrap();
        let mut errs = ConfigErrors::new();
        let cors = Cors::compile(&c, "cors", &mut errs);
        assert!(errs.is_empty(), "{errs}");
        cors
    }

    fn req(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/x");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn preflight_and_actual() {
        let c = cors(
            r#"{"allow_origins":["https://app.example"],"allow_methods":["GET","PUT"],"allow_headers":["content-type"],"allow_credentials":true,"max_age":"10m"}"#,
        );
        let ok = req(
            "OPTIONS",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "Content-Type"),
            ],
        );
        let CorsVerdict::Preflight(h) = c.evaluate(&ok) else {
            panic!("not a preflight answer")
        };
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, PUT");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let bad_origin = req(
            "OPTIONS",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert!(matches!(c.evaluate(&bad_origin), CorsVerdict::Refused(_)));
        let bad_method = req(
            "OPTIONS",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        assert!(matches!(c.evaluate(&bad_method), CorsVerdict::Refused(_)));
        let bad_header = req(
            "OPTIONS",
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-secret"),
            ],
        );
        assert!(matches!(c.evaluate(&bad_header), CorsVerdict::Refused(_)));
        let actual = req("GET", &[("origin", "https://app.example")]);
        assert!(matches!(c.evaluate(&actual), CorsVerdict::Actual(_)));
        assert!(matches!(c.evaluate(&req("GET", &[])), CorsVerdict::None));
        assert!(matches!(
            c.evaluate(&req("GET", &[("origin", "https://evil.example")])),
            CorsVerdict::None
        ));
    }

    #[test]
    fn wildcard_with_credentials_is_an_error() {
        let c: CorsConfig =
            serde_json::from_str(r#"{"allow_origins":["*"],"allow_credentials":true}"#).unwrap();
        let mut errs = ConfigErrors::new();
        Cors::compile(&c, "routes[0].cors", &mut errs);
        assert_eq!(
            errs.iter().next().unwrap().path,
            "routes[0].cors.allow_credentials"
        );
    }
}
