//! The mutating admission webhook: [`review`] answers one AdmissionReview,
//! [`server`] serves them over HTTPS with [`certs`], a certificate reloaded
//! when its files change.

pub mod certs;
pub mod review;
pub mod server;
