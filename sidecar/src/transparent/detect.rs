//! Protocol detection from a connection's first bytes, without consuming them
//! (`peek`), so whatever is detected gets the untouched stream.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 connection preface (prior knowledge, e.g. gRPC).
    Http2,
    /// Anything else, or nothing within the timeout (server-speaks-first
    /// protocols such as MySQL or SMTP).
    Opaque,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const METHODS: &[&[u8]] = &[
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"CONNECT ",
];

/// Classifies `buf` (the bytes seen so far); `None` means "need more bytes".
pub(crate) fn classify(buf: &[u8]) -> Option<Detected> {
    if buf.is_empty() {
        return None;
    }
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Detected::Http2);
    }
    let mut undecided = false;
    for m in METHODS {
        let k = buf.len().min(m.len());
        if buf[..k] == m[..k] {
            if k == m.len() {
                return Some(Detected::Http1);
            }
            undecided = true;
        }
    }
    if undecided {
        None
    } else {
        Some(Detected::Opaque)
    }
}

/// Peeks at `stream` until its first bytes decide the protocol or `timeout`
/// passes (then: opaque).
pub(crate) async fn detect(stream: &TcpStream, timeout: Duration) -> std::io::Result<Detected> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 32];
    let mut seen = 0usize;
    loop {
        let wait = async {
            if seen > 0 {
                // Partial bytes are already buffered, so readiness would fire at
                // once: wait a moment for the rest instead of spinning.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            stream.peek(&mut buf).await
        };
        let n = match tokio::time::timeout_at(deadline, wait).await {
            Ok(r) => r?,
            Err(_) => return Ok(Detected::Opaque),
        };
        if n == 0 {
            // Closed before sending anything.
            return Ok(Detected::Opaque);
        }
        if let Some(d) = classify(&buf[..n]) {
            return Ok(d);
        }
        if n == buf.len() {
            return Ok(Detected::Opaque);
        }
        seen = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_prefixes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(classify(b"DELETE /x"), Some(Detected::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(Detected::Http2)
        );
        assert_eq!(classify(b"PRI * HT"), None);
        assert_eq!(classify(b"\x16\x03\x01\x02"), Some(Detected::Opaque));
        assert_eq!(classify(b"*1\r\n$4\r\nPING\r\n"), Some(Detected::Opaque));
        assert_eq!(classify(b"hello"), Some(Detected::Opaque));
    }

    #[tokio::test]
    async fn detects_over_a_socket_without_consuming() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"PO").await.unwrap();
            c.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.write_all(b"ST /orders HTTP/1.1\r\n").await.unwrap();
            c
        });
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(
            detect(&s, Duration::from_secs(5)).await.unwrap(),
            Detected::Http1
        );
        let mut s = s;
        let mut first = [0u8; 4];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"POST");
        drop(client.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_opaque_after_the_timeout() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        assert_eq!(
            detect(&s, Duration::from_secs(1)).await.unwrap(),
            Detected::Opaque
        );
    }
}
