//! The gRPC health checking protocol (`grpc.health.v1.Health/Check`) as an
//! active health check: an endpoint is healthy when it answers `SERVING` with
//! `grpc-status: 0`. A gRPC server's HTTP/2 port often has no plain HTTP
//! endpoint to `GET`, and the protocol lets it say that one service is down
//! while the process is up.
//!
//! The two messages are small enough to write by hand, which spares the
//! proxies a protobuf dependency: `HealthCheckRequest { string service = 1 }`
//! and `HealthCheckResponse { ServingStatus status = 1 }` (`SERVING = 1`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::Request;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::grpc::{self, Code};

const PATH: &str = "/grpc.health.v1.Health/Check";
/// `ServingStatus.SERVING`.
const SERVING: u64 = 1;
/// Far more than a `HealthCheckResponse` needs.
const MAX_RESPONSE: usize = 4096;

/// The request body: one uncompressed message frame.
pub(super) fn request_body(service: &str) -> Bytes {
    let mut msg = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        msg.push(0x0a); // field 1, length-delimited
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = Vec::with_capacity(5 + msg.len());
    frame.push(0);
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    frame.into()
}

/// Whether the endpoint at `addr` says `SERVING` within `timeout`.
pub(super) async fn check(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    body: Bytes,
    timeout: Duration,
) -> bool {
    let Ok(req) = Request::post(format!("http://{addr}{PATH}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "weir-health-check")
        .header(grpc::timeout::GRPC_TIMEOUT, grpc::timeout::format(timeout))
        .body(Full::new(body))
    else {
        return false;
    };
    let exchange = async {
        let resp = client.request(req).await.ok()?;
        if !resp.status().is_success() || !grpc::is_grpc(resp.headers()) {
            return None;
        }
        if let Some(code) = grpc::status(resp.headers()) {
            // Trailers-only: no message, so never SERVING.
            return (code == Code::Ok).then_some(false);
        }
        let collected = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .ok()?;
        let ok = collected
            .trailers()
            .and_then(grpc::status)
            .is_some_and(|c| c == Code::Ok);
        Some(ok && serving(collected.to_bytes()))
    };
    matches!(
        tokio::time::timeout(timeout, exchange).await,
        Ok(Some(true))
    )
}

/// Whether a response body (one message frame) says `SERVING`.
fn serving(mut body: Bytes) -> bool {
    if body.len() < 5 || body[0] != 0 {
        return false;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    if body.len() < len {
        return false;
    }
    let mut msg = body.split_to(len);
    let mut status = 0; // UNKNOWN when absent (proto3 default)
    while msg.has_remaining() {
        let Some(key) = get_varint(&mut msg) else {
            return false;
        };
        match (key >> 3, key & 7) {
            (1, 0) => match get_varint(&mut msg) {
                Some(v) => status = v,
                None => return false,
            },
            // Skip fields a newer server may add.
            (_, 0) => {
                if get_varint(&mut msg).is_none() {
                    return false;
                }
            }
            (_, 2) => match get_varint(&mut msg) {
                Some(n) if (n as usize) <= msg.remaining() => msg.advance(n as usize),
                _ => return false,
            },
            _ => return false,
        }
    }
    status == SERVING
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encodes_the_service() {
        let b = request_body("a.B");
        assert_eq!(&b[..], &[0, 0, 0, 0, 5, 0x0a, 3, b'a', b'.', b'B']);
        assert_eq!(&request_body("")[..], &[0, 0, 0, 0, 0]);
    }

    #[test]
    fn reads_the_serving_status() {
        let frame = |msg: &[u8]| {
            let mut f = vec![0, 0, 0, 0, msg.len() as u8];
            f.extend_from_slice(msg);
            Bytes::from(f)
        };
        assert!(serving(frame(&[0x08, 1])));
        assert!(!serving(frame(&[0x08, 2]))); // NOT_SERVING
        assert!(!serving(frame(&[]))); // UNKNOWN
        assert!(serving(frame(&[0x12, 1, b'x', 0x08, 1]))); // unknown field skipped
        assert!(!serving(frame(&[0x08])));
        assert!(!serving(Bytes::from_static(&[0, 0, 0])));
    }
}
