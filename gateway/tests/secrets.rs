//! Secrets never leave the process: a gateway configured with every kind of
//! secret it knows (API-key hashes inline and from a file, an HMAC secret, a
//! Redis password in its URL, an OTLP header, a TLS private key, the admin
//! token) is asked for `/config` and `/metrics` over HTTP, refuses a bad
//! reload, answers requests with problem documents, and logs; none of those
//! texts, nor the `Debug` form of its config, contains any secret.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::Request;
use rcgen::{CertificateParams, KeyPair};
use support::*;
use tracing_subscriber::fmt::MakeWriter;

const KEY_HASH: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
const FILE_KEY_HASH: &str = "cafebabecafebabecafebabecafebabecafebabecafebabecafebabecafebabe";
const HMAC: &str = "hmac-secret-that-is-long-enough-0123456789";
const REDIS_PASS: &str = "redis-pass-7f3a9c";
const OTLP_HEADER: &str = "otlp-header-secret-41d2";
const ADMIN_TOKEN: &str = "admin-token-secret-9b8e7d6c";
const JWKS_PASS: &str = "jwks-pass-5e1c";
const JWKS_SIG: &str = "jwks-sig-0a9d";

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// The config; `bad` adds mistakes next to the secrets, so validation has
/// every reason to talk about them.
fn yaml(up: &Upstream, bad: bool) -> String {
    let (alg, replicas, sha) = if bad {
        ("RS256", 0, "zz-not-hex-deadbeefdeadbeef")
    } else {
        ("HS256", 1, KEY_HASH)
    };
    format!(
        r#"listeners:
  - name: public
    address: 127.0.0.1:0
  - name: secure
    address: 127.0.0.1:0
    tls: {{ certificates: [{{ cert: tls.crt, key: tls.key }}] }}
admin:
  address: 127.0.0.1:0
  token_file: admin-token
upstreams:
  svc: {{ endpoints: [{up}] }}
routes:
  - name: keyed
    match: {{ path_prefix: /keyed }}
    upstream: svc
    auth: {{ any_of: [api_key, jwt] }}
  - name: limited
    match: {{ path_prefix: /limited }}
    upstream: svc
    rate_limit: [p]
auth:
  api_keys:
    - {{ name: inline, sha256: "{sha}" }}
  api_keys_file: keys.yaml
  jwt:
    - issuer: https://hs.test
      secret: "{HMAC}"
      algorithms: [{alg}]
      consumer_namespace: hs
    - issuer: https://idp.test
      jwks: {{ url: "http://reader:{JWKS_PASS}@127.0.0.1:1/keys?sig={JWKS_SIG}" }}
      algorithms: [RS256]
      consumer_namespace: idp
rate_limits:
  backend: redis
  redis: {{ url: "redis://:{REDIS_PASS}@127.0.0.1:1/0", on_error: closed, replicas: {replicas}, timeout: 200ms }}
  policies:
    p: {{ rate: 100, per: 1s }}
telemetry:
  otlp: {{ endpoint: "http://127.0.0.1:1", headers: {{ x-api-key: "{OTLP_HEADER}" }} }}
"#,
        up = up.addr
    )
}

/// A directory with the key file, the TLS pair and the admin token; returns
/// it and a line from the middle of the PEM private key.
fn prepared_dir() -> (TempDir, String) {
    let dir = TempDir::new();
    dir.write(
        "keys.yaml",
        &format!("- {{ name: from-file, sha256: \"{FILE_KEY_HASH}\" }}\n"),
    );
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    dir.write("tls.crt", &cert.pem());
    let pem = key.serialize_pem();
    let body_line = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .max_by_key(|l| l.len())
        .unwrap()
        .to_owned();
    dir.write("tls.key", &pem);
    dir.write("admin-token", &format!("{ADMIN_TOKEN}\n"));
    (dir, body_line)
}

fn assert_clean(what: &str, text: &str, tls_key_line: &str) {
    for secret in [
        KEY_HASH,
        FILE_KEY_HASH,
        "deadbeefdeadbeef",
        HMAC,
        REDIS_PASS,
        OTLP_HEADER,
        ADMIN_TOKEN,
        JWKS_PASS,
        JWKS_SIG,
        tls_key_line,
    ] {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}:\n{text}"
        );
    }
}

// A current-thread runtime: the gateway's tasks run on this thread, so the
// thread-local subscriber sees their events.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_appears_in_config_metrics_errors_problems_or_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let up = echo_upstream("svc").await;
    let (dir, key_line) = prepared_dir();
    let gw = TestGateway::start_in(dir, &yaml(&up, false)).await;
    let admin = |path: &str| format!("http://{}{path}", gw.admin());

    // /config over HTTP: redacted by type, yet still says where things point.
    let r = get(&admin("/config")).await;
    assert_eq!(r.status, 200);
    let body = r.text();
    assert_clean("/config", &body, &key_line);
    let doc = r.json();
    assert_eq!(doc["auth"]["api_keys"][0]["sha256"], "<redacted>", "{doc}");
    assert_eq!(doc["auth"]["jwt"][0]["secret"], "<redacted>", "{doc}");
    assert_eq!(
        doc["rate_limits"]["redis"]["url"], "redis://<redacted>@127.0.0.1:1/0",
        "{doc}"
    );
    assert_eq!(
        doc["auth"]["jwt"][1]["jwks"]["url"], "http://<redacted>@127.0.0.1:1/keys?<redacted>",
        "{doc}"
    );
    assert_eq!(
        doc["telemetry"]["otlp"]["headers"]["x-api-key"], "<redacted>",
        "{doc}"
    );
    assert_eq!(doc["admin"]["token_file"], "admin-token", "{doc}");

    // Debug of the whole config (what a `{:?}` in a log or a panic prints).
    let snapshot = gw.reloader.current().load_full();
    assert_clean("Debug", &format!("{:?}", snapshot.config), &key_line);

    // Problem documents: a refused credential, and Redis failing closed.
    let r = get_with(&gw.url("/keyed"), &[("x-api-key", "wrong-key")]).await;
    assert_eq!(r.status, 401);
    assert_clean("401 problem", &r.text(), &key_line);
    // A token from the issuer whose JWKS URL carries credentials: the
    // request waits for the key fetch, which fails and is logged.
    let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.\
                 eyJpc3MiOiJodHRwczovL2lkcC50ZXN0Iiwic3ViIjoieCIsImV4cCI6NDEwMjQ0NDgwMH0.c2ln";
    let r = get_with(
        &gw.url("/keyed"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_clean("401 problem", &r.text(), &key_line);
    let r = get(&gw.url("/limited")).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_clean("503 problem", &r.text(), &key_line);

    // A refused reload: its error text, its logs, its problem document. The
    // first reload runs on this thread: a log call site first reached on
    // another thread would be disabled for the thread-local subscriber.
    gw.write_config(&yaml(&up, true));
    let errors = gw.reloader.reload().unwrap_err().to_string();
    assert_clean("reload errors", &errors, &key_line);
    let r = send(
        Request::post(admin("/reload"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let body = r.text();
    assert_clean("refused reload", &body, &key_line);
    for field in [
        "auth.api_keys[0].sha256",
        "auth.jwt[0].algorithms",
        "rate_limits.redis.replicas",
    ] {
        assert!(body.contains(field), "{field} not named in {body}");
    }
    let errors = gateway::snapshot::load_config(&gw.config_path)
        .unwrap_err()
        .to_string();
    assert_clean("validate errors", &errors, &key_line);

    // Metrics after all of the above.
    assert_clean("/metrics", &gw.metrics().await, &key_line);

    let logs = capture.text();
    assert!(
        logs.contains("configuration reload refused"),
        "the capture sees the gateway's logs: {logs}"
    );
    assert!(
        logs.contains("JWKS fetch failed") && logs.contains("127.0.0.1:1/keys"),
        "the failed JWKS fetch is logged, naming its host: {logs}"
    );
    assert_clean("logs", &logs, &key_line);
}
