//! `x-request-id`: kept when the client sent a sane one, generated otherwise.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id we keep; longer ones are replaced, so a client
/// cannot bloat every log line and upstream header.
const MAX_LEN: usize = 128;

/// A new random id (128 bits, hex, UUID-shaped for familiarity).
pub fn new_request_id() -> HeaderValue {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    let s = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn is_valid(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b.iter().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        })
}

/// Makes sure the request carries a valid id and returns it.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&REQUEST_ID)
        && is_valid(v)
    {
        return v.clone();
    }
    let id = new_request_id();
    headers.insert(REQUEST_ID, id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(ensure_request_id(&mut h), "abc-123");

        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        let id = ensure_request_id(&mut h);
        assert_ne!(id, "has space");
        assert_eq!(id.len(), 36);
        assert_eq!(h[REQUEST_ID], id);

        let mut h = HeaderMap::new();
        let long = "a".repeat(200);
        h.insert(REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_ne!(ensure_request_id(&mut h), long.as_str());
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
