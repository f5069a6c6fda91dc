//! Inbound forwarding, its concurrency limit and timeout, readiness, graceful
//! shutdown and hot reload.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;

fn inbound_config(app: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "service: test\ninbound:\n  address: 127.0.0.1:0\n  app: {app}\n{extra}outbound:\n  address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\nshutdown: {{ drain: 5s }}\n"
    )
}

#[tokio::test]
async fn forwards_to_the_app_with_forwarding_headers() {
    let app = Upstream::start().await;
    let sc = start_sidecar(&inbound_config(app.addr, "")).await;
    let c = client();
    let got = get(&c, sc.inbound, "order.local").await;
    assert_eq!(got.status, 200);
    assert_eq!(
        app.seen_header(0, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert!(app.seen_header(0, "x-request-id").is_some());
    assert_eq!(app.seen_header(0, "host").as_deref(), Some("order.local"));
    sc.stop().await;
}

#[tokio::test]
async fn the_concurrency_limit_answers_503_at_once_instead_of_queueing() {
    // The first request parks in the app until the test ends.
    let app = Upstream::with(move |_, _| Action::Hang).await;
    let sc = start_sidecar(&inbound_config(app.addr, "  max_concurrent_requests: 1\n")).await;
    let c = client();
    let c2 = c.clone();
    let inbound = sc.inbound;
    let first = tokio::spawn(async move { get(&c2, inbound, "x").await });
    // Wait until the first request holds the only slot (it reached the app).
    while app.hits() == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = get(&c, sc.inbound, "x").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.json()["type"], "https://weir.dev/problems/overloaded");
    assert_eq!(got.headers["retry-after"], "1");
    assert_eq!(app.hits(), 1, "the refused request never reached the app");
    let rejected = metric(&c, sc.admin, "weir_sidecar_inbound_rejected_total").await;
    assert_eq!(rejected, Some(1.0));
    first.abort();
    sc.stop().await;
}

#[tokio::test]
async fn the_inbound_timeout_answers_504() {
    let app = Upstream::with(|_, _| Action::Hang).await;
    let sc = start_sidecar(&inbound_config(app.addr, "  timeout: 100ms\n")).await;
    let c = client();
    let got = get(&c, sc.inbound, "x").await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["type"], "https://weir.dev/problems/app-timeout");
    sc.stop().await;
}

#[tokio::test]
async fn app_down_is_a_502_problem_and_not_ready() {
    let dead = refused_addr().await;
    let sc = start_sidecar(&inbound_config(dead, "")).await;
    let c = client();
    let got = get(&c, sc.inbound, "x").await;
    assert_eq!(got.status, 502);
    assert_eq!(
        got.json()["type"],
        "https://weir.dev/problems/app-unavailable"
    );
    assert_eq!(admin(&c, sc.admin, "/readyz").await.status, 503);
    assert_eq!(admin(&c, sc.admin, "/healthz").await.status, 200);
    sc.stop().await;
}

#[tokio::test]
async fn ready_once_the_app_answers_and_not_after_shutdown_starts() {
    let app = Upstream::with(|_, _| Action::Delay(Duration::from_millis(300), 200)).await;
    let mut sc = start_sidecar(&inbound_config(app.addr, "")).await;
    let c = client();
    let mut ready = false;
    for _ in 0..100 {
        if admin(&c, sc.admin, "/readyz").await.status == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        ready,
        "ready once listeners are bound and the app accepts connections"
    );

    // A request in flight when SIGTERM arrives still completes.
    let c2 = c.clone();
    let inbound = sc.inbound;
    let in_flight = tokio::spawn(async move { get(&c2, inbound, "x").await });
    while app.hits() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let admin_addr = sc.admin;
    let task = sc.trigger();
    let readyz = admin(&c, admin_addr, "/readyz").await;
    assert_eq!(readyz.status, 503, "not ready while draining");
    assert_eq!(in_flight.await.unwrap().status, 200, "drained, not dropped");
    task.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(inbound).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn config_file_hot_reload_swaps_destinations() {
    let app = Upstream::start().await;
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let dir = std::env::temp_dir().join(format!("weir-sidecar-reload-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.yaml");
    std::fs::write(&path, config(app.addr, &[a.addr], "")).unwrap();
    let env: sidecar::Env = Arc::new(|_| None);
    let sc = sidecar::Sidecar::bind_file(&path, env).await.unwrap();
    let (outbound, admin_addr) = (sc.outbound_addr(), sc.admin_addr());
    let (trigger, signal) = proxy_core::shutdown::channel();
    let task = tokio::spawn(sc.serve(signal));
    let c = client();
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(a.hits(), 1);

    // An invalid file is refused and the running config keeps serving.
    std::fs::write(&path, "service: test\nbogus: 1\n").unwrap();
    let admin_host = admin_addr.to_string();
    let refused = send(&c, admin_addr, "POST", &admin_host, "/reload", "").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(a.hits(), 2);

    std::fs::write(&path, config(app.addr, &[b.addr], "")).unwrap();
    let ok = send(&c, admin_addr, "POST", &admin_host, "/reload", "").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(get(&c, outbound, "svc").await.status, 200);
    assert_eq!(b.hits(), 1, "the new endpoint serves after reload");
    assert_eq!(a.hits(), 2);
    let cfg = admin(&c, admin_addr, "/config").await.json();
    assert_eq!(cfg["services"]["svc"]["endpoints"][0], b.addr.to_string());

    trigger.trigger();
    task.await.unwrap().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

/// An app that switches to a byte echo on `Upgrade: echo`.
async fn upgrading_app() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(|mut req: http::Request<hyper::body::Incoming>| async move {
                    let on = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        if let Ok(up) = on.await {
                            let mut io = hyper_util::rt::TokioIo::new(up);
                            let (mut r, mut w) = tokio::io::split(&mut io);
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        }
                    });
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(101)
                            .header("connection", "upgrade")
                            .header("upgrade", "echo")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn upgrades_are_tunnelled_to_the_app() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, app_task) = upgrading_app().await;
    let sc = start_sidecar(&inbound_config(app, "")).await;
    let mut s = tokio::net::TcpStream::connect(sc.inbound).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"through the tunnel").await.unwrap();
    let mut back = [0u8; 18];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"through the tunnel");
    drop(s);
    app_task.abort();
    sc.stop().await;
}
