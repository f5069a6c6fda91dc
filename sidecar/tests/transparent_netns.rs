//! Transparent mode end to end in network namespaces the test creates.
//!
//! A "pod" namespace gets the rules from `sidecar init-iptables` and the
//! sidecar binary running as another uid (as in a real pod, where the
//! proxy's uid is exempt from redirection); a "peer" namespace joined by a
//! veth pair plays another host. Plain connections the app (this test,
//! uid 0) makes to the peer's address must reach the sidecar, which recovers
//! the original destination and forwards. Every address used lives inside
//! these two namespaces.
//!
//! - `redirected_connections_reach_the_sidecar_with_their_original_destination`:
//!   the peer runs an HTTP server and two TCP echo servers; HTTP goes through
//!   a named destination, other TCP passes unchanged.
//! - `a_redirected_call_to_a_meshed_peer_leaves_the_pod_as_mutual_tls`: the
//!   peer's HTTP app is fronted by a second sidecar ("payment", inbound
//!   `strict`); the pod's sidecar loads its identity from cert-manager style
//!   files and names payment's SPIFFE ID on the destination for the peer's
//!   address. The app's plain request is redirected, leaves the pod as mutual
//!   TLS, and payment's app sees the caller's identity. `tcpdump` on the veth
//!   shows its marker never crossed in plaintext, while a control request to
//!   a `plaintext` destination did.
//!
//! Needs root, `ip`, `iptables` and `setpriv` (and `tcpdump` for the second
//! test); without them a test is skipped with a printed reason (and fails
//! under `CI=true`).

#![allow(unsafe_code)]

mod mesh;
mod netns;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mesh::ca::TestCa;
use mesh::id;
use netns::capture::{Capture, seen_in};
use netns::process::SidecarProcess;
use netns::{Net, have, in_ns, skip};

const PROXY_UID: u32 = 65534;
const OUTBOUND: u16 = 4140;
const INBOUND: u16 = 4143;
const ADMIN: u16 = 4191;
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MARKER: &str = "MTLS-SECRET-5d1e";
const CONTROL: &str = "CONTROL-PLAINTEXT-2b7c";

/// Serves forever (the thread ends with the test process). An HTTP server
/// answers with what it saw: its local address, whether the request had an
/// `x-request-id` (the sidecar adds one), the caller's identity as a
/// fronting sidecar reports it (`-` without one) and the path.
fn serve(listener: TcpListener, greet: Option<&'static [u8]>, http: bool) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                if http {
                    let local = conn.local_addr().unwrap();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut request_line = String::new();
                    let _ = reader.read_line(&mut request_line);
                    let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                    let mut request_id = false;
                    let mut peer = String::from("-");
                    // A head has at most a few dozen lines; a bound all the same.
                    for _ in 0..200 {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
                        request_id |= name.eq_ignore_ascii_case("x-request-id");
                        if name.eq_ignore_ascii_case("x-weir-peer-identity") {
                            value.trim().clone_into(&mut peer);
                        }
                    }
                    let body = format!(
                        "local={local} request-id={request_id} peer-identity={peer} path={path}"
                    );
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                if let Some(g) = greet {
                    let _ = conn.write_all(g);
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A plain HTTP/1.1 request (this test is the app: no TLS, no proxy
/// settings) and the whole response.
fn http_get(addr: SocketAddr, host: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut s = connect(addr);
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the first sample of `metrics` whose line starts with `prefix`.
fn metric(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {prefix} in:\n{metrics}"))
}

/// The two namespaces with the pod's rules written by the real subcommand,
/// or `None` (with the reason printed) when this machine cannot make them.
fn pod_with_rules(tools: &[&str]) -> Option<Net> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root");
        return None;
    }
    for tool in tools {
        if !have(tool) {
            skip(&format!(
                "`{tool}` is not installed (apt-get install iproute2 iptables util-linux tcpdump)"
            ));
            return None;
        }
    }
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            skip(&format!("cannot create network namespaces: {e}"));
            return None;
        }
    };
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.pod,
            env!("CARGO_BIN_EXE_sidecar"),
            "init-iptables",
        ])
        .args([
            "--inbound-port",
            &INBOUND.to_string(),
            "--outbound-port",
            &OUTBOUND.to_string(),
        ])
        .args([
            "--admin-port",
            &ADMIN.to_string(),
            "--proxy-uid",
            &PROXY_UID.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init-iptables: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("--uid-owner 65534"), "{printed}");
    Some(net)
}

/// A directory for the sidecars' files, readable by the proxy's uid,
/// removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(net: &Net) -> Scratch {
        let dir = std::env::temp_dir().join(format!("weir-netns-{}", net.pod));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch(dir)
    }

    fn config(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, yaml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// cert-manager's three files for `account`, in a directory only
    /// `owner` can read (as a Secret volume mounted for the proxy's uid).
    fn identity(&self, ca: &TestCa, account: &str, owner: u32) -> PathBuf {
        let dir = self.0.join(format!("{account}-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        ca.write_files(&id(account), &dir).unwrap();
        for file in ["tls.crt", "tls.key", "ca.crt"] {
            let path = dir.join(file);
            std::os::unix::fs::chown(&path, Some(owner), Some(owner)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::os::unix::fs::chown(&dir, Some(owner), Some(owner)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// `identity: files:` naming the three files in `dir`.
fn files_identity(dir: &Path) -> String {
    format!(
        "identity:\n  files:\n    cert: {}\n    key: {}\n    ca: {}\n",
        dir.join("tls.crt").display(),
        dir.join("tls.key").display(),
        dir.join("ca.crt").display()
    )
}

#[test]
fn redirected_connections_reach_the_sidecar_with_their_original_destination() {
    let Some(net) = pod_with_rules(&["ip", "iptables", "setpriv"]) else {
        return;
    };
    let scratch = Scratch::new(&net);

    // The peer host: HTTP on 8080, an echo on 7000 (detected as opaque), and a
    // server-speaks-first echo on 5432 (an opaque port: no detection wait).
    let peer_ip = net.peer_ip;
    in_ns(&net.peer, move || {
        serve(TcpListener::bind((peer_ip, 8080)).unwrap(), None, true);
        serve(TcpListener::bind((peer_ip, 7000)).unwrap(), None, false);
        serve(
            TcpListener::bind((peer_ip, 5432)).unwrap(),
            Some(b"READY\n"),
            false,
        );
    });

    // The sidecar, as its own uid, in transparent mode.
    let cfg = scratch.config(
        "sidecar.yaml",
        &format!(
            "service: app\ninbound:\n  address: 0.0.0.0:{INBOUND}\n  app: 127.0.0.1:8080\n\
             outbound:\n  address: 127.0.0.1:{OUTBOUND}\n  transparent: true\n  opaque_ports: [5432]\n\
             services:\n  peer:\n    endpoints: [{peer_ip}:8080]\n\
             admin:\n  address: 0.0.0.0:{ADMIN}\nshutdown: {{ drain: 1s }}\n"
        ),
    );
    let _proxy = SidecarProcess::start(&net.pod, &cfg, Some(PROXY_UID));

    let report = in_ns(&net.pod, move || {
        let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN));
        // 1. Plain HTTP to the peer's address: redirected, recognised as the
        //    `peer` destination, forwarded to the original destination.
        let resp = http_get(
            SocketAddr::from((peer_ip, 8080)),
            &format!("{peer_ip}:8080"),
            "/hello",
            &[],
        );
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains(&format!("local={peer_ip}:8080")), "{resp}");
        assert!(
            resp.contains("request-id=true"),
            "the sidecar handled it: {resp}"
        );

        // 2. Non-HTTP bytes: detected as opaque, passed through unchanged.
        let mut echo = connect(SocketAddr::from((peer_ip, 7000)));
        let msg = b"\x00\x01hello weir\xff\n";
        echo.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        echo.read_exact(&mut back).unwrap();
        assert_eq!(&back, msg);
        drop(echo);

        // 3. A listed opaque port where the server speaks first.
        let mut db = connect(SocketAddr::from((peer_ip, 5432)));
        let mut greeting = [0u8; 6];
        db.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting, b"READY\n");
        db.write_all(b"ping\n").unwrap();
        let mut pong = [0u8; 5];
        db.read_exact(&mut pong).unwrap();
        assert_eq!(&pong, b"ping\n");
        drop(db);

        http_get(admin, &admin.to_string(), "/metrics", &[])
    });

    let line = |prefix: &str| metric(&report, prefix);
    assert_eq!(
        line("weir_sidecar_transparent_connections_total{protocol=\"http1\"}"),
        1.0
    );
    assert_eq!(
        line("weir_sidecar_transparent_connections_total{protocol=\"opaque\"}"),
        2.0
    );
    assert_eq!(
        line(
            "weir_sidecar_requests_total{direction=\"outbound\",destination=\"peer\",status_class=\"2xx\"}"
        ),
        1.0
    );
}

#[test]
fn a_redirected_call_to_a_meshed_peer_leaves_the_pod_as_mutual_tls() {
    let Some(net) = pod_with_rules(&["ip", "iptables", "setpriv", "tcpdump"]) else {
        return;
    };
    let scratch = Scratch::new(&net);
    let ca = TestCa::new("mesh");
    let peer_ip = net.peer_ip;
    let payment_at = SocketAddr::from((peer_ip, INBOUND));

    // The peer host: its HTTP app on 8080, and payment's sidecar in front of
    // it, taking only mutual TLS from the trust domain.
    in_ns(&net.peer, move || {
        serve(TcpListener::bind((peer_ip, 8080)).unwrap(), None, true);
    });
    let payment_tls = scratch.identity(&ca, "payment", 0);
    let payment_cfg = scratch.config(
        "payment.yaml",
        &format!(
            "service: payment\n{}inbound:\n  address: {payment_at}\n  app: {peer_ip}:8080\n  tls: {{ mode: strict }}\n\
             outbound:\n  address: 127.0.0.1:{OUTBOUND}\nadmin:\n  address: 127.0.0.1:{ADMIN}\nshutdown: {{ drain: 1s }}\n",
            files_identity(&payment_tls)
        ),
    );
    let _payment = SidecarProcess::start(&net.peer, &payment_cfg, None);

    // The pod's sidecar, as its own uid, with its identity from files only
    // that uid can read. The peer's address as payment names the identity
    // it must prove; the peer's plain app port stays plaintext (with an
    // identity every destination would be mutual TLS by default).
    // (`\x20` keeps the indent a line continuation would eat.)
    let order_tls = scratch.identity(&ca, "order", PROXY_UID);
    let order_cfg = scratch.config(
        "order.yaml",
        &format!(
            "service: order\n{}inbound:\n  address: 0.0.0.0:{INBOUND}\n  app: 127.0.0.1:8080\n\
             outbound:\n  address: 127.0.0.1:{OUTBOUND}\n  transparent: true\n\
             services:\n  payment:\n    endpoints: [{payment_at}]\n    tls: {{ identity: {} }}\n\
             \x20 peer:\n    endpoints: [{peer_ip}:8080]\n    tls: {{ mode: plaintext }}\n\
             admin:\n  address: 0.0.0.0:{ADMIN}\nshutdown: {{ drain: 1s }}\n",
            files_identity(&order_tls),
            id("payment"),
        ),
    );
    let _order = SidecarProcess::start(&net.pod, &order_cfg, Some(PROXY_UID));

    let capture = Capture::start(&net.pod, &net.pod_dev);
    let (meshed, control, order_metrics) = in_ns(&net.pod, move || {
        // The app dials the peer's address in plain HTTP, with the marker in
        // its path and a header.
        let meshed = http_get(
            payment_at,
            &payment_at.to_string(),
            &format!("/v1/{MARKER}"),
            &[("x-marker", MARKER)],
        );
        // The control goes last: a `plaintext` destination, so the capture
        // must show it.
        let control = http_get(
            SocketAddr::from((peer_ip, 8080)),
            &format!("{peer_ip}:8080"),
            &format!("/control/{CONTROL}"),
            &[],
        );
        let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN));
        let metrics = http_get(admin, &admin.to_string(), "/metrics", &[]);
        (meshed, control, metrics)
    });
    // Once the capture holds the control request, every packet of the
    // meshed request before it is in the file too.
    let wire = capture.finish_after(CONTROL);
    let payment_metrics = in_ns(&net.peer, || {
        let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN));
        http_get(admin, &admin.to_string(), "/metrics", &[])
    });

    // Through payment's sidecar to its app, which saw the caller's identity.
    assert!(meshed.starts_with("HTTP/1.1 200"), "{meshed}");
    assert!(
        meshed.contains(&format!("local={peer_ip}:8080")),
        "{meshed}"
    );
    assert!(
        meshed.contains(&format!("peer-identity={} ", id("order"))),
        "payment's app saw the pod's identity: {meshed}"
    );
    assert!(meshed.contains(&format!("path=/v1/{MARKER}")), "{meshed}");
    // Straight to the app, in plaintext, with no identity.
    assert!(control.starts_with("HTTP/1.1 200"), "{control}");
    assert!(control.contains("peer-identity=- "), "{control}");

    let seen = |needle: &str| seen_in(&wire, needle);
    assert!(
        seen(CONTROL),
        "the capture sees plaintext HTTP when there is some"
    );
    assert!(
        !seen(MARKER),
        "the app's request crossed the veth in plaintext"
    );
    assert!(
        !seen("GET /v1/"),
        "an HTTP request line crossed in plaintext"
    );
    assert!(!seen(&id("order")), "the identity crossed in plaintext");

    let order = |prefix: &str| metric(&order_metrics, prefix);
    assert_eq!(
        order("weir_sidecar_transparent_connections_total{protocol=\"http1\"}"),
        2.0
    );
    for destination in ["payment", "peer"] {
        assert_eq!(
            order(&format!(
                "weir_sidecar_requests_total{{direction=\"outbound\",destination=\"{destination}\",status_class=\"2xx\"}}"
            )),
            1.0
        );
    }
    assert_eq!(
        order("weir_sidecar_destination_transport{destination=\"payment\",transport=\"mtls\"}"),
        1.0
    );
    let payment = |prefix: &str| metric(&payment_metrics, prefix);
    assert_eq!(
        payment(&format!(
            "weir_sidecar_inbound_peer_requests_total{{peer=\"{}\",decision=\"allowed\"}}",
            id("order")
        )),
        1.0
    );
    assert_eq!(
        payment("weir_sidecar_inbound_connections_total{transport=\"tls\"}"),
        1.0
    );
}
