//! The identity a peer proved: the SPIFFE ID in its leaf certificate.

use http::HeaderName;
use rustls_pki_types::CertificateDer;

use crate::identity::SpiffeId;

/// The header through which the inbound sidecar tells its app who called.
/// Clients cannot set it: it is removed from every incoming request and set
/// only from a verified client certificate.
pub const PEER_IDENTITY_HEADER: HeaderName = HeaderName::from_static("x-weir-peer-identity");

/// The verified identity of the client of a TLS connection, in each request's
/// extensions (and in [`ConnInfo::peer`](crate::server::ConnInfo)) when the
/// client presented a certificate that chains to the trust anchors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity(pub SpiffeId);

impl PeerIdentity {
    pub fn id(&self) -> &SpiffeId {
        &self.0
    }
}

/// The SPIFFE ID of a certificate: its one `spiffe://` URI SAN.
///
/// The X.509-SVID rules allow exactly one URI SAN; a certificate with none,
/// with several, or with a malformed one names no identity, so it proves none.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let mut uris = ee.valid_uri_names();
    let first = uris.next()?;
    if uris.next().is_some() {
        return None;
    }
    SpiffeId::parse(first).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_sans(sans: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans
            .iter()
            .map(|s| rcgen::SanType::URI(rcgen::string::Ia5String::try_from(*s).unwrap()))
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn reads_the_one_spiffe_uri() {
        let c = cert_with_sans(&["spiffe://weir.local/ns/default/sa/order"]);
        assert_eq!(
            spiffe_id_of(&c).unwrap().as_str(),
            "spiffe://weir.local/ns/default/sa/order"
        );
    }

    #[test]
    fn no_identity_from_none_several_or_malformed() {
        assert!(spiffe_id_of(&cert_with_sans(&[])).is_none());
        assert!(
            spiffe_id_of(&cert_with_sans(&[
                "spiffe://weir.local/ns/a/sa/x",
                "spiffe://weir.local/ns/a/sa/y"
            ]))
            .is_none()
        );
        assert!(spiffe_id_of(&cert_with_sans(&["https://weir.local/x"])).is_none());
        assert!(spiffe_id_of(&CertificateDer::from(vec![1, 2, 3])).is_none());
    }
}
