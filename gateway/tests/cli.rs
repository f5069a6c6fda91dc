//! `gateway validate` (and `gateway run` on a bad file or identity files it
//! cannot load): exit status and error messages that name the field, run as
//! the built binary.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::TempDir;

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(args)
        .output()
        .expect("run the gateway binary")
}

fn validate(path: &Path) -> (bool, String) {
    let out = gateway(&["validate", "--config", path.to_str().expect("utf-8 path")]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const VALID: &str = "\
listeners:
  - name: public
    address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
upstreams:
  svc: { endpoints: [127.0.0.1:9] }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: svc
";

/// Validates `VALID` with `from` replaced by `to`; expects failure naming each of `wanted`.
fn rejects(from: &str, to: &str, wanted: &[&str]) -> String {
    assert!(
        VALID.contains(from),
        "test setup: {from:?} not in the base config"
    );
    let dir = TempDir::new();
    let path = dir.write("gateway.yaml", &VALID.replacen(from, to, 1));
    let (ok, text) = validate(&path);
    assert!(!ok, "accepted:\n{}", VALID.replacen(from, to, 1));
    for w in wanted {
        assert!(text.contains(w), "{w:?} missing from:\n{text}");
    }
    text
}

#[test]
fn accepts_valid_files_including_the_shipped_example() {
    let dir = TempDir::new();
    let (ok, text) = validate(&dir.write("gateway.yaml", VALID));
    assert!(ok, "{text}");
    assert!(text.contains("valid"), "{text}");

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gateway.yaml");
    let (ok, text) = validate(&example);
    assert!(ok, "config/gateway.yaml: {text}");
}

#[test]
fn unknown_field_names_path_and_line() {
    rejects(
        "    address: 127.0.0.1:0\nadmin",
        "    address: 127.0.0.1:0\n    colour: red\nadmin",
        &["listeners[0].colour", "line 4", "colour"],
    );
}

#[test]
fn bad_duration_names_the_field() {
    rejects(
        "routes:\n",
        "limits: { idle_timeout: soon }\nroutes:\n",
        &["limits.idle_timeout", "line 8", "soon"],
    );
}

#[test]
fn duplicate_route_name_and_missing_upstream_are_reported_together() {
    let text = rejects(
        "    upstream: svc\n",
        "    upstream: svc\n  - name: r\n    match: { path: /x }\n    upstream: nowhere\n",
        &[
            "routes[1].name",
            "duplicate",
            "routes[1].upstream",
            "nowhere",
        ],
    );
    assert!(
        text.lines().filter(|l| l.contains("routes[1]")).count() >= 2,
        "{text}"
    );
}

#[test]
fn missing_upstream_names_the_route_field() {
    rejects(
        "    upstream: svc\n",
        "    upstream: catalog\n",
        &["routes[0].upstream", "catalog"],
    );
}

#[test]
fn unreadable_certificate_names_the_listener() {
    rejects(
        "    address: 127.0.0.1:0\nadmin",
        "    address: 127.0.0.1:0\n    tls:\n      certificates:\n        - { cert: /nonexistent/weir.crt, key: /nonexistent/weir.key }\nadmin",
        &["listeners[0].tls.certificates[0]", "/nonexistent/weir.crt"],
    );
}

#[test]
fn run_refuses_an_invalid_file() {
    let dir = TempDir::new();
    let path = dir.write(
        "gateway.yaml",
        &VALID.replace("upstream: svc", "upstream: missing"),
    );
    let out = gateway(&["run", "--config", path.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("routes[0].upstream"), "{stderr}");
}

#[test]
fn identity_problems_name_the_field() {
    rejects(
        "upstreams:\n  svc: { endpoints: [127.0.0.1:9] }",
        "upstreams:\n  svc: { endpoints: [127.0.0.1:9], tls: {} }",
        &["upstreams.svc.tls", "identity:"],
    );
    rejects(
        "upstreams:",
        "identity:\n  issuer: { url: \"http://localhost:1\", trust_anchor: a.crt, token_file: t }\nupstreams:",
        &["identity.issuer.url"],
    );
}

#[test]
fn run_refuses_identity_files_it_cannot_load() {
    let dir = TempDir::new();
    let path = dir.write(
        "gateway.yaml",
        &VALID.replace(
            "upstreams:",
            "identity:\n  files: { cert: tls/tls.crt, key: tls/tls.key, ca: tls/ca.crt }\nupstreams:",
        ),
    );
    let out = gateway(&["run", "--config", path.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("identity.files") && stderr.contains("tls.crt"),
        "{stderr}"
    );
}
