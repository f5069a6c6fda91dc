//! `grpc-timeout`: the deadline a gRPC client gives a call, as a header.
//!
//! The value is at most eight ASCII digits followed by a unit: `H` hours,
//! `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n`
//! nanoseconds (gRPC over HTTP/2 spec). A proxy honours it as the call's
//! timeout and, when it caps it with a shorter one of its own, tells the
//! upstream the shorter deadline, so the server stops working when nobody
//! waits any more.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

/// The header name.
pub const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value; `None` when it is malformed.
pub fn parse(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The `grpc-timeout` value for `d`: the finest unit whose count fits in
/// eight digits, rounded up so the upstream never sees a shorter deadline
/// than the one meant (beyond 99999999 hours it saturates).
pub fn format(d: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = d.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let n = nanos.div_ceil(per);
        if n <= MAX {
            return HeaderValue::from_str(&format!("{n}{unit}")).expect("digits and a letter");
        }
    }
    HeaderValue::from_static("99999999H")
}

/// The deadline a proxy enforces on a gRPC call whose own timeout is capped
/// by `cap` (a route's or destination's timeout): the shorter of the two.
/// When the cap is the shorter, the request's `grpc-timeout` is rewritten to
/// it (or added), so the upstream gives up when the proxy does. A malformed
/// `grpc-timeout` counts as absent.
pub fn cap(headers: &mut HeaderMap, cap: Option<Duration>) -> Option<Duration> {
    let asked = headers.get(GRPC_TIMEOUT).and_then(|v| parse(v.as_bytes()));
    match (asked, cap) {
        (Some(asked), Some(cap)) if cap < asked => {
            headers.insert(GRPC_TIMEOUT, format(cap));
            Some(cap)
        }
        (Some(asked), _) => Some(asked),
        (None, Some(cap)) => {
            headers.insert(GRPC_TIMEOUT, format(cap));
            Some(cap)
        }
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"S",
            b"10",
            b"10s",
            b"123456789S",
            b"-1S",
            b"1.5S",
            b" 1S",
        ] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_shorter_deadline_wins_and_the_upstream_is_told() {
        let mut h = HeaderMap::new();
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("10S"));
        assert_eq!(
            cap(&mut h, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse(h[GRPC_TIMEOUT].as_bytes()),
            Some(Duration::from_secs(1))
        );
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("100m"));
        assert_eq!(
            cap(&mut h, Some(Duration::from_secs(1))),
            Some(Duration::from_millis(100))
        );
        assert_eq!(h[GRPC_TIMEOUT], "100m");
        let mut none = HeaderMap::new();
        assert_eq!(cap(&mut none, None), None);
        assert!(none.is_empty());
        none.insert(GRPC_TIMEOUT, HeaderValue::from_static("bogus"));
        assert_eq!(cap(&mut none, None), None);
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format(Duration::from_millis(250)), "250000u");
        assert_eq!(format(Duration::from_secs(5)), "5000000u");
        assert_eq!(format(Duration::from_secs(3600)), "3600000m");
        assert_eq!(format(Duration::from_secs(86_400 * 365 * 100)), "52560000M");
        for d in [
            Duration::from_nanos(1),
            Duration::from_millis(1234),
            Duration::from_secs(7777),
        ] {
            let v = format(d);
            assert!(parse(v.as_bytes()).unwrap() >= d);
        }
    }
}
