//! The upstream client's connection pool, against real upstreams on
//! 127.0.0.1: connections are counted where the upstream accepts them and
//! their closing is observed there too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_core::body;
use proxy_core::config::{HumanDuration, PoolConfig, Protocol};
use proxy_core::forward::{ClientOptions, ForwardError, UpstreamClient};
use proxy_core::resilience::{ErrorClass, classify_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Barrier, mpsc};

/// How the test upstream behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// HTTP/1.1 keep-alive.
    KeepAlive,
    /// HTTP/1.1, `Connection: close` on every response.
    Close,
    /// HTTP/2 (prior knowledge).
    H2,
}

struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// One message per connection the upstream saw end.
    closed: mpsc::UnboundedReceiver<()>,
}

impl Upstream {
    fn authority(&self) -> Authority {
        Authority::try_from(self.addr.to_string()).unwrap()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn next_close(&mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.closed.recv())
            .await
            .expect("the upstream saw a connection close")
            .expect("upstream running");
    }
}

/// An upstream answering `200 ok`; with `barrier`, each request first waits
/// there (so that concurrent requests really hold their connections at once).
async fn upstream(mode: Mode, barrier: Option<Arc<Barrier>>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let barrier = barrier.clone();
                    async move {
                        if let Some(b) = barrier {
                            b.wait().await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let io = TokioIo::new(stream);
                let _ = match mode {
                    Mode::H2 => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, svc)
                            .await
                    }
                    Mode::KeepAlive | Mode::Close => {
                        hyper::server::conn::http1::Builder::new()
                            .keep_alive(mode == Mode::KeepAlive)
                            .serve_connection(io, svc)
                            .await
                    }
                };
                let _ = tx.send(());
            });
        }
    });
    Upstream {
        addr,
        accepted,
        closed,
    }
}

fn client(protocol: Protocol, max_idle: usize, idle_timeout: Duration) -> UpstreamClient {
    UpstreamClient::new(&ClientOptions {
        protocol,
        connect_timeout: Duration::from_secs(5),
        pool: PoolConfig {
            max_idle_per_endpoint: max_idle,
            idle_timeout: HumanDuration(idle_timeout),
        },
    })
}

fn get(version: Version) -> Request<body::Body> {
    Request::builder()
        .uri("/hello")
        .version(version)
        .header("host", "example.test")
        .body(body::empty())
        .unwrap()
}

/// One request, its whole body read (which ends the HTTP/1 exchange).
async fn call(client: &UpstreamClient, up: &Upstream) -> Bytes {
    call_version(client, up, Version::HTTP_11).await
}

async fn call_version(client: &UpstreamClient, up: &Upstream, version: Version) -> Bytes {
    let resp = client
        .send_to(get(version), up.authority())
        .await
        .expect("upstream answers");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// Lets the runtime poll its sockets until `done` holds (bounded).
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let up = upstream(Mode::KeepAlive, None).await;
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    for _ in 0..5 {
        assert_eq!(call(&c, &up).await, "ok");
    }
    assert_eq!(
        up.accepted(),
        1,
        "one TCP connection for sequential requests"
    );
    let endpoint = up.authority();
    until(|| c.idle_connections(&endpoint) == 1).await;
}

#[tokio::test]
async fn clones_share_the_pool() {
    let up = upstream(Mode::KeepAlive, None).await;
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    call(&c, &up).await;
    call(&c.clone(), &up).await;
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn idle_connections_beyond_the_bound_are_closed() {
    let barrier = Arc::new(Barrier::new(3));
    let mut up = upstream(Mode::KeepAlive, Some(barrier)).await;
    let c = client(Protocol::Http1, 1, Duration::from_secs(90));
    // Three requests at once: the upstream holds each until all three are in,
    // so they cannot share a connection.
    let (a, b, d) = tokio::join!(call(&c, &up), call(&c, &up), call(&c, &up));
    assert_eq!(
        (a, b, d),
        (Bytes::from("ok"), Bytes::from("ok"), Bytes::from("ok"))
    );
    assert_eq!(up.accepted(), 3);
    // Only one may stay idle: the two others are closed.
    up.next_close().await;
    up.next_close().await;
    let endpoint = up.authority();
    until(|| c.idle_connections(&endpoint) == 1).await;
    assert!(up.closed.try_recv().is_err(), "the idle one stays open");
}

#[tokio::test(start_paused = true)]
async fn idle_connections_expire() {
    let mut up = upstream(Mode::KeepAlive, None).await;
    let c = client(Protocol::Http1, 16, Duration::from_secs(10));
    call(&c, &up).await;
    let endpoint = up.authority();
    until(|| c.idle_connections(&endpoint) == 1).await;
    // Past the idle timeout (the sweep runs every timeout): closed, and gone.
    tokio::time::sleep(Duration::from_secs(25)).await;
    up.next_close().await;
    assert_eq!(c.idle_connections(&endpoint), 0);
    call(&c, &up).await;
    assert_eq!(up.accepted(), 2, "a fresh connection after the expiry");
}

#[tokio::test]
async fn connection_closed_by_the_upstream_is_not_reused() {
    let mut up = upstream(Mode::Close, None).await;
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    call(&c, &up).await;
    up.next_close().await;
    call(&c, &up).await;
    assert_eq!(up.accepted(), 2);
    let endpoint = up.authority();
    until(|| c.idle_connections(&endpoint) == 0).await;
}

/// An upstream that answers one keep-alive request per connection, then
/// closes the socket without saying so (as servers do when their keep-alive
/// timeout is shorter than the pool's).
async fn closing_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, closed) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                drop(stream);
                let _ = tx.send(());
            });
        }
    });
    Upstream {
        addr,
        accepted,
        closed,
    }
}

#[tokio::test]
async fn idle_connection_closed_by_the_upstream_leaves_the_pool() {
    let mut up = closing_upstream().await;
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    call(&c, &up).await;
    up.next_close().await;
    let endpoint = up.authority();
    until(|| c.idle_connections(&endpoint) == 0).await;
    call(&c, &up).await;
    assert_eq!(up.accepted(), 2);
}

#[tokio::test]
async fn http2_requests_share_one_connection() {
    let up = upstream(Mode::H2, None).await;
    let c = client(Protocol::Http2, 16, Duration::from_secs(90));
    let (a, b, d) = tokio::join!(
        call_version(&c, &up, Version::HTTP_2),
        call_version(&c, &up, Version::HTTP_2),
        call_version(&c, &up, Version::HTTP_2)
    );
    assert_eq!(
        (a, b, d),
        (Bytes::from("ok"), Bytes::from("ok"), Bytes::from("ok"))
    );
    for _ in 0..3 {
        call_version(&c, &up, Version::HTTP_11).await;
    }
    assert_eq!(up.accepted(), 1, "one multiplexed connection");
}

#[tokio::test]
async fn auto_sends_each_version_on_its_own_protocol() {
    let h1 = upstream(Mode::KeepAlive, None).await;
    let c = client(Protocol::Auto, 16, Duration::from_secs(90));
    call_version(&c, &h1, Version::HTTP_11).await;
    let h2 = upstream(Mode::H2, None).await;
    call_version(&c, &h2, Version::HTTP_2).await;
    call_version(&c, &h2, Version::HTTP_2).await;
    assert_eq!((h1.accepted(), h2.accepted()), (1, 1));
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    let err = c.send(get(Version::HTTP_11), port).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(classify_error(&err), ErrorClass::Connect);
    let fwd = ForwardError::from_client("e".into(), err, 1024);
    assert!(fwd.is_connect());
    assert_eq!(fwd.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn upstream_failing_mid_exchange_is_not_a_connect_error() {
    // Accepts, reads the request, closes without an answer.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
    });
    let c = client(Protocol::Http1, 16, Duration::from_secs(90));
    let err = c.send(get(Version::HTTP_11), addr).await.unwrap_err();
    assert!(!err.is_connect(), "{err:?}");
    assert_eq!(classify_error(&err), ErrorClass::Other);
    assert_eq!(
        ForwardError::from_client("e".into(), err, 1024).kind(),
        "upstream-error"
    );
}

/// A request that finds the pool empty while its connect cannot complete
/// (the upstream's accept queue is full, so the kernel drops its SYN and
/// retries it a second later) is served by a connection put back meanwhile,
/// instead of waiting out the connect timeout: a burst is not answered with
/// 502s because a few connects hit a full accept queue.
#[tokio::test]
async fn a_request_waiting_on_a_connect_takes_a_connection_put_back() {
    use socket2::{Domain, Socket, Type};
    // An upstream whose accept queue holds one connection, and which accepts
    // exactly one: that connection answers once released.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    socket.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(std::net::TcpListener::from(socket)).unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(Some(released)));
    let count = accepted.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        count.fetch_add(1, Ordering::SeqCst);
        let svc = service_fn(move |_req: Request<Incoming>| {
            let wait = released.lock().unwrap().take();
            async move {
                if let Some(wait) = wait {
                    let _ = wait.await;
                }
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), svc)
            .await;
        // The listener lives (and accepts nothing more) until here.
        drop(listener);
    });
    let endpoint = Authority::try_from(addr.to_string()).unwrap();
    let client = client(Protocol::Http1, 8, Duration::from_secs(90));

    // A holds the one accepted connection until released.
    let a = tokio::spawn({
        let (client, endpoint) = (client.clone(), endpoint.clone());
        async move {
            let resp = client.send_to(get(Version::HTTP_11), endpoint).await?;
            let _ = resp.into_body().collect().await;
            Ok::<_, proxy_core::forward::ClientError>(())
        }
    });
    until(|| accepted.load(Ordering::SeqCst) == 1).await;
    // Fill the accept queue: the next connect's SYN is dropped.
    let _filler = tokio::net::TcpStream::connect(addr).await.unwrap();

    // B finds no idle connection and starts connecting (polled once).
    let b = client.send_to(get(Version::HTTP_11), endpoint.clone());
    tokio::pin!(b);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(b.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "B cannot be served yet");

    // A's answer puts its connection back; B takes it.
    release.send(()).unwrap();
    a.await.unwrap().unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), b)
        .await
        .expect("B is answered")
        .expect("B is served over the connection A put back");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}
