//! Compile errors: every problem at once, each with its field path.

use serde_json::json;

use super::configs;
use crate::routing::{RouteConfig, RouteErrorKind, RouteErrors, RouteTable, VersioningConfig};

fn errors(routes: serde_json::Value, versioning: VersioningConfig) -> Vec<(String, String)> {
    match RouteTable::compile(&configs(routes), &versioning, &|name| name != "missing") {
        Ok(_) => panic!("expected errors"),
        Err(errors) => errors
            .into_iter()
            .map(|e| (e.field.clone(), e.to_string()))
            .collect(),
    }
}

fn fields(routes: serde_json::Value) -> Vec<String> {
    errors(routes, VersioningConfig::default())
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

#[test]
fn every_error_is_reported_with_its_field_path() {
    let got = fields(json!([
        {"name": "ok", "upstream": "u"},
        {"name": "ok", "upstream": "missing"},
        {"name": "", "match": {"path_template": "/p/{id}/x{y}"}, "upstream": "u"},
        {"name": "split", "split": [{"upstream": "a", "weight": 0}, {"upstream": "missing", "weight": 0}]},
        {"name": "hdr", "match": {"headers": [{"name": "bad name", "value": "x"}, {"name": "x-a"}], "methods": ["GE T"]}, "upstream": "u"},
        {"name": "times", "upstream": "u", "timeout": "0s",
         "deprecated": {"sunset": "30/06/2027"}},
        {"name": "hosts", "match": {"hosts": ["ok.test", "*", "a.*.test", "h:80"], "path": "x"}, "upstream": "u"},
        {"name": "both", "upstream": "u", "split": [{"upstream": "u", "weight": 1}], "version": 0},
        {"name": "rw", "match": {"path_template": "/a/{id}"}, "upstream": "u",
         "rewrite": {"path": "/b/{nope}", "request_headers": {"set": {"x-ok": "bad\nvalue"}}}},
    ]));
    assert_eq!(
        got,
        [
            "routes[1].name",
            "routes[1].upstream",
            "routes[2].name",
            "routes[2].match.path_template",
            "routes[3].split[1].upstream",
            "routes[3].split",
            "routes[4].match.methods[0]",
            "routes[4].match.headers[0].name",
            "routes[4].match.headers[1]",
            "routes[5].timeout",
            "routes[5].deprecated.sunset",
            "routes[6].match.hosts[2]",
            "routes[6].match.hosts[3]",
            "routes[6].match.path",
            "routes[7].version",
            "routes[7]",
            "routes[8].rewrite.path",
            "routes[8].rewrite.request_headers.set.x-ok",
        ]
    );
}

#[test]
fn messages_say_what_is_wrong() {
    let got = errors(
        json!([
            {"name": "a", "upstream": "u"},
            {"name": "a", "upstream": "missing"},
            {"name": "s", "split": [{"upstream": "u", "weight": 0}]},
        ]),
        VersioningConfig::default(),
    );
    assert_eq!(
        got[0].1,
        "routes[1].name: duplicate route name \"a\" (first used by routes[0])"
    );
    assert_eq!(got[1].1, "routes[1].upstream: unknown upstream \"missing\"");
    assert_eq!(
        got[2].1,
        "routes[2].split: split weights must add up to more than 0"
    );
}

#[test]
fn conflicting_match_and_upstream_fields() {
    let got = fields(json!([
        {"name": "a", "match": {"path": "/a", "path_prefix": "/a"}, "upstream": "u"},
        {"name": "b", "match": {"host": "a.test", "hosts": ["b.test"]}},
        {"name": "c", "upstream": "u", "rewrite": {"strip_prefix": "/a", "replace_prefix": {"from": "/a", "to": "/b"}}},
        {"name": "d", "upstream": "u", "rewrite": {"strip_prefix": "a"}},
        {"name": "e", "split": [{"upstream": "u", "weight": 1}, {"upstream": "u", "weight": 1}]},
    ]));
    assert_eq!(
        got,
        [
            "routes[0].match",
            "routes[1].match",
            "routes[1]",
            "routes[2].rewrite",
            "routes[3].rewrite.strip_prefix",
            "routes[4].split[1].upstream",
        ]
    );
}

#[test]
fn bad_templates() {
    for (template, why) in [
        ("/a/{id}/{id}", "appears twice"),
        ("/a/{}", "parameter name"),
        ("/a/{1x}", "parameter name"),
        ("/a/{id", "whole segment"),
        ("/a//{id}", "empty segment"),
        ("a/{id}", "start with '/'"),
    ] {
        let got = errors(
            json!([{"name": "t", "match": {"path_template": template}, "upstream": "u"}]),
            VersioningConfig::default(),
        );
        assert_eq!(got.len(), 1, "{template}: {got:?}");
        assert_eq!(got[0].0, "routes[0].match.path_template");
        assert!(got[0].1.contains(why), "{template}: {}", got[0].1);
    }
    let many = format!(
        "/{}",
        (0..17)
            .map(|i| format!("{{p{i}}}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let got = errors(
        json!([{"name": "t", "match": {"path_template": many}, "upstream": "u"}]),
        VersioningConfig::default(),
    );
    assert!(got[0].1.contains("more than 16"));
}

#[test]
fn versioning_errors_come_first() {
    let got = errors(
        json!([{"name": "x", "upstream": "missing"}]),
        VersioningConfig {
            media_type: Some("application/json".into()),
            ..VersioningConfig::default()
        },
    );
    let fields: Vec<_> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["versioning.media_type", "routes[0].upstream"]);
}

#[test]
fn unknown_fields_are_rejected_by_the_raw_config() {
    let err = serde_json::from_value::<RouteConfig>(json!({
        "name": "r", "upstream": "u", "match": {"headers": [{"name": "a", "regex": ".*"}]}
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `regex`"), "{err}");
    let err = serde_json::from_value::<VersioningConfig>(json!({"defualt": 2})).unwrap_err();
    assert!(err.to_string().contains("unknown field `defualt`"), "{err}");
    // Durations and sizes are typed: a bad one fails the parse, naming the value.
    let err = serde_json::from_value::<RouteConfig>(
        json!({"name": "r", "upstream": "u", "timeout": "soon"}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("invalid duration \"soon\""),
        "{err}"
    );
    let err = serde_json::from_value::<RouteConfig>(
        json!({"name": "r", "upstream": "u", "limits": {"max_body_bytes": "lots"}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("invalid size"), "{err}");
    let err = serde_json::from_value::<RouteConfig>(
        json!({"name": "r", "upstream": "u", "timeout": "5"}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("time unit needed"), "{err}");
}

#[test]
fn error_list_renders_one_per_line_and_keeps_causes() {
    let Err(errs) = RouteTable::compile(
        &configs(
            json!([{"name": "x", "upstream": "u", "timeout": "0ms", "match": {"methods": ["G(T"]}}]),
        ),
        &VersioningConfig::default(),
        &|_| true,
    ) else {
        panic!("expected errors")
    };
    let text = RouteErrors(&errs).to_string();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(matches!(errs[0].kind, RouteErrorKind::BadMethod(..)));
    assert!(std::error::Error::source(&errs[0].kind).is_some());
    assert_eq!(errs[1].field, "routes[0].timeout");
}
