//! Mutual TLS between sidecars (and from the gateway to sidecars), with
//! workload identities as SPIFFE IDs.
//!
//! Both ends read their certificate, key and trust anchors from a
//! [`CredentialsWatch`](crate::identity::CredentialsWatch) through a
//! [`CredentialSource`]: every handshake takes the latest credentials, so a
//! rotation applies to the next connection while open ones keep theirs. What
//! a handshake needs from one version of the credentials (the signing key,
//! the parsed trust anchors) is built once per version and cached, not per
//! handshake.
//!
//! Peers are not checked by DNS name: a mesh certificate names a workload in
//! its URI SAN (`spiffe://<trust-domain>/ns/<ns>/sa/<account>`). A server
//! accepts clients whose chain leads to the anchors and whose identity is in
//! its trust domain; a client accepts a server whose identity is the one
//! expected for the destination.
//!
//! # Layout
//!
//! - `peer.rs`: the SPIFFE ID in a certificate, [`PeerIdentity`].
//! - `source.rs`: [`CredentialSource`], the per-version material cache.
//! - `chain.rs`: chain verification shared by both ends.
//! - `server.rs`: the acceptor's config (cert resolver, client verifier).
//! - `client.rs`: the connector's config (server verifier, client cert).
//! - `detect.rs`: telling a TLS client hello from plaintext on one port.

mod chain;
mod client;
mod detect;
mod peer;
mod server;
mod source;

pub use client::{ExpectedPeer, client_config};
pub use detect::{TLS_HANDSHAKE_BYTE, looks_like_tls};
pub use peer::{PEER_IDENTITY_HEADER, PeerIdentity, spiffe_id_of};
pub use server::{ClientAuth, server_config};
pub use source::CredentialSource;

/// ALPN protocol ids, most preferred first.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
