//! The mutating admission webhook: [`review`] answers one AdmissionReview,
//! [`server`] serves them over HTTPS.

pub mod review;
pub mod server;
