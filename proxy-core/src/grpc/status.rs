//! Reading a call's outcome: `grpc-status` and `grpc-message`, in the
//! response headers (a trailers-only response) or in the trailers.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};

use super::Code;

pub const GRPC_STATUS: &str = "grpc-status";
pub const GRPC_MESSAGE: &str = "grpc-message";

/// The numeric `grpc-status` in a header map, if present and numeric.
pub fn status_number(headers: &HeaderMap) -> Option<u32> {
    headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The `grpc-status` of a header map as a [`Code`].
pub fn status(headers: &HeaderMap) -> Option<Code> {
    status_number(headers).map(Code::from_u32)
}

/// The decoded `grpc-message`, if any.
pub fn message(headers: &HeaderMap) -> Option<String> {
    headers
        .get(GRPC_MESSAGE)
        .map(|v| percent_decode(v.as_bytes()).into_owned())
}

/// A `grpc-message` value: the spec's percent-encoding of the UTF-8 text
/// (every byte outside printable ASCII, and `%`, as `%XX`).
pub fn encode_message(text: &str) -> HeaderValue {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&out).expect("printable ASCII only")
}

/// Decodes a percent-encoded `grpc-message`; malformed escapes are kept as
/// they are, as the spec asks.
pub fn percent_decode(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw);
    }
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_message() {
        let mut h = HeaderMap::new();
        assert_eq!(status(&h), None);
        h.insert(GRPC_STATUS, "14".parse().unwrap());
        h.insert(GRPC_MESSAGE, encode_message("bad: 100% ünavailable"));
        assert_eq!(status(&h), Some(Code::Unavailable));
        assert_eq!(h[GRPC_MESSAGE], "bad: 100%25 %C3%BCnavailable");
        assert_eq!(message(&h).as_deref(), Some("bad: 100% ünavailable"));
        h.insert(GRPC_STATUS, "x".parse().unwrap());
        assert_eq!(status(&h), None);
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(percent_decode(b"a%zz%4"), "a%zz%4");
        assert_eq!(percent_decode(b"%41%"), "A%");
    }
}
