//! The request-head size limit, checked on every request.
//!
//! hyper bounds an HTTP/1.1 head only by its read buffer (`max_buf_size`),
//! and checks it only while a head is still incomplete: once a keep-alive
//! connection's buffer has grown, a later request whose whole oversized head
//! arrives in one read is parsed and served. hyper's `max_header_size`, which
//! checks every parsed head, is not reachable through hyper-util's `auto`
//! builder. So the serving function measures each request's head itself and
//! refuses one over `max_header_bytes` with a `431` problem document,
//! whatever the protocol and whichever request of the connection it is.

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::Body;
use crate::problem::Problem;

/// The size of the head as HTTP/1.1 would carry it: request line, one
/// `name: value\r\n` per field, and the blank line. For HTTP/2 this is less
/// than what `max_header_list_size` counts (32 bytes per field), so a head
/// HTTP/2 accepted is never refused here.
pub(crate) fn head_size(parts: &Parts) -> usize {
    let target = parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + parts.uri.authority().map_or(0, |a| a.as_str().len());
    let line = parts.method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let fields: usize = parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + fields + 2
}

/// The `431` for a head over `max`.
pub(crate) fn too_large(parts: &Parts, size: usize, max: usize) -> Response<Body> {
    let mut resp = Problem::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request-header-fields-too-large",
        "Request Header Fields Too Large",
    )
    .detail(format!(
        "the request head is {size} bytes; this listener accepts at most {max}"
    ))
    .request_id_from(&parts.headers)
    .into_response();
    // The rest of the request (a body, pipelined requests) is not read.
    if parts.version < http::Version::HTTP_2 {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_head_as_http1_carries_it() {
        let wire = "GET /a?b=c HTTP/1.1\r\nhost: x\r\nx-long: 12345\r\n\r\n";
        let (parts, ()) = http::Request::get("/a?b=c")
            .header("host", "x")
            .header("x-long", "12345")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(head_size(&parts), wire.len());
    }
}
