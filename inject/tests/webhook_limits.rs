//! The admission webhook is served by the same function as every gateway and
//! sidecar listener, over real TLS (rcgen certificates): connection cap,
//! head deadline after the handshake, idle timeout, and header limits on
//! every request of a keep-alive connection. Paused time, real sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_core::server::ConnLimits;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use weir_inject::{InjectOptions, serve_webhook_with_limits, webhook_limits};

const NAME: &str = "weir-webhook.weir-system.svc";

struct Webhook {
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    _stop: oneshot::Sender<()>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn limits() -> ConnLimits {
    ConnLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_header_bytes: 16 * 1024,
        ..webhook_limits()
    }
}

async fn start(limits: ConnLimits) -> Webhook {
    let key = rcgen::generate_simple_self_signed(vec![NAME.to_owned()]).expect("certificate");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = TempDir(std::env::temp_dir().join(format!(
        "weir-webhook-limits-{}-{nanos}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0).expect("dir");
    let (cert, key_path) = (dir.0.join("tls.crt"), dir.0.join("tls.key"));
    std::fs::write(&cert, key.cert.pem()).expect("cert");
    std::fs::write(&key_path, key.signing_key.serialize_pem()).expect("key");
    let tls = weir_inject::load_tls(&cert, &key_path).expect("tls");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_webhook_with_limits(
        listener,
        Some(tls),
        InjectOptions::default(),
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    Webhook {
        addr,
        client: Arc::new(client),
        _stop: stop,
        _dir: dir,
    }
}

impl Webhook {
    async fn tls(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(ServerName::try_from(NAME).expect("name"), tcp)
            .await
            .expect("handshake")
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: webhook\r\n\r\n";

/// Reads one response head and its Content-Length body; `None` if closed.
async fn response<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut have = buf.len() - end;
    while have < len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    Some(head)
}

async fn until_closed<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let read_all = async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    // A bound that never fires would hang the test: fail instead.
    tokio::time::timeout(Duration::from_secs(4 * 3600), read_all)
        .await
        .expect("the connection is still open after hours");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_after_the_handshake_is_cut_at_the_head_deadline() {
    let hook = start(limits()).await;
    let mut tls = hook.tls().await;
    let started = Instant::now();
    assert_eq!(until_closed(&mut tls).await, "");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn header_limits_hold_on_every_request_of_a_connection() {
    let hook = start(limits()).await;
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: webhook\r\nX-Big: {}\r\n\r\n",
        "x".repeat(20 * 1024)
    );
    for refused_at in [2, 3] {
        let mut tls = hook.tls().await;
        for i in 1..refused_at {
            tls.write_all(HEALTHZ).await.unwrap();
            let head = response(&mut tls).await.expect("answered");
            assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
        }
        let _ = tls.write_all(big.as_bytes()).await;
        let head = response(&mut tls).await.unwrap_or_default();
        assert!(
            head.starts_with("HTTP/1.1 431"),
            "request {refused_at}: {head:?}"
        );
    }
    // A stalled head on a later request is cut off too.
    let mut tls = hook.tls().await;
    tls.write_all(HEALTHZ).await.unwrap();
    response(&mut tls).await.expect("answered");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: webhook\r\nX-Partial: ")
        .await
        .unwrap();
    let started = Instant::now();
    assert!(!until_closed(&mut tls).await.contains(" 200 "));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let hook = start(ConnLimits {
        header_read_timeout: Duration::from_secs(3600),
        ..limits()
    })
    .await;
    let mut tls = hook.tls().await;
    tls.write_all(HEALTHZ).await.unwrap();
    response(&mut tls).await.expect("answered");
    let answered = Instant::now();
    until_closed(&mut tls).await;
    let lived = answered.elapsed();
    assert!(
        lived >= Duration::from_secs(60) && lived < Duration::from_secs(61),
        "{lived:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_connection_cap_holds_extra_clients_back() {
    let hook = start(limits()).await;
    let mut first = hook.tls().await;
    let mut second = hook.tls().await;
    for tls in [&mut first, &mut second] {
        tls.write_all(HEALTHZ).await.unwrap();
        response(tls).await.expect("answered");
    }
    // The third connects (kernel backlog) but gets no handshake while both slots are taken.
    let connector = tokio_rustls::TlsConnector::from(hook.client.clone());
    let third = tokio::spawn(async move {
        let tcp = TcpStream::connect(hook.addr).await.expect("connect");
        let tls = connector
            .connect(ServerName::try_from(NAME).expect("name"), tcp)
            .await
            .expect("handshake");
        (tls, hook)
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served with max_connections 2"
    );
    drop(first);
    let (mut tls, _hook) = third.await.unwrap();
    tls.write_all(HEALTHZ).await.unwrap();
    let head = response(&mut tls)
        .await
        .expect("answered once a slot frees");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
