//! The dashboards in a real headless Chromium, driven over WebDriver, in
//! front of the whole demo stack in-process:
//!
//! - the gateway's page lists exactly the routes and upstreams of
//!   `config/gateway.yaml` and shows the gateway's SPIFFE ID, and the order
//!   sidecar's page its destinations;
//! - payment's fault knob makes the order sidecar's breaker for payment open
//!   on the open page, and healing it closes it again, through the live
//!   stream (a marker set in the page survives: it was never reloaded);
//! - no secret of the configs (an API-key hash, a JWT secret, a Redis
//!   password, an OTLP header) is in any page's DOM, in the state documents
//!   or in the event stream;
//! - screenshots go to this test's output dir (and to `docs/dashboard.png`
//!   with `WEIR_WRITE_DOCS_SCREENSHOT=1`).
//!
//! Chromium and chromedriver come from Debian's packages (`CHROMIUM`,
//! `CHROMEDRIVER` override the paths). Missing, the test is skipped with a
//! reason, except under `CI=true`, where that is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use e2e::{HttpClient, OtlpReceiver, TempDir};
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use serde_norway::Value as Yaml;

const PATIENCE: Duration = Duration::from_secs(90);
const API_KEY: (&str, &str) = ("x-api-key", "demo-key");

const HMAC: &str = "dashboard-test-hmac-secret-0123456789abcdef";
const REDIS_PASS: &str = "dashboard-redis-pass-4b1c";
const OTLP_HEADER: &str = "dashboard-otlp-header-8e2f";

/// How many stream frames the open page has drawn.
const FRAMES: &str = "Number(document.getElementById('app').dataset.frames || 0)";

const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1500,1900",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The browser and its driver, or why the test cannot run.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = std::env::var_os("CHROMIUM").map_or("/usr/bin/chromium".into(), PathBuf::from);
    let driver =
        std::env::var_os("CHROMEDRIVER").map_or("/usr/bin/chromedriver".into(), PathBuf::from);
    let missing: Vec<String> = [&chromium, &driver]
        .iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    let reason = format!(
        "{} not installed (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}");
    }
    eprintln!("skipping the dashboard browser test: {reason}");
    None
}

/// A chromedriver this test started, on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn spawn(path: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = HttpClient::default();
        let status = format!("{}/status", driver.url);
        poll("chromedriver answers /status", || {
            let (http, status) = (http.clone(), status.clone());
            async move { http.get(&status, &[]).await.is_ok_and(|r| r.status == 200) }
        })
        .await;
        driver
    }

    async fn session(&self, chromium: &Path, profile: &Path) -> Client {
        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds, failing after [`PATIENCE`]. For conditions
/// with no event to await (a DOM state, a port answering).
async fn poll<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `script` (a function body returning a JSON value) in the page.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// Waits until `condition` (a JavaScript expression) is true in the page.
async fn wait_dom(c: &Client, what: &str, condition: &str) {
    let script = format!("return Boolean({condition});");
    poll(what, || async { js(c, &script).await == json!(true) }).await;
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// A copy of `config/` whose gateway config also holds secrets of every
/// kind it knows (the demo's own API-key hash is one already).
fn config_with_secrets(dir: &Path) -> Vec<String> {
    let src = root().join("config");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for entry in std::fs::read_dir(src.join("keys")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.join("keys").join(e.file_name())).unwrap();
    }
    for svc in ["catalog", "order", "payment"] {
        let name = format!("sidecar-{svc}.yaml");
        std::fs::copy(src.join(&name), dir.join(&name)).unwrap();
    }
    let text = std::fs::read_to_string(src.join("gateway.yaml")).unwrap();
    let mut doc: Yaml = serde_norway::from_str(&text).unwrap();
    let key_hash = doc["auth"]["api_keys"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwt: Yaml = serde_norway::from_str(&format!(
        "{{ issuer: 'https://hs.dashboard.test', secret: '{HMAC}', algorithms: [HS256] }}"
    ))
    .unwrap();
    // Several issuers need a consumer namespace each.
    doc["auth"]["jwt"][0]["consumer_namespace"] = Yaml::String("demo".into());
    let mut jwt = jwt;
    jwt["consumer_namespace"] = Yaml::String("hs".into());
    doc["auth"]["jwt"].as_sequence_mut().unwrap().push(jwt);
    doc["rate_limits"]["redis"] =
        serde_norway::from_str(&format!("{{ url: 'redis://:{REDIS_PASS}@127.0.0.1:1/0' }}"))
            .unwrap();
    std::fs::write(
        dir.join("gateway.yaml"),
        serde_norway::to_string(&doc).unwrap(),
    )
    .unwrap();
    vec![
        key_hash,
        HMAC.to_owned(),
        REDIS_PASS.to_owned(),
        OTLP_HEADER.to_owned(),
    ]
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} shows the secret {s:?}");
    }
}

/// Some product id from the catalog, through the gateway.
async fn a_product(http: &HttpClient, gateway: std::net::SocketAddr) -> String {
    let r = http
        .get(&format!("http://{gateway}/v1/products"), &[API_KEY])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    let list = doc
        .as_array()
        .or_else(|| doc["items"].as_array())
        .unwrap_or_else(|| panic!("no product list in {doc}"));
    list[0]["id"].as_str().unwrap().to_owned()
}

/// Places orders through the gateway until `stop`, `workers` at a time.
fn load(
    http: HttpClient,
    gateway: std::net::SocketAddr,
    product: String,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|w| {
            let (http, product, stop) = (http.clone(), product.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = format!(
                        r#"{{"customer_id":"c-dash","items":[{{"product_id":"{product}","quantity":1}}]}}"#
                    );
                    let key = format!("dash-{}-{w}-{n}", std::process::id());
                    let _ = http
                        .post_json(
                            &format!("http://{gateway}/v1/orders"),
                            &[API_KEY, ("idempotency-key", &key)],
                            &body,
                        )
                        .await;
                    let _ = http
                        .get(&format!("http://{gateway}/v1/products"), &[API_KEY])
                        .await;
                }
            })
        })
        .collect()
}

async fn set_faults(http: &HttpClient, payment: std::net::SocketAddr, rate: f64) {
    let r = http
        .put_json(
            &format!("http://{payment}/admin/faults"),
            &[],
            &format!(r#"{{"failure_rate":{rate}}}"#),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The first `n` events of a dashboard stream, as text.
async fn stream_text(admin: std::net::SocketAddr, n: usize) -> String {
    use http_body_util::BodyExt;
    let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = c
        .get(format!("http://{admin}/dashboard/events").parse().unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut text = String::new();
    while text.matches("event: state").count() < n {
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        if let Ok(d) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&d));
        }
    }
    text
}

async fn save_screenshot(c: &Client, name: &str) -> PathBuf {
    let png = c.screenshot().await.unwrap();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    if std::env::var("WEIR_WRITE_DOCS_SCREENSHOT").is_ok_and(|v| v == "1") {
        let docs = root().join("docs").join(name);
        std::fs::write(&docs, &png).unwrap();
        eprintln!("screenshot: {}", docs.display());
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_show_the_config_and_a_breaker_opening_and_closing_live() {
    let Some((chromium, chromedriver)) = browser() else {
        return;
    };
    let work = TempDir::new("dashboard-browser").unwrap();
    let config_dir = work.path().join("config");
    let secrets = config_with_secrets(&config_dir);
    let rx = OtlpReceiver::grpc().await.unwrap();
    let endpoint = rx.endpoint();
    let env: demo::EnvLookup = Arc::new(move |k: &str| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some(format!("x-api-key={OTLP_HEADER}")),
        _ => None,
    });
    let stack = demo::Stack::start(demo::StackOptions {
        config_dir: config_dir.clone(),
        data_dir: work.path().join("data"),
        ephemeral: true,
        env,
    })
    .await
    .expect("stack starts");
    stack.wait_ready(PATIENCE).await.expect("stack ready");
    let http = HttpClient::default();
    let gw_admin = stack.gateway_admin;
    let order_admin = stack.sidecars["order"].admin;

    let driver = Driver::spawn(&chromedriver).await;
    let c = driver
        .session(&chromium, &work.path().join("profile"))
        .await;

    // The gateway's page: exactly the configured routes and upstreams.
    c.goto(&format!("http://{gw_admin}/dashboard"))
        .await
        .unwrap();
    wait_dom(
        &c,
        "the gateway page draws",
        "document.querySelector('[data-route]')",
    )
    .await;
    let config: Yaml =
        serde_norway::from_str(&std::fs::read_to_string(config_dir.join("gateway.yaml")).unwrap())
            .unwrap();
    let mut routes: Vec<String> = config["routes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    routes.sort();
    let shown = js(
        &c,
        "return [...document.querySelectorAll('[data-route]')].map(e => e.dataset.route);",
    )
    .await;
    assert_eq!(strings(&shown), routes);
    let mut upstreams: Vec<String> = config["upstreams"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    upstreams.sort();
    let shown = js(&c, "return [...document.querySelectorAll('[data-upstream-row]')].map(e => e.dataset.upstreamRow);").await;
    assert_eq!(strings(&shown), upstreams);
    // The gateway's own workload identity, from its `identity:` section.
    wait_dom(
        &c,
        "the gateway shows its SPIFFE ID",
        "[...document.querySelectorAll('[data-identity=\"set\"]')].some(e => e.textContent.includes('spiffe://weir.local/ns/default/sa/gateway'))",
    )
    .await;
    let gateway_window = c.window().await.unwrap();

    // The order sidecar's page, in a second window; both stay open.
    let order_window = c.new_window(false).await.unwrap().handle;
    c.switch_to_window(order_window.clone()).await.unwrap();
    c.goto(&format!("http://{order_admin}/dashboard"))
        .await
        .unwrap();
    let payment_ep = "document.querySelector('[data-destination=\"payment\"] [data-endpoint]')";
    wait_dom(&c, "the order sidecar page draws payment", payment_ep).await;
    let dests = js(&c, "return [...document.querySelectorAll('[data-destination]')].map(e => e.dataset.destination);").await;
    let sidecar: Yaml = serde_norway::from_str(
        &std::fs::read_to_string(config_dir.join("sidecar-order.yaml")).unwrap(),
    )
    .unwrap();
    let mut want: Vec<String> = sidecar["services"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(strings(&dests), want);
    // The sidecar's workload identity, from its certificate.
    wait_dom(
        &c,
        "the order sidecar shows its SPIFFE ID",
        "[...document.querySelectorAll('[data-identity=\"set\"]')].some(e => e.textContent.includes('spiffe://weir.local/ns/default/sa/order'))",
    )
    .await;
    wait_dom(
        &c,
        "payment's breaker shows closed",
        &format!("{payment_ep}.dataset.breaker === 'closed'"),
    )
    .await;
    // A reload would lose this.
    js(&c, "window.__weirMarker = 'no reload'; return true;").await;

    // Payment fails; orders keep coming: the breaker opens on the open page.
    let product = a_product(&http, stack.gateway).await;
    set_faults(&http, stack.apps["payment"], 1.0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = load(http.clone(), stack.gateway, product, stop.clone());
    wait_dom(
        &c,
        "payment's breaker shows open",
        &format!("{payment_ep}.dataset.breaker === 'open'"),
    )
    .await;
    // For the screenshot: a few seconds of sparkline, the breaker still open.
    wait_dom(
        &c,
        "some history on the order sidecar page, payment still open",
        &format!("{FRAMES} >= 12 && {payment_ep}.dataset.breaker === 'open'"),
    )
    .await;
    let badge = js(
        &c,
        &format!("return {payment_ep}.querySelector('[data-breaker-state]').textContent;"),
    )
    .await;
    assert!(
        badge.as_str().is_some_and(|t| t.starts_with("open")),
        "{badge}"
    );
    save_screenshot(&c, "dashboard-sidecar.png").await;

    // The gateway's page under the same load: errors on the order routes and
    // the mesh edge order → payment drawn as failing.
    c.switch_to_window(gateway_window.clone()).await.unwrap();
    wait_dom(
        &c,
        "the mesh shows order → payment failing",
        &format!("{FRAMES} >= 15 && document.querySelector('[data-edge=\"order->payment\"].bad')"),
    )
    .await;
    save_screenshot(&c, "dashboard.png").await;

    // Healed: the next probe succeeds and the page shows it closed again.
    set_faults(&http, stack.apps["payment"], 0.0).await;
    c.switch_to_window(order_window).await.unwrap();
    wait_dom(
        &c,
        "payment's breaker shows closed again",
        &format!("{payment_ep}.dataset.breaker === 'closed'"),
    )
    .await;
    assert_eq!(
        js(&c, "return window.__weirMarker;").await,
        json!("no reload"),
        "the page was updated by its stream, not reloaded"
    );
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // No secret anywhere: the DOM of both pages, the state documents and
    // the streams of every dashboard, the assets.
    let dom = js(&c, "return document.documentElement.outerHTML;").await;
    assert_clean("order sidecar DOM", dom.as_str().unwrap(), &secrets);
    c.switch_to_window(gateway_window).await.unwrap();
    let dom = js(&c, "return document.documentElement.outerHTML;").await;
    assert_clean("gateway DOM", dom.as_str().unwrap(), &secrets);
    let mut admins = vec![gw_admin];
    admins.extend(stack.sidecars.values().map(|s| s.admin));
    for admin in admins {
        for path in ["/dashboard", "/dashboard/app.js", "/dashboard/api/state"] {
            let r = http
                .get(&format!("http://{admin}{path}"), &[])
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{admin}{path}");
            assert_clean(&format!("{admin}{path}"), &r.text(), &secrets);
        }
        assert_clean(
            &format!("{admin} stream"),
            &stream_text(admin, 2).await,
            &secrets,
        );
    }

    c.close().await.unwrap();
    drop(driver);
    let failures = stack.stop().await;
    assert!(failures.is_empty(), "{failures:?}");
}
