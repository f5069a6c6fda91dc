//! The upstream connection pool, over `hyper::client::conn::{http1, http2}`.
//!
//! Why an own pool rather than hyper-util's legacy `Client`: the legacy client
//! does, per request, a pool checkout through a `Mutex<HashMap>` of generic
//! keys, a lazily built connect future raced against the checkout, and, for
//! HTTP/1 responses with a body, a spawned task that waits for the connection
//! to become idle again before putting it back. Here a request takes the most
//! recently used idle connection (one lock, one hash of the endpoint string),
//! and the connection's own driver task, which is polled anyway when the
//! exchange ends, puts it back: no task is spawned per request.
//!
//! - **HTTP/1**: per endpoint a LIFO stack of idle connections (the warmest
//!   first), at most `max_idle` of them; an idle connection older than
//!   `idle_timeout` is never handed out and is closed by a sweep that runs
//!   every `idle_timeout`; a connection the upstream closes leaves the pool
//!   when its driver ends. Each connection is served by one spawned driver
//!   task for its whole life (with upgrades, so `101 Switching Protocols`
//!   hands the socket over).
//! - **HTTP/2**: one multiplexed connection per endpoint, shared by every
//!   request; connecting is serialised per endpoint so a burst opens one
//!   connection, not one per request. It is dropped from the pool once closed
//!   or unused for `idle_timeout`.
//! - **Connect**: TCP with `TCP_NODELAY` and keep-alive, bounded by the
//!   connect timeout; its failures are [`ClientError::is_connect`]. With
//!   [`UpstreamTls`] every new connection is mutual TLS (a pool is one
//!   upstream's, so plaintext and TLS connections never share a pool); with
//!   protocol `auto` the first connection to an endpoint asks ALPN whether
//!   it speaks HTTP/2, and the answer is kept for that endpoint.
//! - A request that a pooled connection could not send because the connection
//!   closed first (the upstream timed it out) is retried on another one; one
//!   that fails on a fresh connection is not.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client_error::ClientError;
use super::tls::{UpstreamIo, UpstreamTls};
use crate::body::Body;
use crate::hash::FastMap;

type H1Sender = http1::SendRequest<Body>;
type H2Sender = http2::SendRequest<Body>;

/// Requests retried on other pooled connections after finding theirs closed,
/// before one gets a fresh connection (which is never retried).
const MAX_POOLED_TRIES: usize = 16;
/// TCP keep-alive on upstream connections, as the legacy client had it.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// HTTP/2 PING interval while streams are open.
const H2_KEEPALIVE: Duration = Duration::from_secs(30);

/// How the pool behaves; from `ClientOptions`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSettings {
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

/// The connections of one upstream client, shared by its clones.
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PoolSettings,
    tls: Option<UpstreamTls>,
    /// Per endpoint, whether ALPN chose HTTP/2 (negotiating TLS pools only).
    alpn_h2: Mutex<FastMap<Box<str>, bool>>,
    /// Idle HTTP/1 connections per endpoint (`host:port`), most recent last.
    h1: Mutex<FastMap<Box<str>, Vec<Idle>>>,
    /// The HTTP/2 connection per endpoint; its async lock serialises connecting.
    h2: Mutex<FastMap<Box<str>, Arc<H2Slot>>>,
    sweeping: AtomicBool,
    /// Signalled whenever an HTTP/1 connection is put back, so requests
    /// waiting on a new connection can take it instead (see `send_h1`).
    returned: tokio::sync::Notify,
}

struct Idle {
    sender: H1Sender,
    since: Instant,
    conn: Arc<ConnSlot>,
}

/// An endpoint's HTTP/2 connection, once connected.
type H2Slot = tokio::sync::Mutex<Option<H2Conn>>;

struct H2Conn {
    sender: H2Sender,
    last_used: Instant,
}

/// What a request and its HTTP/1 connection's driver task share: where the
/// request leaves the connection's sender after the response head, for the
/// driver to put back into the pool once the exchange is over.
struct ConnSlot {
    key: Authority,
    pool: Weak<Inner>,
    parked: Mutex<Option<H1Sender>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(settings: PoolSettings, tls: Option<UpstreamTls>) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                tls,
                alpn_h2: Mutex::new(FastMap::default()),
                h1: Mutex::new(FastMap::default()),
                h2: Mutex::new(FastMap::default()),
                sweeping: AtomicBool::new(false),
                returned: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Whether ALPN picks the protocol per endpoint (see [`Self::negotiated_h2`]).
    pub(crate) fn negotiates(&self) -> bool {
        self.inner.tls.as_ref().is_some_and(UpstreamTls::negotiates)
    }

    /// Whether `endpoint` speaks HTTP/2, as ALPN answered on the first
    /// connection to it. That first connection is opened here and pooled,
    /// so the request that asked uses it.
    pub(crate) async fn negotiated_h2(&self, endpoint: &Authority) -> Result<bool, ClientError> {
        if let Some(h2) = lock(&self.inner.alpn_h2).get(endpoint.as_str()) {
            return Ok(*h2);
        }
        let io = self.open(endpoint).await?;
        let h2 = io.alpn_h2();
        lock(&self.inner.alpn_h2).insert(endpoint.as_str().into(), h2);
        if h2 {
            let sender = self.handshake_h2(io).await?;
            let slot = self.h2_slot(endpoint);
            let mut conn = slot.lock().await;
            if conn.as_ref().is_none_or(|c| c.sender.is_closed()) {
                *conn = Some(H2Conn {
                    sender,
                    last_used: Instant::now(),
                });
                self.inner.start_sweeping();
            }
        } else {
            let (sender, slot) = self.handshake_h1(io, endpoint).await?;
            self.inner.put(slot, sender);
        }
        Ok(h2)
    }

    /// Idle HTTP/1 connections to `endpoint` (those an upstream closed may
    /// still count until their driver notices).
    pub(crate) fn idle_h1(&self, endpoint: &Authority) -> usize {
        lock(&self.inner.h1)
            .get(endpoint.as_str())
            .map_or(0, Vec::len)
    }

    /// Sends `req` (origin-form URI, `Host` set) over an HTTP/1.1 connection to
    /// `endpoint`, pooled or new.
    pub(crate) async fn send_h1(
        &self,
        mut req: Request<Body>,
        endpoint: &Authority,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let pooled = if tries <= MAX_POOLED_TRIES {
                self.checkout_h1(endpoint)
            } else {
                None
            };
            let (mut sender, slot, reused) = match pooled {
                Some((sender, slot)) => (sender, slot, true),
                None if tries <= MAX_POOLED_TRIES => self.connect_or_returned(endpoint).await?,
                None => {
                    let (sender, slot) = self.connect_h1(endpoint).await?;
                    (sender, slot, false)
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    slot.park(sender);
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => req = r,
                    Some(_) => return Err(ClientError::canceled(e.into_error())),
                    None => return Err(ClientError::send(e.into_error())),
                },
            }
        }
    }

    /// Sends `req` (absolute URI) over the endpoint's HTTP/2 connection.
    pub(crate) async fn send_h2(
        &self,
        mut req: Request<Body>,
        endpoint: &Authority,
    ) -> Result<Response<Incoming>, ClientError> {
        let slot = self.h2_slot(endpoint);
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut sender, reused) = {
                let mut conn = slot.lock().await;
                match conn.as_mut() {
                    Some(c) if tries <= MAX_POOLED_TRIES && !c.sender.is_closed() => {
                        c.last_used = Instant::now();
                        (c.sender.clone(), true)
                    }
                    _ => {
                        let sender = self.connect_h2(endpoint).await?;
                        *conn = Some(H2Conn {
                            sender: sender.clone(),
                            last_used: Instant::now(),
                        });
                        self.inner.start_sweeping();
                        (sender, false)
                    }
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(r) if reused => req = r,
                    Some(_) => return Err(ClientError::canceled(e.into_error())),
                    None => return Err(ClientError::send(e.into_error())),
                },
            }
        }
    }

    fn h2_slot(&self, endpoint: &Authority) -> Arc<H2Slot> {
        let mut map = lock(&self.inner.h2);
        match map.get(endpoint.as_str()) {
            Some(slot) => slot.clone(),
            None => map.entry(endpoint.as_str().into()).or_default().clone(),
        }
    }

    /// A new connection to `endpoint`: TCP, then the TLS handshake when the
    /// pool has TLS, both within the connect timeout.
    async fn open(&self, endpoint: &Authority) -> Result<UpstreamIo, ClientError> {
        let timeout = self.inner.settings.connect_timeout;
        let tcp = connect(endpoint, timeout).await?;
        let Some(tls) = &self.inner.tls else {
            return Ok(UpstreamIo::Plain(tcp));
        };
        match tokio::time::timeout(timeout, tls.handshake(tcp, endpoint)).await {
            Ok(Ok(s)) => Ok(UpstreamIo::Tls(Box::new(s))),
            Ok(Err(e)) => Err(ClientError::connect(e)),
            Err(_) => Err(ClientError::connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("TLS handshake timed out after {timeout:?}"),
            ))),
        }
    }

    /// A new connection to `endpoint`, or an idle one put back while the new
    /// one is still connecting, whichever comes first (`reused` tells which).
    ///
    /// Under a burst every request finds the pool empty and connects; when
    /// the upstream's accept queue overflows, some connects wait a whole SYN
    /// retransmission (1 s) and would run into the connect timeout. A
    /// connection that finishes its exchange meanwhile serves such a request
    /// instead, as hyper-util's legacy pool did by racing checkout and
    /// connect.
    async fn connect_or_returned(
        &self,
        endpoint: &Authority,
    ) -> Result<(H1Sender, Arc<ConnSlot>, bool), ClientError> {
        let connecting = self.connect_h1(endpoint);
        tokio::pin!(connecting);
        loop {
            let returned = self.inner.returned.notified();
            tokio::pin!(returned);
            // Registered before looking, so a put between the look and the
            // wait is not missed.
            returned.as_mut().enable();
            if let Some((sender, slot)) = self.checkout_h1(endpoint) {
                return Ok((sender, slot, true));
            }
            tokio::select! {
                connected = &mut connecting => {
                    let (sender, slot) = connected?;
                    return Ok((sender, slot, false));
                }
                () = &mut returned => {}
            }
        }
    }

    /// The most recently used live idle connection to `endpoint`, if any.
    fn checkout_h1(&self, endpoint: &Authority) -> Option<(H1Sender, Arc<ConnSlot>)> {
        let timeout = self.inner.settings.idle_timeout;
        let mut stale = Vec::new();
        let found = {
            let mut map = lock(&self.inner.h1);
            let list = map.get_mut(endpoint.as_str())?;
            let now = Instant::now();
            let mut found = None;
            while let Some(idle) = list.pop() {
                if idle.sender.is_closed() || now.duration_since(idle.since) >= timeout {
                    stale.push(idle);
                    continue;
                }
                found = Some((idle.sender, idle.conn));
                break;
            }
            found
        };
        // Dropping a sender ends its connection: outside the lock.
        drop(stale);
        found
    }

    async fn connect_h1(
        &self,
        endpoint: &Authority,
    ) -> Result<(H1Sender, Arc<ConnSlot>), ClientError> {
        let io = self.open(endpoint).await?;
        self.handshake_h1(io, endpoint).await
    }

    async fn handshake_h1(
        &self,
        io: UpstreamIo,
        endpoint: &Authority,
    ) -> Result<(H1Sender, Arc<ConnSlot>), ClientError> {
        let (sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(ClientError::connect)?;
        let slot = Arc::new(ConnSlot {
            key: endpoint.clone(),
            pool: Arc::downgrade(&self.inner),
            parked: Mutex::new(None),
        });
        tokio::spawn(H1Driver {
            conn: conn.with_upgrades(),
            slot: slot.clone(),
        });
        Ok((sender, slot))
    }

    async fn connect_h2(&self, endpoint: &Authority) -> Result<H2Sender, ClientError> {
        let io = self.open(endpoint).await?;
        self.handshake_h2(io).await
    }

    async fn handshake_h2(&self, io: UpstreamIo) -> Result<H2Sender, ClientError> {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_KEEPALIVE)
            .keep_alive_while_idle(false)
            .adaptive_window(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(ClientError::connect)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        Ok(sender)
    }
}

impl Inner {
    /// Puts an HTTP/1 connection that finished its exchange back, or closes
    /// it when the endpoint already has `max_idle` idle ones.
    fn put(self: &Arc<Self>, conn: Arc<ConnSlot>, sender: H1Sender) {
        let rejected = {
            let mut map = lock(&self.h1);
            let list = match map.get_mut(conn.key.as_str()) {
                Some(list) => list,
                None => map.entry(conn.key.as_str().into()).or_default(),
            };
            if list.len() >= self.settings.max_idle {
                Some(sender)
            } else {
                list.push(Idle {
                    sender,
                    since: Instant::now(),
                    conn,
                });
                None
            }
        };
        if rejected.is_none() {
            self.start_sweeping();
            self.returned.notify_waiters();
        }
        drop(rejected);
    }

    /// Starts the sweep of expired idle connections: once per pool, on the
    /// runtime of the first connection put back; it ends with the pool.
    fn start_sweeping(self: &Arc<Self>) {
        if self.settings.idle_timeout.is_zero() || self.sweeping.load(Ordering::Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak = Arc::downgrade(self);
        let every = self.settings.idle_timeout;
        rt.spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.sweep();
            }
        });
    }

    /// Removes a closed connection from its endpoint's idle list.
    fn remove(&self, conn: &Arc<ConnSlot>) {
        let mut removed = Vec::new();
        {
            let mut map = lock(&self.h1);
            if let Some(list) = map.get_mut(conn.key.as_str()) {
                while let Some(i) = list.iter().position(|i| Arc::ptr_eq(&i.conn, conn)) {
                    removed.push(list.remove(i));
                }
            }
        }
        drop(removed);
    }

    /// Closes idle HTTP/1 connections older than `idle_timeout` or already
    /// closed, and forgets HTTP/2 connections that are closed or unused for
    /// as long.
    fn sweep(&self) {
        let timeout = self.settings.idle_timeout;
        let now = Instant::now();
        let mut stale = Vec::new();
        {
            let mut map = lock(&self.h1);
            for list in map.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    let idle = &list[i];
                    if idle.sender.is_closed() || now.duration_since(idle.since) >= timeout {
                        stale.push(list.remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
            map.retain(|_, list| !list.is_empty());
        }
        drop(stale);
        let mut dropped = Vec::new();
        {
            let map = lock(&self.h2);
            for slot in map.values() {
                if let Ok(mut conn) = slot.try_lock()
                    && conn.as_ref().is_some_and(|c| {
                        c.sender.is_closed() || now.duration_since(c.last_used) >= timeout
                    })
                {
                    dropped.push(conn.take());
                }
            }
        }
        drop(dropped);
    }
}

impl ConnSlot {
    /// Called by the request once the response head is in: the connection
    /// goes back to the pool now if its exchange is already over (no body),
    /// or is left here for the driver, which sees the end of the exchange.
    ///
    /// Both sides decide under the slot's lock: the request checks readiness
    /// after taking it, and the driver checks the slot after every poll of
    /// the connection (where readiness is set), so the hand-back is never lost.
    fn park(self: &Arc<Self>, sender: H1Sender) {
        let mut parked = lock(&self.parked);
        if sender.is_ready() {
            drop(parked);
            self.idle(sender);
        } else if !sender.is_closed() {
            *parked = Some(sender);
        }
    }

    /// After a poll of the connection: puts a parked sender back into the
    /// pool once the connection wants the next request.
    fn after_poll(self: &Arc<Self>) {
        let mut parked = lock(&self.parked);
        let Some(sender) = parked.as_ref() else {
            return;
        };
        if sender.is_ready() {
            let sender = parked.take();
            drop(parked);
            if let Some(sender) = sender {
                self.idle(sender);
            }
        } else if sender.is_closed() {
            parked.take();
        }
    }

    fn idle(self: &Arc<Self>, sender: H1Sender) {
        if let Some(pool) = self.pool.upgrade() {
            pool.put(self.clone(), sender);
        }
    }

    /// The connection ended (closed by either side, or upgraded).
    fn closed(self: &Arc<Self>) {
        let parked = lock(&self.parked).take();
        drop(parked);
        if let Some(pool) = self.pool.upgrade() {
            pool.remove(self);
        }
    }
}

pin_project_lite::pin_project! {
    /// Drives one HTTP/1 connection for its whole life and hands it back to
    /// the pool between exchanges.
    /// (`F` is hyper's connection with upgrades, a type it does not name.)
    struct H1Driver<F> {
        #[pin]
        conn: F,
        slot: Arc<ConnSlot>,
    }
}

impl<F: Future<Output = hyper::Result<()>>> Future for H1Driver<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.conn.poll(cx) {
            Poll::Ready(result) => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "upstream HTTP/1 connection ended with an error");
                }
                this.slot.closed();
                Poll::Ready(())
            }
            Poll::Pending => {
                this.slot.after_poll();
                Poll::Pending
            }
        }
    }
}

/// Opens a TCP connection to `endpoint` (an `ip:port`, or a name resolved
/// here), within `timeout`.
async fn connect(endpoint: &Authority, timeout: Duration) -> Result<TcpStream, ClientError> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = match endpoint.as_str().parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => tokio::net::lookup_host((endpoint.host(), endpoint.port_u16().unwrap_or(80)))
                .await?
                .collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the endpoint");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let stream = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ClientError::connect(e)),
        Err(_) => {
            return Err(ClientError::connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )));
        }
    };
    // Small requests and responses go out at once; dead peers are noticed.
    let _ = stream.set_nodelay(true);
    let _ = socket2::SockRef::from(&stream)
        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
    Ok(stream)
}
