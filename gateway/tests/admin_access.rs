//! Who may use the admin listener, over real sockets: only requests naming
//! the listener itself (or a configured name) in `Host` are served (DNS
//! rebinding), mutating endpoints refuse cross-site browser requests, and a
//! configured bearer token (file or environment) guards them. Loopback
//! callers without a token configured keep every documented endpoint.

mod support;

use std::net::SocketAddr;

use gateway::Gateway;
use http::Request;
use proxy_core::shutdown::channel;
use support::*;

fn admin_yaml(up: &Upstream, admin_extra: &str) -> String {
    format!(
        "listeners:\n  - name: public\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\n{admin_extra}\
         upstreams:\n  svc: {{ endpoints: [{}] }}\nroutes:\n  - name: api\n    match: {{ path_prefix: /api }}\n    upstream: svc\n",
        up.addr
    )
}

async fn request(method: &str, admin: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(empty()).unwrap()).await
}

#[tokio::test]
async fn only_its_own_address_localhost_and_allowed_names_are_served() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&admin_yaml(
        &up,
        "  allowed_hosts: [admin.weir.test, 'ops.weir.test:8443']\n",
    ))
    .await;
    let admin = gw.admin();
    let port = admin.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        "admin.weir.test".to_owned(),
        "admin.weir.test:80".to_owned(),
        "ops.weir.test:8443".to_owned(),
    ] {
        let r = request("GET", admin, "/config", &[("host", &host)]).await;
        assert_eq!(r.status, 200, "Host {host}: {}", r.text());
    }
    for host in [
        format!("rebound.attacker.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("127.0.0.2:{port}"),
        "ops.weir.test:443".to_owned(),
        format!("user@127.0.0.1:{port}"),
    ] {
        for path in ["/config", "/metrics", "/healthz"] {
            let r = request("GET", admin, path, &[("host", &host)]).await;
            assert_eq!(r.status, 421, "Host {host} {path}: {}", r.text());
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{host}"
            );
            assert!(
                r.json()["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("/admin-host-refused")),
                "{}",
                r.text()
            );
        }
        let r = request("POST", admin, "/reload", &[("host", &host)]).await;
        assert_eq!(r.status, 421, "POST with Host {host}");
    }
}

#[tokio::test]
async fn cross_site_requests_cannot_reload() {
    let up = echo_upstream("svc").await;
    let gw = TestGateway::start(&admin_yaml(&up, "")).await;
    let admin = gw.admin();
    let own = format!("http://{admin}");
    for headers in [
        vec![("origin", "http://attacker.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site"), ("origin", own.as_str())],
    ] {
        let r = request("POST", admin, "/reload", &headers).await;
        assert_eq!(r.status, 403, "{headers:?}: {}", r.text());
        assert!(
            r.json()["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("/admin-cross-site-refused")),
            "{}",
            r.text()
        );
    }
    // Same-origin browser requests and plain clients reload.
    for headers in [
        vec![("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
        vec![],
    ] {
        let r = request("POST", admin, "/reload", &headers).await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text());
        assert_eq!(r.json()["status"], "reloaded");
    }
    // Reading stays open to a cross-site GET: the browser keeps the answer
    // from the other site, and the Host check already applies.
    let r = request(
        "GET",
        admin,
        "/healthz",
        &[("origin", "http://attacker.example")],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_token_file_guards_mutations_and_rotates_without_restart() {
    let up = echo_upstream("svc").await;
    let dir = TempDir::new();
    let token_path = dir.write("admin-token", "first-admin-token-0123456789\n");
    let gw = TestGateway::start_in(dir, &admin_yaml(&up, "  token_file: admin-token\n")).await;
    let admin = gw.admin();

    let r = request("POST", admin, "/reload", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"weir-admin\"")
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let r = request(
        "POST",
        admin,
        "/reload",
        &[("authorization", "Bearer not-the-token")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.contains("invalid_token"))
    );
    assert!(!r.text().contains("first-admin-token"), "{}", r.text());
    let r = request(
        "POST",
        admin,
        "/reload",
        &[("authorization", "Bearer first-admin-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "reloaded");

    // Reads need no token.
    for path in ["/healthz", "/readyz", "/metrics", "/config"] {
        let r = request("GET", admin, path, &[]).await;
        assert!(r.status == 200 || r.status == 503, "{path}: {}", r.status);
    }

    // A rotated Secret applies at once: the old token stops working.
    let tmp = token_path.with_extension("new");
    std::fs::write(&tmp, "second-admin-token-0123456789").unwrap();
    std::fs::rename(&tmp, &token_path).unwrap();
    let r = request(
        "POST",
        admin,
        "/reload",
        &[("authorization", "Bearer first-admin-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        "POST",
        admin,
        "/reload",
        &[("authorization", "bearer second-admin-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn the_token_can_come_from_the_environment() {
    let up = echo_upstream("svc").await;
    let dir = TempDir::new();
    let path = dir.write("gateway.yaml", &admin_yaml(&up, ""));
    let env = |k: &str| (k == "WEIR_ADMIN_TOKEN").then(|| "env-admin-token-0123456789".to_owned());
    let gw = Gateway::bind(&path, env).await.expect("gateway starts");
    let admin = gw.local_addrs()["admin"];
    let (trigger, signal) = channel();
    let task = tokio::spawn(gw.serve(signal));

    assert_eq!(request("POST", admin, "/reload", &[]).await.status, 401);
    let r = request(
        "POST",
        admin,
        "/reload",
        &[("authorization", "Bearer env-admin-token-0123456789")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    trigger.trigger();
    within("gateway stops", task).await.expect("serve");
}

#[tokio::test]
async fn an_unreadable_token_file_stops_the_start() {
    let up = echo_upstream("svc").await;
    let dir = TempDir::new();
    let path = dir.write(
        "gateway.yaml",
        &admin_yaml(&up, "  token_file: no-such-token\n"),
    );
    let err = match Gateway::bind(&path, |_| None).await {
        Ok(_) => panic!("started without its admin token"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("admin.token_file"), "{err}");
    let err = match Gateway::bind(&path, |k| {
        (k == "WEIR_ADMIN_TOKEN_FILE").then(|| "/nonexistent/weir-token".to_owned())
    })
    .await
    {
        Ok(_) => panic!("started without its admin token"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("WEIR_ADMIN_TOKEN_FILE"), "{err}");
}
