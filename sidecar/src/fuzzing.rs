//! Entry points for the fuzz targets in `fuzz/`, which live outside this
//! crate and can only call public items. Not part of the sidecar's API.

use crate::transparent::{Detected, classify};

/// What [`classify_prefix`] decided about a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Opaque,
}

/// The transparent listener's protocol detector on `buf` (the bytes peeked
/// so far); `None` means it would wait for more bytes.
pub fn classify_prefix(buf: &[u8]) -> Option<Protocol> {
    classify(buf).map(|d| match d {
        Detected::Http1 => Protocol::Http1,
        Detected::Http2 => Protocol::Http2,
        Detected::Opaque => Protocol::Opaque,
    })
}
