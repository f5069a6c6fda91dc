//! From raw config to [`RouteTable`]: validate every route, collect every
//! error with its field path, then index.

use std::collections::HashMap;
use std::time::Duration;

use http::Method;
use http::header::{HeaderName, HeaderValue};

use super::config::{GrpcMatchConfig, RouteConfig, VersioningConfig};
use super::deprecation::Deprecation;
use super::error::{RouteError, RouteErrorKind};
use super::matcher::{HeaderCondition, HeaderMatcher};
use super::pattern::{self, HostPattern, PathPattern};
use super::rewrite::Rewrite;
use super::route::Route;
use super::split::Upstreams;
use super::table::RouteTable;
use super::version::Versioning;

impl RouteTable {
    /// Validates `routes` and `versioning` and builds the indexed table.
    ///
    /// `upstream_exists` answers whether an upstream name is defined, so the
    /// table does not depend on how the gateway models upstreams. On failure
    /// every problem found is returned, each naming its field
    /// (`routes[3].match.path_template`), in config order.
    pub fn compile(
        routes: &[RouteConfig],
        versioning: &VersioningConfig,
        upstream_exists: &dyn Fn(&str) -> bool,
    ) -> Result<RouteTable, Vec<RouteError>> {
        let mut errors = Vec::new();
        let versioning = Versioning::compile(versioning, &mut errors);
        let mut names: HashMap<&str, usize> = HashMap::with_capacity(routes.len());
        let mut compiled = Vec::with_capacity(routes.len());
        for (i, cfg) in routes.iter().enumerate() {
            let field = format!("routes[{i}]");
            if cfg.name.is_empty() {
                errors.push(RouteError::new(
                    format!("{field}.name"),
                    RouteErrorKind::Empty,
                ));
            } else if let Some(first) = names.insert(&cfg.name, i) {
                names.insert(&cfg.name, first);
                errors.push(RouteError::new(
                    format!("{field}.name"),
                    RouteErrorKind::DuplicateName {
                        name: cfg.name.clone(),
                        first,
                    },
                ));
            }
            if let Some(route) = compile_route(i, cfg, &field, upstream_exists, &mut errors) {
                compiled.push(route);
            }
        }
        if errors.is_empty() {
            Ok(RouteTable::build(compiled, versioning))
        } else {
            Err(errors)
        }
    }
}

fn compile_route(
    index: usize,
    cfg: &RouteConfig,
    field: &str,
    upstream_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<RouteError>,
) -> Option<Route> {
    let before = errors.len();
    let m = &cfg.matches;
    let mfield = format!("{field}.match");

    let mut hosts = Vec::new();
    if m.host.is_some() && !m.hosts.is_empty() {
        errors.push(RouteError::new(
            &mfield,
            RouteErrorKind::Conflict("use either host or hosts, not both"),
        ));
    }
    let host_fields = m.host.iter().map(|h| (format!("{mfield}.host"), h)).chain(
        m.hosts
            .iter()
            .enumerate()
            .map(|(j, h)| (format!("{mfield}.hosts[{j}]"), h)),
    );
    for (f, h) in host_fields {
        match HostPattern::parse(h) {
            Ok(p) => hosts.push(p),
            Err(reason) => errors.push(RouteError::new(
                f,
                RouteErrorKind::BadHost {
                    pattern: h.clone(),
                    reason,
                },
            )),
        }
    }
    if hosts.is_empty() || hosts.contains(&HostPattern::Any) {
        hosts = vec![HostPattern::Any];
    }
    hosts.dedup();

    let paths = [
        (
            "path",
            &m.path,
            pattern::parse_exact as fn(&str) -> Result<PathPattern, String>,
        ),
        ("path_prefix", &m.path_prefix, pattern::parse_prefix),
        ("path_template", &m.path_template, pattern::parse_template),
    ];
    if paths.iter().filter(|(_, v, _)| v.is_some()).count() > 1 {
        errors.push(RouteError::new(
            &mfield,
            RouteErrorKind::Conflict("use only one of path, path_prefix and path_template"),
        ));
    }
    let mut path = PathPattern::Prefix("/".into());
    let grpc_path = m
        .grpc
        .as_ref()
        .and_then(|g| grpc_path(g, &format!("{mfield}.grpc"), errors));
    if m.grpc.as_ref().is_some_and(|g| g.service.is_some())
        && paths.iter().any(|(_, v, _)| v.is_some())
    {
        errors.push(RouteError::new(
            format!("{mfield}.grpc.service"),
            RouteErrorKind::Conflict(
                "a gRPC service is matched by its path; drop path, path_prefix and path_template",
            ),
        ));
    }
    if let Some(p) = grpc_path {
        path = p;
    }
    for (name, value, parse) in paths {
        if let Some(v) = value {
            match parse(v) {
                Ok(p) => path = p,
                Err(reason) => errors.push(RouteError::new(
                    format!("{mfield}.{name}"),
                    RouteErrorKind::BadPath {
                        path: v.clone(),
                        reason,
                    },
                )),
            }
        }
    }

    let mut methods: Vec<Method> = Vec::with_capacity(m.methods.len());
    for (j, raw) in m.methods.iter().enumerate() {
        match Method::from_bytes(raw.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !methods.contains(&method) => methods.push(method),
            Ok(_) => {}
            Err(e) => errors.push(RouteError::new(
                format!("{mfield}.methods[{j}]"),
                RouteErrorKind::BadMethod(raw.clone(), e),
            )),
        }
    }

    // gRPC calls are POSTs; a gRPC route with no method list takes only them.
    if m.grpc.is_some() && methods.is_empty() {
        methods.push(Method::POST);
    }

    let mut headers = Vec::with_capacity(m.headers.len() + 1);
    if m.grpc.is_some() {
        headers.push(HeaderMatcher::new(
            http::header::CONTENT_TYPE,
            HeaderCondition::Grpc,
        ));
    }
    for (j, h) in m.headers.iter().enumerate() {
        let hfield = format!("{mfield}.headers[{j}]");
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|e| {
                errors.push(RouteError::new(
                    format!("{hfield}.name"),
                    RouteErrorKind::BadHeaderName(h.name.clone(), e),
                ))
            })
            .ok();
        let condition = match (&h.value, h.present) {
            (Some(v), None) => HeaderValue::from_str(v)
                .map(HeaderCondition::Equals)
                .map_err(|e| {
                    errors.push(RouteError::new(
                        format!("{hfield}.value"),
                        RouteErrorKind::BadHeaderValue(v.clone(), e),
                    ))
                })
                .ok(),
            (None, Some(true)) => Some(HeaderCondition::Present),
            (None, Some(false)) => Some(HeaderCondition::Absent),
            _ => {
                errors.push(RouteError::new(
                    &hfield,
                    RouteErrorKind::Conflict("give exactly one of value and present"),
                ));
                None
            }
        };
        if let (Some(name), Some(condition)) = (name, condition) {
            headers.push(HeaderMatcher::new(name, condition));
        }
    }

    if cfg.version == Some(0) {
        errors.push(RouteError::new(
            format!("{field}.version"),
            RouteErrorKind::OutOfRange("versions start at 1"),
        ));
    }

    let upstreams = compile_upstreams(cfg, field, upstream_exists, errors);

    let timeout = cfg.timeout.map(|t| t.get());
    if timeout == Some(Duration::ZERO) {
        errors.push(RouteError::new(
            format!("{field}.timeout"),
            RouteErrorKind::OutOfRange("timeout must be more than 0"),
        ));
    }
    let max_body_bytes = cfg.limits.max_body_bytes.map(|b| b.get());

    let rewrite = Rewrite::compile(&cfg.rewrite, &path, &format!("{field}.rewrite"), errors);
    let deprecation = cfg
        .deprecated
        .as_ref()
        .and_then(|d| Deprecation::compile(d, &format!("{field}.deprecated"), errors));

    if errors.len() > before {
        return None;
    }
    Some(Route {
        index,
        name: cfg.name.as_str().into(),
        hosts,
        path,
        methods,
        headers,
        version: cfg.version,
        upstreams: upstreams?,
        timeout,
        max_body_bytes,
        rewrite,
        deprecation,
        config: cfg.clone(),
    })
}

/// The path a `match.grpc` names: `/service/method` exactly, every method of
/// `/service/`, or `None` (the route's own path conditions apply).
fn grpc_path(
    g: &GrpcMatchConfig,
    gfield: &str,
    errors: &mut Vec<RouteError>,
) -> Option<PathPattern> {
    // Names are protobuf identifiers joined by dots; anything that could
    // break out of one path segment is refused.
    let bad = |name: &str, dots: bool| {
        name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || (dots && c == '.'))
    };
    let mut ok = true;
    if let Some(service) = &g.service
        && bad(service, true)
    {
        errors.push(RouteError::new(
            format!("{gfield}.service"),
            RouteErrorKind::BadPath {
                path: service.clone(),
                reason: "a gRPC service is a dotted name such as pkg.v1.Service".into(),
            },
        ));
        ok = false;
    }
    if let Some(method) = &g.method
        && bad(method, false)
    {
        errors.push(RouteError::new(
            format!("{gfield}.method"),
            RouteErrorKind::BadPath {
                path: method.clone(),
                reason: "a gRPC method is a name such as GetProduct".into(),
            },
        ));
        ok = false;
    }
    match (&g.service, &g.method) {
        (None, Some(_)) => {
            errors.push(RouteError::new(
                format!("{gfield}.method"),
                RouteErrorKind::Conflict("a method needs its service"),
            ));
            None
        }
        _ if !ok => None,
        (Some(service), Some(method)) => pattern::parse_exact(&format!("/{service}/{method}")).ok(),
        (Some(service), None) => pattern::parse_prefix(&format!("/{service}")).ok(),
        (None, None) => None,
    }
}

fn compile_upstreams(
    cfg: &RouteConfig,
    field: &str,
    upstream_exists: &dyn Fn(&str) -> bool,
    errors: &mut Vec<RouteError>,
) -> Option<Upstreams> {
    let check = |name: &str, f: String, errors: &mut Vec<RouteError>| {
        if name.is_empty() {
            errors.push(RouteError::new(f, RouteErrorKind::Empty));
        } else if !upstream_exists(name) {
            errors.push(RouteError::new(
                f,
                RouteErrorKind::UnknownUpstream(name.to_owned()),
            ));
        }
    };
    match (&cfg.upstream, cfg.split.is_empty()) {
        (Some(name), true) => {
            check(name, format!("{field}.upstream"), errors);
            Some(Upstreams::single(name))
        }
        (None, false) => {
            for (j, s) in cfg.split.iter().enumerate() {
                check(&s.upstream, format!("{field}.split[{j}].upstream"), errors);
                if cfg.split[..j].iter().any(|o| o.upstream == s.upstream) {
                    errors.push(RouteError::new(
                        format!("{field}.split[{j}].upstream"),
                        RouteErrorKind::Conflict("upstream listed twice in split"),
                    ));
                }
            }
            let weighted =
                Upstreams::weighted(cfg.split.iter().map(|s| (s.upstream.as_str(), s.weight)));
            if weighted.is_none() {
                errors.push(RouteError::new(
                    format!("{field}.split"),
                    RouteErrorKind::ZeroWeights,
                ));
            }
            weighted
        }
        (Some(_), false) => {
            errors.push(RouteError::new(
                field,
                RouteErrorKind::Conflict("use either upstream or split, not both"),
            ));
            None
        }
        (None, true) => {
            errors.push(RouteError::new(
                field,
                RouteErrorKind::Conflict("needs an upstream or a split"),
            ));
            None
        }
    }
}
