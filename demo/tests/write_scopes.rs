//! Writes need write scopes. Statically: every route of the shipped gateway
//! configs that takes a writing method requires a `…:write` scope, every
//! route that reads a `…:read` scope (gRPC calls are all `POST`: the
//! read-only ones are listed in [`GRPC_READS`]). Live: the gateway started from
//! `config/gateway.yaml` (in front of a recording upstream) refuses a key
//! holding only read scopes with `403` on every write route, and grants the
//! catalog's admin header only on the write route, stripping it from clients
//! everywhere else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_core::shutdown;
use serde_norway::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WRITES: [&str; 4] = ["POST", "PUT", "PATCH", "DELETE"];

/// gRPC calls are all `POST`; these routes' calls only read, so they take a
/// read scope. Every other gRPC route changes something and needs a write scope.
const GRPC_READS: [&str; 5] = [
    "/weir.catalog.v1.CatalogService/GetProduct",
    "/weir.catalog.v1.CatalogService/ListProducts",
    "/grpc.health.v1.Health",
    "/grpc.reflection.v1.ServerReflection",
    "/grpc.reflection.v1alpha.ServerReflection",
];

/// A key holding every read scope and no write scope.
const READER_KEY: &str = "reader-key";
/// `sha256("reader-key")`.
const READER_SHA256: &str = "ec4408df15da46b328f6f3246fa723d0aa6cb0f0a0dd9c4626080ab1b02aa3b2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_shipped_write_route_requires_a_write_scope() {
    for file in [
        "config/gateway.yaml",
        "deploy/k8s/base/gateway/gateway.yaml",
    ] {
        let config = load(&root().join(file));
        for route in config["routes"].as_sequence().expect("routes") {
            let name = route["name"].as_str().expect("name");
            let methods = strings(&route["match"]["methods"]);
            let scopes = strings(&route["auth"]["scopes"]);
            let matched = route["match"]["path"]
                .as_str()
                .or(route["match"]["path_prefix"].as_str())
                .unwrap_or("");
            let grpc_read = GRPC_READS.contains(&matched);
            let writes = !grpc_read
                && (methods.is_empty() || methods.iter().any(|m| WRITES.contains(&m.as_str())));
            let reads = grpc_read
                || methods.is_empty()
                || methods.iter().any(|m| m == "GET" || m == "HEAD");
            assert!(
                !(writes && reads),
                "{file}: route {name} mixes reads and writes ({methods:?}); split it so each gets its scope"
            );
            if writes {
                assert!(
                    scopes.iter().any(|s| s.ends_with(":write")),
                    "{file}: write route {name} requires no write scope ({scopes:?})"
                );
            } else {
                assert!(
                    scopes.iter().any(|s| s.ends_with(":read")),
                    "{file}: read route {name} requires no read scope ({scopes:?})"
                );
            }
        }
        // The demo key can do what the README shows: read the catalog, place
        // and read orders, read payments, and change the catalog.
        let demo = &config["auth"]["api_keys"][0];
        assert_eq!(demo["name"], "demo");
        let granted = strings(&demo["scopes"]);
        for needed in [
            "catalog:read",
            "catalog:write",
            "orders:read",
            "orders:write",
            "payments:read",
        ] {
            assert!(
                granted.iter().any(|g| g == needed),
                "{file}: demo key lacks {needed}"
            );
        }
    }
}

/// One request as the upstream saw it: the request line and headers, lowercased names.
#[derive(Clone, Debug)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An upstream that answers every request `200 {}` and records it.
async fn recording_upstream() -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                if let Some(request) = serve_one(socket).await {
                    log.lock().expect("log").push(request);
                }
            });
        }
    });
    (addr, seen)
}

async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).ok()
}

async fn serve_one(mut socket: TcpStream) -> Option<Seen> {
    let head = read_head(&mut socket).await?;
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    socket
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        .await
        .ok()?;
    Some(Seen { line, headers })
}

/// Sends one request and returns the status code.
async fn send(gateway: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut socket = TcpStream::connect(gateway).await.expect("connect");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if WRITES.contains(&method) {
        request.push_str("content-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
    } else {
        request.push_str("\r\n");
    }
    socket.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut socket).await.expect("response head");
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status")
}

/// `config/gateway.yaml` with a reader key added, every upstream at
/// `upstream`, local listeners on ephemeral ports.
fn derived_config(upstream: SocketAddr, dir: &Path) -> PathBuf {
    let config_dir = root().join("config");
    let mut doc = load(&config_dir.join("gateway.yaml"));
    doc["listeners"][0]["address"] = Value::from("127.0.0.1:0");
    doc["admin"]["address"] = Value::from("127.0.0.1:0");
    for (_, u) in doc["upstreams"].as_mapping_mut().expect("upstreams") {
        u["endpoints"] = Value::Sequence(vec![Value::from(upstream.to_string())]);
    }
    for provider in doc["auth"]["jwt"].as_sequence_mut().expect("jwt") {
        let file = provider["jwks"]["file"]
            .as_str()
            .expect("jwks file")
            .to_owned();
        provider["jwks"]["file"] = Value::from(config_dir.join(file).display().to_string());
    }
    let reader: Value = serde_norway::from_str(&format!(
        "{{ name: reader, sha256: {READER_SHA256}, scopes: [catalog:read, orders:read, payments:read] }}"
    ))
    .expect("reader key");
    doc["auth"]["api_keys"]
        .as_sequence_mut()
        .expect("api_keys")
        .push(reader);
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, serde_norway::to_string(&doc).expect("yaml")).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_write_scope_gets_403_on_every_write_route() {
    let (upstream, seen) = recording_upstream().await;
    let dir = std::env::temp_dir().join(format!("weir-write-scopes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = derived_config(upstream, &dir);
    let gw = gateway::Gateway::bind(&path, |_| None)
        .await
        .expect("gateway binds");
    let addr = gw.local_addrs()["public"];
    let (stop, signal) = shutdown::channel();
    let serving = tokio::spawn(gw.serve(signal));
    let reader = [("x-api-key", READER_KEY)];
    let app_requests = |seen: &Arc<Mutex<Vec<Seen>>>| -> Vec<Seen> {
        seen.lock()
            .expect("log")
            .iter()
            .filter(|s| !s.line.contains("/healthz"))
            .cloned()
            .collect()
    };

    // Reads pass with read scopes.
    assert_eq!(send(addr, "GET", "/v1/products", &reader).await, 200);
    assert_eq!(
        send(addr, "GET", "/v1/orders?customer=c", &reader).await,
        200
    );
    assert_eq!(
        send(addr, "GET", "/v1/payments?order_id=o", &reader).await,
        200
    );
    assert_eq!(
        send(
            addr,
            "POST",
            "/weir.catalog.v1.CatalogService/GetProduct",
            &reader
        )
        .await,
        200
    );
    let before = app_requests(&seen).len();

    // Every write route refuses the reader, and nothing reaches the upstream.
    for (method, path) in [
        ("POST", "/v1/products"),
        ("PUT", "/v1/products/p-1"),
        ("PATCH", "/v1/products/p-1"),
        ("DELETE", "/v1/products/p-1"),
        ("POST", "/products"),
        ("POST", "/v1/orders"),
        ("POST", "/weir.catalog.v1.CatalogService/ReserveStock"),
        ("POST", "/weir.catalog.v1.CatalogService/ReleaseReservation"),
    ] {
        assert_eq!(
            send(addr, method, path, &reader).await,
            403,
            "{method} {path}"
        );
    }
    // Writes the edge does not route at all.
    for (method, path) in [("POST", "/v1/payments"), ("POST", "/v2/products")] {
        assert_eq!(
            send(addr, method, path, &reader).await,
            405,
            "{method} {path}"
        );
    }
    assert_eq!(
        app_requests(&seen).len(),
        before,
        "no write reached the upstream"
    );

    // The demo key holds catalog:write: its write reaches catalog with the
    // admin header set by the gateway, not the one the client sent.
    let demo = [("x-api-key", "demo-key"), ("x-weir-admin", "false")];
    assert_eq!(send(addr, "POST", "/v1/products", &demo).await, 200);
    let write = app_requests(&seen).last().cloned().expect("the write");
    assert!(write.line.starts_with("POST /v1/products "), "{write:?}");
    assert_eq!(write.header("x-weir-admin"), Some("true"));
    // On a read route a client's admin header is stripped.
    let forged = [("x-api-key", READER_KEY), ("x-weir-admin", "true")];
    assert_eq!(send(addr, "GET", "/v1/products", &forged).await, 200);
    let read = app_requests(&seen).last().cloned().expect("the read");
    assert!(read.line.starts_with("GET /v1/products "), "{read:?}");
    assert_eq!(read.header("x-weir-admin"), None, "{read:?}");

    stop.trigger();
    serving.await.expect("gateway stops");
    std::fs::remove_dir_all(&dir).ok();
}
