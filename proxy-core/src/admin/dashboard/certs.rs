//! What the dashboard shows of a serving certificate: the names it is for
//! and when it expires.
//!
//! rustls does not expose a certificate's validity, and a full X.509 parser
//! is a large dependency for two fields, so this walks the DER of the
//! `TBSCertificate` (RFC 5280 §4.1) far enough to read `validity.notAfter`
//! and the subjectAltName extension. Anything it cannot read is an error
//! shown on the page, never a panic.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A certificate as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertSummary {
    /// DNS names and IP addresses of its subjectAltName.
    pub names: Vec<String>,
    /// `notAfter`, Unix milliseconds.
    pub not_after_unix_ms: i64,
}

impl CertSummary {
    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: SystemTime) -> i64 {
        let now_ms = match now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        (self.not_after_unix_ms - now_ms).div_euclid(86_400_000)
    }
}

/// Reads the summary of one DER certificate.
pub fn summarize(der: &[u8]) -> Result<CertSummary, String> {
    let (cert, _) = tlv(der, 0x30).ok_or("not a DER certificate")?;
    let (tbs, _) = tlv(cert, 0x30).ok_or("no TBSCertificate")?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest, 0xa0).ok_or("bad version")?.1;
    }
    rest = tlv(rest, 0x02).ok_or("bad serial")?.1;
    rest = tlv(rest, 0x30).ok_or("bad signature algorithm")?.1;
    rest = tlv(rest, 0x30).ok_or("bad issuer")?.1;
    let (validity, after_validity) = tlv(rest, 0x30).ok_or("bad validity")?;
    let not_before_rest = skip_any(validity).ok_or("bad notBefore")?;
    let not_after = time(not_before_rest).ok_or("unreadable notAfter")?;
    rest = tlv(after_validity, 0x30).ok_or("bad subject")?.1;
    rest = tlv(rest, 0x30).ok_or("bad public key")?.1;
    let mut names = Vec::new();
    while let Some(&tag) = rest.first() {
        let (body, next) = tlv(rest, tag).ok_or("bad optional field")?;
        if tag == 0xa3 {
            read_san(body, &mut names);
        }
        rest = next;
    }
    Ok(CertSummary {
        names,
        not_after_unix_ms: not_after,
    })
}

/// One TLV whose tag is `tag`: its contents and what follows.
fn tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in input.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let body = input.get(header..header.checked_add(len)?)?;
    Some((body, &input[header + len..]))
}

fn skip_any(input: &[u8]) -> Option<&[u8]> {
    tlv(input, *input.first()?).map(|(_, rest)| rest)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(input: &[u8]) -> Option<i64> {
    let tag = *input.first()?;
    let (body, _) = tlv(input, tag)?;
    let s = std::str::from_utf8(body).ok()?.strip_suffix('Z')?;
    let digits = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (year, off) = match tag {
        0x17 => {
            let yy = digits(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        0x18 => (digits(0..4)?, 4),
        _ => return None,
    };
    let month = digits(off..off + 2)?;
    let day = digits(off + 2..off + 4)?;
    let hour = digits(off + 4..off + 6)?;
    let min = digits(off + 6..off + 8)?;
    let sec = digits(off + 8..off + 10)?;
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Collects dNSName and iPAddress entries of the subjectAltName extension.
fn read_san(explicit: &[u8], names: &mut Vec<String>) {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let Some((mut exts, _)) = tlv(explicit, 0x30) else {
        return;
    };
    while let Some((ext, next)) = tlv(exts, 0x30) {
        exts = next;
        let Some((oid, mut rest)) = tlv(ext, 0x06) else {
            continue;
        };
        if oid != SAN_OID {
            continue;
        }
        if rest.first() == Some(&0x01) {
            rest = skip_any(rest).unwrap_or_default();
        }
        let Some((octets, _)) = tlv(rest, 0x04) else {
            return;
        };
        let Some((mut general, _)) = tlv(octets, 0x30) else {
            return;
        };
        while let Some(&tag) = general.first() {
            let Some((body, next)) = tlv(general, tag) else {
                return;
            };
            match tag {
                0x82 => names.push(String::from_utf8_lossy(body).into_owned()),
                0x87 if body.len() == 4 => {
                    let b: [u8; 4] = body.try_into().unwrap_or_default();
                    names.push(std::net::Ipv4Addr::from(b).to_string());
                }
                0x87 if body.len() == 16 => {
                    let b: [u8; 16] = body.try_into().unwrap_or_default();
                    names.push(std::net::Ipv6Addr::from(b).to_string());
                }
                0x86 => names.push(String::from_utf8_lossy(body).into_owned()),
                _ => {}
            }
            general = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_and_expiry_of_a_generated_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["api.example.com".into(), "127.0.0.1".into()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 3, 14);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let s = summarize(cert.der()).unwrap();
        assert_eq!(s.names, ["api.example.com", "127.0.0.1"]);
        // 2031-03-14T00:00:00Z
        assert_eq!(s.not_after_unix_ms, 1_931_212_800_000);
        let then =
            UNIX_EPOCH + std::time::Duration::from_millis(1_931_212_800_000 - 86_400_000 * 3);
        assert_eq!(s.days_left(then), 3);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(summarize(b"not der").is_err());
        assert!(summarize(&[0x30, 0x82, 0xff]).is_err());
    }
}
