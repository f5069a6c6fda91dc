//! Chain verification shared by the acceptor and the connector: the peer's
//! chain must lead to one of the current trust anchors, be valid now and for
//! the usage, and name exactly one identity in our trust domain.

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, Error};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::KeyUsage;

use super::peer::spiffe_id_of;
use super::source::Material;
use crate::identity::SpiffeId;

/// The peer's verified identity, or why it is refused.
pub(crate) fn verify(
    material: &Material,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: KeyUsage,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<SpiffeId, Error> {
    let ee = webpki::EndEntityCert::try_from(end_entity)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    ee.verify_for_usage(
        algs.all,
        &material.anchors,
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map_err(pki_error)?;
    let id = spiffe_id_of(end_entity)
        .ok_or(Error::InvalidCertificate(CertificateError::NotValidForName))?;
    if id.trust_domain() != material.trust_domain() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
    }
    Ok(id)
}

/// The rustls error for a chain webpki refused, so the alert the peer gets
/// (and our debug log) says why: expired, unknown issuer, revoked…
fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as E;
    let c = match e {
        E::BadDer | E::BadDerTime => CertificateError::BadEncoding,
        E::CertExpired { .. } | E::InvalidCertValidity => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        E::CertRevoked => CertificateError::Revoked,
        _ => CertificateError::ApplicationVerificationFailure,
    };
    Error::InvalidCertificate(c)
}
