//! Transparent mode end to end in network namespaces the test creates.
//!
//! A "pod" namespace gets the rules from `sidecar init-iptables` and a sidecar
//! process running as another uid (as in a real pod, where the proxy's uid is
//! exempt from redirection); a "peer" namespace joined by a veth pair plays
//! another host, with an HTTP server and two TCP echo servers. Plain
//! connections the app (this test, uid 0) makes to the peer's address must
//! reach the sidecar, which recovers the original destination and forwards:
//! HTTP through a named destination, other TCP unchanged. Every address used
//! lives inside these two namespaces.
//!
//! Needs root, `ip`, `iptables` and `setpriv`; without them it is skipped with
//! a printed reason (and fails under `CI=true`).

#![allow(unsafe_code)]

mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netns::{Net, have, in_ns, skip};

const PROXY_UID: u32 = 65534;
const OUTBOUND: u16 = 4140;
const INBOUND: u16 = 4143;
const ADMIN: u16 = 4191;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves forever (the thread ends with the test process).
fn serve(listener: TcpListener, greet: Option<&'static [u8]>, http: bool) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                if http {
                    let local = conn.local_addr().unwrap();
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut request_id = false;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        request_id |= line.to_ascii_lowercase().starts_with("x-request-id:");
                    }
                    let body = format!("local={local} request-id={request_id}");
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

fn http_get(addr: SocketAddr, host: &str, path: &str) -> String {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn redirected_connections_reach_the_sidecar_with_their_original_destination() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("needs root");
        return;
    }
    for tool in ["ip", "iptables", "setpriv"] {
        if !have(tool) {
            skip(&format!(
                "`{tool}` is not installed (apt-get install iproute2 iptables util-linux)"
            ));
            return;
        }
    }
    let net = match Net::create() {
        Ok(n) => n,
        Err(e) => {
            skip(&format!("cannot create network namespaces: {e}"));
            return;
        }
    };
    let bin = env!("CARGO_BIN_EXE_sidecar");

    // The pod's rules, written by the real subcommand.
    let out = Command::new("ip")
        .args(["netns", "exec", &net.pod, bin, "init-iptables"])
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
    let dir = std::env::temp_dir().join(format!("weir-netns-{}", net.pod));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sidecar.yaml");
    std::fs::write(
        &cfg,
        format!(
            "service: app\ninbound:\n  address: 0.0.0.0:{INBOUND}\n  app: 127.0.0.1:8080\n\
             outbound:\n  address: 127.0.0.1:{OUTBOUND}\n  transparent: true\n  opaque_ports: [5432]\n\
             services:\n  peer:\n    endpoints: [{peer_ip}:8080]\n\
             admin:\n  address: 0.0.0.0:{ADMIN}\nshutdown: {{ drain: 1s }}\n"
        ),
    )
    .unwrap();
    let uid = format!("--reuid={PROXY_UID}");
    let gid = format!("--regid={PROXY_UID}");
    let _proxy = Proxy(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.pod,
                "setpriv",
                &uid,
                &gid,
                "--clear-groups",
                bin,
                "run",
                "--config",
            ])
            .arg(&cfg)
            .env("WEIR_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let pod_ip = net.pod_ip;
    let report = in_ns(&net.pod, move || {
        let admin = SocketAddr::from(([127, 0, 0, 1], ADMIN));
        let mut up = false;
        for _ in 0..500 {
            if TcpStream::connect(admin).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(up, "the sidecar's admin port came up");

        // 1. Plain HTTP to the peer's address: redirected, recognised as the
        //    `peer` destination, forwarded to the original destination.
        let resp = http_get(
            SocketAddr::from((peer_ip, 8080)),
            &format!("{peer_ip}:8080"),
            "/hello",
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

        let _ = pod_ip;
        http_get(admin, &admin.to_string(), "/metrics")
    });

    let line = |prefix: &str| -> f64 {
        report
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no metric {prefix} in:\n{report}"))
    };
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
    std::fs::remove_dir_all(dir).ok();
}
