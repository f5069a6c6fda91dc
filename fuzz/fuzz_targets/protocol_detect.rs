//! The sidecar's protocol detector (transparent mode) on arbitrary first
//! bytes of a connection, fed as the listener sees them: a growing prefix.
//!
//! Checks: no panic; a decision never changes as more bytes arrive (the
//! detector may decide on a prefix); it waits (`None`) only while the bytes so
//! far could still become the HTTP/2 preface or a request line, so it always
//! decides within the 32 bytes it peeks; HTTP/2 exactly for the RFC 9113
//! preface, HTTP/1 exactly for a known method followed by a space; anything
//! else is opaque TCP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sidecar::fuzzing::{Protocol, classify_prefix};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
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

/// What the detector must answer for `buf`, from the definition.
fn expected(buf: &[u8]) -> Option<Protocol> {
    if buf.is_empty() {
        return None;
    }
    if buf.starts_with(PREFACE) {
        return Some(Protocol::Http2);
    }
    if METHODS.iter().any(|m| buf.starts_with(m)) {
        return Some(Protocol::Http1);
    }
    let could_grow = PREFACE.starts_with(buf) || METHODS.iter().any(|m| m.starts_with(buf));
    if could_grow {
        None
    } else {
        Some(Protocol::Opaque)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut decided: Option<(usize, Protocol)> = None;
    for n in 0..=data.len().min(64) {
        let got = classify_prefix(&data[..n]);
        assert_eq!(got, expected(&data[..n]), "prefix {:?}", &data[..n]);
        if n >= 32 {
            assert!(got.is_some(), "undecided after {n} bytes");
        }
        match (decided, got) {
            (Some((at, d)), g) => assert_eq!(g, Some(d), "decided {d:?} at {at} bytes, then {g:?}"),
            (None, Some(d)) => decided = Some((n, d)),
            (None, None) => {}
        }
    }
});
