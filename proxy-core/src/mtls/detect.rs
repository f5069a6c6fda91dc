//! One port, two protocols: a TLS connection starts with a handshake record
//! (content type 22), which no HTTP/1 method and not the HTTP/2 preface
//! begin with, so the first byte tells them apart.

/// The first byte of a TLS record carrying a handshake message.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;

/// Whether a connection whose first byte is `first` speaks TLS.
pub fn looks_like_tls(first: u8) -> bool {
    first == TLS_HANDSHAKE_BYTE
}

#[cfg(test)]
mod tests {
    #[test]
    fn tells_tls_from_http() {
        assert!(super::looks_like_tls(0x16));
        for start in [&b"GET /"[..], b"POST /", b"PRI * HTTP/2.0", b"OPTIONS *"] {
            assert!(!super::looks_like_tls(start[0]));
        }
    }
}
