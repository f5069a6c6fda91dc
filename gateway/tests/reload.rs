//! Hot reload: no request fails while the config is swapped repeatedly under
//! load, an invalid file keeps the old config serving (and is counted), a
//! thousand reloads do not grow resident memory, a table of 5,000 routes
//! reloads while another route keeps answering, and a change that needs a
//! restart is named as such instead of being reported as reloaded.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use http::Request;
use support::*;

/// Config variant `tag`: the same route, tagged by a response header, and an
/// upstream whose settings differ so each reload rebuilds it (new pool,
/// new health-check task).
fn variant(up: &Upstream, tag: &str) -> String {
    let idle = if tag == "a" { "30s" } else { "31s" };
    config(&format!(
        "upstreams:\n  echo:\n    endpoints: [{}]\n    pool: {{ idle_timeout: {idle} }}\n    health_check: {{ path: /, interval: 1s }}\n\
         routes:\n  - name: load\n    match: {{ path_prefix: /load }}\n    upstream: echo\n    rewrite: {{ response_headers: {{ set: {{ x-config: {tag} }} }} }}\n",
        up.addr
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_while_reloading_under_load() {
    const TASKS: usize = 4;
    const PER_TASK: usize = 250;
    const RELOADS: usize = 50;
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&variant(&up, "a")).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let url = gw.url(&format!("/load/{t}"));
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            let (mut failures, mut a, mut b) = (Vec::new(), 0, 0);
            for _ in 0..PER_TASK {
                match c.request(Request::get(&url).body(empty()).unwrap()).await {
                    Ok(resp) => {
                        let r = read_reply(resp).await;
                        match (r.status.as_u16(), r.header("x-config")) {
                            (200, Some("a")) => a += 1,
                            (200, Some("b")) => b += 1,
                            (s, tag) => failures.push(format!("{s} {tag:?} {}", r.text())),
                        }
                    }
                    Err(e) => failures.push(format!("{e:?}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            (failures, a, b)
        }));
    }
    // Spread the reloads over the run: reload `i` waits for `i * 15` answers.
    for i in 0..RELOADS {
        let want = i * 15;
        wait_until("load progresses", || {
            let done = done.clone();
            async move { done.load(Ordering::SeqCst) >= want }
        })
        .await;
        let tag = if i % 2 == 0 { "b" } else { "a" };
        gw.replace_config(&variant(&up, tag))
            .await
            .expect("valid config reloads");
    }
    let (mut failures, mut a, mut b) = (Vec::new(), 0, 0);
    for t in tasks {
        let (f, ta, tb) = within("load task", t).await.expect("load task");
        failures.extend(f);
        a += ta;
        b += tb;
    }
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(a + b, TASKS * PER_TASK);
    assert!(a > 0 && b > 0, "both configs served traffic (a={a}, b={b})");
    assert!(gw.reloader.metrics().count(true) >= RELOADS as u64);
}

#[tokio::test]
async fn invalid_file_keeps_the_old_config_and_is_counted() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&variant(&up, "a")).await;
    let bad = variant(&up, "b").replace("upstream: echo\n", "upstream: missing\n");

    let errors = gw
        .replace_config(&bad)
        .await
        .expect_err("an unknown upstream is refused");
    assert!(
        errors.iter().any(|e| e.path == "routes[0].upstream"),
        "{errors}"
    );
    let r = get(&gw.url("/load")).await;
    assert_eq!(
        (r.status.as_u16(), r.header("x-config")),
        (200, Some("a")),
        "the old config still serves"
    );

    let m = gw.metrics().await;
    let failures = metric(&m, "weir_config_reloads_total{result=\"failure\"}").unwrap_or(0.0);
    assert!(failures >= 1.0, "{m}");
    assert_eq!(metric(&m, "weir_config_last_reload_success"), Some(0.0));

    // The admin endpoint reports the refusal too.
    gw.write_config("listeners: [}\n");
    let r = send(
        Request::post(format!("http://{}/reload", gw.admin()))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(get(&gw.url("/load")).await.header("x-config"), Some("a"));

    // A valid file is taken again.
    gw.replace_config(&variant(&up, "b"))
        .await
        .expect("valid config reloads");
    assert_eq!(get(&gw.url("/load")).await.header("x-config"), Some("b"));
    let m = gw.metrics().await;
    assert_eq!(metric(&m, "weir_config_last_reload_success"), Some(1.0));
    assert!(
        metric(&m, "weir_config_reloads_total{result=\"failure\"}").unwrap_or(0.0) >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reloads_do_not_grow_memory() {
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&variant(&up, "a")).await;
    let yaml = [variant(&up, "a"), variant(&up, "b")];
    let c = client();
    let run = |n: usize, offset: usize| {
        let gw = &gw;
        let yaml = &yaml;
        let c = c.clone();
        async move {
            for i in 0..n {
                gw.replace_config(&yaml[(offset + i) % 2])
                    .await
                    .expect("reload");
                if i % 100 == 0 {
                    let r =
                        send_with(&c, Request::get(gw.url("/load")).body(empty()).unwrap()).await;
                    assert_eq!(r.status, 200);
                }
            }
        }
    };
    // Warm up allocator arenas and pools first.
    run(100, 0).await;
    let before = proc_status_kib("VmRSS");
    run(1000, 100).await;
    let after = proc_status_kib("VmRSS");
    eprintln!("VmRSS before {before} KiB, after 1000 reloads {after} KiB");
    assert!(
        after.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 1000 reloads"
    );
    assert!(gw.reloader.metrics().count(true) >= 1100);
}

/// `n` routes with paths `/{prefix}{i}` plus the `hot` route.
fn many_routes(up: &Upstream, prefix: &str, n: usize) -> String {
    let mut routes = String::with_capacity(n * 80);
    routes.push_str("  - name: hot\n    match: { path_prefix: /hot }\n    upstream: echo\n");
    for i in 0..n {
        routes.push_str(&format!("  - name: {prefix}{i}\n    match: {{ path_prefix: /{prefix}{i} }}\n    upstream: echo\n"));
    }
    config(&format!(
        "upstreams:\n  echo: {{ endpoints: [{}] }}\nroutes:\n{routes}",
        up.addr
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_routes_reload_while_another_route_serves() {
    const ROUTES: usize = 5000;
    let up = echo_upstream("echo").await;
    let gw = TestGateway::start(&many_routes(&up, "svc", ROUTES)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (url, stop) = (gw.url("/hot"), stop.clone());
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match c.request(Request::get(&url).body(empty()).unwrap()).await {
                    Ok(resp) if resp.status() == 200 => {
                        read_reply(resp).await;
                        ok += 1;
                    }
                    Ok(resp) => failed.push(read_reply(resp).await.status.as_u16()),
                    Err(_) => failed.push(0),
                }
            }
            (ok, failed)
        }));
    }
    let configs = [
        many_routes(&up, "alt", ROUTES),
        many_routes(&up, "svc", ROUTES),
    ];
    for i in 0..6 {
        gw.replace_config(&configs[i % 2]).await.expect("reload");
        let (now, gone) = if i % 2 == 0 {
            ("alt", "svc")
        } else {
            ("svc", "alt")
        };
        assert_eq!(
            get(&gw.url(&format!("/{now}{}", ROUTES - 1))).await.status,
            200
        );
        assert_eq!(
            get(&gw.url(&format!("/{gone}{}", ROUTES - 1))).await.status,
            404
        );
    }
    stop.store(true, Ordering::SeqCst);
    let mut served = 0;
    for t in load {
        let (ok, failed) = within("load task", t).await.expect("load task");
        assert!(
            failed.is_empty(),
            "requests to /hot failed during reloads: {failed:?}"
        );
        served += ok;
    }
    assert!(served > 0);
    assert_eq!(gw.reloader.current().load().routes.len(), ROUTES + 1);
}

#[tokio::test]
async fn unchanged_upstreams_keep_their_pool_across_reloads() {
    let up = echo_upstream("echo").await;
    // Without health checks, so every upstream connection is a pooled one.
    let variant = |up: &Upstream, tag: &str| {
        variant(up, tag).replace("    health_check: { path: /, interval: 1s }\n", "")
    };
    let gw = TestGateway::start(&variant(&up, "a")).await;
    let c = client();
    let ask = || {
        let (c, url) = (c.clone(), gw.url("/load"));
        async move { send_with(&c, Request::get(url).body(empty()).unwrap()).await }
    };
    for _ in 0..5 {
        assert_eq!(ask().await.status, 200);
    }
    let pooled = up.connections();
    assert_eq!(pooled, 1, "keep-alive reuses one upstream connection");
    // Route-only changes: the upstream (and its pooled connection) is kept.
    for tag in ["x", "y", "z"] {
        let same_upstream = variant(&up, "a").replace("x-config: a", &format!("x-config: {tag}"));
        gw.replace_config(&same_upstream).await.expect("reload");
        let r = ask().await;
        assert_eq!(r.header("x-config"), Some(tag));
    }
    assert_eq!(up.connections(), pooled, "the pool survived three reloads");

    // A changed upstream gets a new pool.
    gw.replace_config(&variant(&up, "b")).await.expect("reload");
    assert_eq!(ask().await.header("x-config"), Some("b"));
    assert_eq!(up.connections(), pooled + 1);
}

/// Collects what the log subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
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

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A config whose restart-only parts (`listener`, `admin_extra`, `limits`,
/// `drain`) and live parts (`tag`, `max_body`) vary independently.
fn restart_variant(
    up: &Upstream,
    listener: &str,
    admin_extra: &str,
    limits: &str,
    drain: &str,
    tag: &str,
) -> String {
    format!(
        "listeners:\n  - name: public\n    address: {listener}\nadmin:\n  address: 127.0.0.1:0\n{admin_extra}\
         limits: {{ {limits} }}\nshutdown: {{ drain: {drain} }}\n\
         upstreams:\n  svc: {{ endpoints: [{}] }}\n\
         routes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: svc\n    rewrite: {{ response_headers: {{ set: {{ x-config: {tag} }} }} }}\n",
        up.addr
    )
}

// A current-thread runtime with a thread-local subscriber: the log lines of
// the reload run on this thread are captured.
#[tokio::test(flavor = "current_thread")]
async fn a_change_that_needs_a_restart_is_named_in_the_answer_and_the_log() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let up = echo_upstream("svc").await;
    let started = "idle_timeout: 60s, max_body_bytes: 1MiB";
    let gw = TestGateway::start(&restart_variant(
        &up,
        "127.0.0.1:0",
        "",
        started,
        "30s",
        "a",
    ))
    .await;
    let reload_over_http = || async {
        let r = send(
            Request::post(format!("http://{}/reload", gw.admin()))
                .body(empty())
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };

    // Live changes only (a route, the body limit): a full reload.
    gw.write_config(&restart_variant(
        &up,
        "127.0.0.1:0",
        "",
        "idle_timeout: 60s, max_body_bytes: 16B",
        "30s",
        "b",
    ));
    assert!(gw.reloader.reload_report().unwrap().fully_applied());
    assert_eq!(reload_over_http().await["status"], "reloaded");
    assert_eq!(get(&gw.url("/api")).await.header("x-config"), Some("b"));
    let r = send(
        Request::post(gw.url("/api"))
            .body(full(vec![b'x'; 100]))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413, "the body limit applies without a restart");

    // Restart-only changes next to a live one: the live one applies, each
    // other one is named, in the answer and in the log.
    gw.write_config(&restart_variant(
        &up,
        "127.0.0.1:1",
        "  allowed_hosts: [admin.weir.test]\n",
        "idle_timeout: 5s, max_connections: 10, max_body_bytes: 16B",
        "5s",
        "c",
    ));
    let expected = [
        "listeners[0].address",
        "admin.allowed_hosts",
        "limits.idle_timeout",
        "limits.max_connections",
        "shutdown.drain",
    ];
    capture.0.lock().unwrap().clear();
    let report = gw.reloader.reload_report().unwrap();
    assert_eq!(report.restart_required, expected);
    let answer = reload_over_http().await;
    assert_eq!(answer["status"], "restart-required", "{answer}");
    assert_eq!(answer["restart_required"], serde_json::json!(expected));
    assert_eq!(get(&gw.url("/api")).await.header("x-config"), Some("c"));
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    for field in expected {
        assert!(
            logs.lines()
                .any(|l| l.contains("needs a restart") && l.contains(&format!("\"{field}\""))),
            "no log line names {field}:\n{logs}"
        );
    }
    assert!(
        !logs.contains("\"configuration reloaded\""),
        "a partial reload must not be logged as a plain reload:\n{logs}"
    );
    assert_eq!(
        metric(&gw.metrics().await, "weir_config_restart_pending_fields"),
        Some(5.0)
    );

    // Back to what the process runs with: fully applied again.
    gw.write_config(&restart_variant(
        &up,
        "127.0.0.1:0",
        "",
        started,
        "30s",
        "d",
    ));
    assert_eq!(reload_over_http().await["status"], "reloaded");
    assert_eq!(
        metric(&gw.metrics().await, "weir_config_restart_pending_fields"),
        Some(0.0)
    );
}
