//! The idle bound of tunnels: upgraded connections (WebSocket) and opaque TCP.
//!
//! Once a connection is a byte tunnel, no HTTP timer watches it any more; a
//! tunnel quiet in both directions would hold its connection slot forever.
//! [`TunnelIo`] fails a read or write that has waited longer than the bound
//! since the last byte moved through it, which ends `copy_bidirectional`
//! and closes both sides.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::accept::ConnSlot;

/// When the bound applies.
#[derive(Debug)]
enum Arm {
    Always,
    /// A client connection: only once it has switched protocols (the serving
    /// function sets the flag when a handler answers `101`); before that the
    /// HTTP idle bounds apply.
    OnUpgrade(Arc<AtomicBool>),
}

impl Arm {
    fn armed(&self) -> bool {
        match self {
            Arm::Always => true,
            Arm::OnUpgrade(flag) => flag.load(Ordering::Relaxed),
        }
    }
}

pin_project_lite::pin_project! {
    /// An IO object whose pending reads and writes fail with
    /// [`io::ErrorKind::TimedOut`] once no byte has moved through it for
    /// `idle`.
    ///
    /// For a client connection it also holds the connection's slot, so the
    /// slot is released when the socket closes, not when the HTTP task ends:
    /// an upgraded connection keeps its slot until its tunnel closes.
    pub struct TunnelIo<T> {
        #[pin]
        inner: T,
        idle: Duration,
        arm: Arm,
        last: Instant,
        sleep: Option<Pin<Box<Sleep>>>,
        slot: Option<ConnSlot>,
    }
}

impl<T> TunnelIo<T> {
    /// Bounds `inner` from now on.
    pub fn new(inner: T, idle: Duration) -> Self {
        Self::with_arm(inner, idle, Arm::Always, None)
    }

    /// A client connection: bounded once `upgraded` is set.
    pub(crate) fn client(
        inner: T,
        idle: Duration,
        upgraded: Arc<AtomicBool>,
        slot: ConnSlot,
    ) -> Self {
        Self::with_arm(inner, idle, Arm::OnUpgrade(upgraded), Some(slot))
    }

    fn with_arm(inner: T, idle: Duration, arm: Arm, slot: Option<ConnSlot>) -> Self {
        Self {
            inner,
            idle,
            arm,
            last: Instant::now(),
            sleep: None,
            slot,
        }
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

/// Ready with the error once the tunnel has been quiet for `idle`.
fn poll_quiet(
    arm: &Arm,
    last: Instant,
    idle: Duration,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
) -> Poll<io::Error> {
    if !arm.armed() {
        return Poll::Pending;
    }
    let deadline = last + idle;
    let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if sleep.deadline() != deadline {
        sleep.as_mut().reset(deadline);
    }
    match sleep.as_mut().poll(cx) {
        Poll::Ready(()) => Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("tunnel idle for {idle:?}"),
        )),
        Poll::Pending => Poll::Pending,
    }
}

impl<T: AsyncRead> AsyncRead for TunnelIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        match this.inner.poll_read(cx, buf) {
            Poll::Pending => match poll_quiet(this.arm, *this.last, *this.idle, this.sleep, cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                if buf.filled().len() > before {
                    *this.last = Instant::now();
                }
                ready
            }
        }
    }
}

impl<T: AsyncWrite> TunnelIo<T> {
    fn after_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match write(this.inner, cx) {
            Poll::Pending => match poll_quiet(this.arm, *this.last, *this.idle, this.sleep, cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            ready => {
                if matches!(ready, Poll::Ready(Ok(n)) if n > 0) {
                    *this.last = Instant::now();
                }
                ready
            }
        }
    }
}

impl<T: AsyncWrite> AsyncWrite for TunnelIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.after_write(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.after_write(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Copies bytes both ways until either side closes, or until the tunnel has
/// been quiet in both directions for `idle`. Returns the bytes copied
/// `a → b` and `b → a`.
pub async fn copy_bidirectional_idle<A, B>(a: A, b: B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    // Both sides are bounded: a tunnel whose copy is stuck writing to one
    // side while the other is silent must end too.
    let mut a = TunnelIo::new(a, idle);
    let mut b = TunnelIo::new(b, idle);
    tokio::io::copy_bidirectional(&mut a, &mut b).await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_quiet_tunnel_ends_after_the_bound() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let started = Instant::now();
        let tunnel = tokio::spawn(copy_bidirectional_idle(
            client,
            upstream,
            Duration::from_secs(60),
        ));
        // Traffic keeps it open past the bound...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client_peer.write_all(b"ping").await.unwrap();
            let mut got = [0u8; 4];
            upstream_peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
        }
        // ...and silence closes it one bound after the last byte.
        let err = tunnel.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(180));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unarmed_client_connection_is_not_bounded() {
        let (io, _peer) = tokio::io::duplex(64);
        let flag = Arc::new(AtomicBool::new(false));
        let mut io = TunnelIo::with_arm(io, Duration::from_secs(1), Arm::OnUpgrade(flag), None);
        let mut buf = [0u8; 4];
        let read = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await;
        assert!(read.is_err(), "the read was still waiting after 10 bounds");
    }
}
