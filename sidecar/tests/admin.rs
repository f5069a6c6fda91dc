//! The sidecar's admin listener over real sockets: `/config`, `/state`,
//! `/metrics` and error messages never show a secret; only requests naming
//! the listener itself in `Host` are served; a bearer token from the
//! environment guards `POST /reload`; and a reload that changes what is set
//! up once at start (telemetry, the drain time, admin access) says it needs
//! a restart instead of "reloaded" (listener addresses are refused outright).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use proxy_core::shutdown;
use sidecar::{Sidecar, SidecarConfig};
use support::*;

const HEADER_SECRET: &str = "collector-key-5e1f0a";
const ENV_HEADER_SECRET: &str = "env-collector-key-77c3";
const ADMIN_TOKEN: &str = "sidecar-admin-token-3141592653";

fn env(k: &str) -> Option<String> {
    match k {
        "OTEL_EXPORTER_OTLP_HEADERS" => Some(format!("authorization=Bearer%20{ENV_HEADER_SECRET}")),
        "WEIR_ADMIN_TOKEN" => Some(ADMIN_TOKEN.to_owned()),
        _ => None,
    }
}

/// The support config plus a collector whose headers are secrets.
fn yaml(app: SocketAddr, up: SocketAddr, drain: &str, access_log: &str) -> String {
    config(app, &[up], "").replace("drain: 5s", &format!("drain: {drain}"))
        + &format!(
            "telemetry:\n  access_log: {access_log}\n  otlp: {{ endpoint: 'http://127.0.0.1:1', headers: {{ x-api-key: {HEADER_SECRET} }} }}\n"
        )
}

fn assert_clean(what: &str, text: &str) {
    for secret in [HEADER_SECRET, ENV_HEADER_SECRET, ADMIN_TOKEN] {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[tokio::test]
async fn admin_redacts_checks_host_and_token_and_names_restart_fields() {
    let app = Upstream::start().await;
    let up = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("weir-sidecar-admin-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, yaml(app.addr, up.addr, "5s", "json")).unwrap();

    // The validated config, as `{:?}` would print it in a log or a panic.
    let cfg = SidecarConfig::load(&path, &env).unwrap();
    assert_eq!(
        cfg.telemetry.exporter.as_ref().unwrap().headers.len(),
        2,
        "both headers reach the exporter"
    );
    assert_clean("Debug", &format!("{cfg:?}"));

    let sc = Sidecar::bind_file(&path, Arc::new(env)).await.unwrap();
    let admin = sc.admin_addr();
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(sc.serve(signal));
    let c = client();
    let own = admin.to_string();

    for p in ["/config", "/state", "/metrics"] {
        let r = send(&c, admin, "GET", &own, p, "").await;
        assert_eq!(r.status, 200, "{p}");
        assert_clean(p, &r.body);
    }
    let doc = send(&c, admin, "GET", &own, "/config", "").await.json();
    assert_eq!(
        doc["telemetry"]["otlp"]["headers"]["x-api-key"],
        "<redacted>"
    );

    // DNS rebinding: a foreign name is refused on every endpoint.
    for p in ["/config", "/state", "/healthz"] {
        let r = send(
            &c,
            admin,
            "GET",
            &format!("evil.example:{}", admin.port()),
            p,
            "",
        )
        .await;
        assert_eq!(r.status, 421, "{p}: {}", r.body);
    }

    // The token from WEIR_ADMIN_TOKEN guards POST /reload.
    let reload = |auth: Option<&str>| {
        let c = c.clone();
        let own = own.clone();
        let auth = auth.map(str::to_owned);
        async move {
            let mut req = http::Request::post(format!("http://{own}/reload"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = c
                .request(
                    req.body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = resp.status();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(reload(None).await.0, 401);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let (status, body) = reload(Some(&bearer)).await;
    assert_eq!(
        (status.as_u16(), body.contains("\"reloaded\"")),
        (200, true),
        "{body}"
    );

    // Telemetry and the drain time are set up once: the answer says so.
    std::fs::write(&path, yaml(app.addr, up.addr, "7s", "off")).unwrap();
    let (status, body) = reload(Some(&bearer)).await;
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["status"], "restart-required", "{answer}");
    assert_eq!(
        answer["restart_required"],
        serde_json::json!(["telemetry.access_log", "shutdown.drain"])
    );

    // A bad header list in the environment is reported without its value.
    let bad_env =
        |k: &str| (k == "OTEL_EXPORTER_OTLP_HEADERS").then(|| format!("x-key={HEADER_SECRET}%zz"));
    let err = SidecarConfig::load(&path, &bad_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
    assert_clean("config error", &err);

    trigger.trigger();
    tokio::time::timeout(std::time::Duration::from_secs(30), task)
        .await
        .expect("sidecar stops")
        .expect("serve task")
        .expect("serve");
    std::fs::remove_dir_all(dir).ok();
}
