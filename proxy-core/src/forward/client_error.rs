//! Why sending a request to an upstream failed, as the pooled client reports it.
//!
//! The one distinction callers act on is whether the connection could be
//! established at all ([`ClientError::is_connect`]): then the request never
//! left, retrying it is safe for any method, and the answer is "connection
//! failed" rather than "upstream error". The cause (an `io::Error`, a
//! `hyper::Error`) stays reachable through `source()`, so body-limit breaches
//! and refused sockets are still found by walking the chain.

use std::error::Error as StdError;
use std::fmt;

use crate::body::BoxError;

/// A failed exchange with an upstream.
#[derive(Debug)]
pub struct ClientError {
    kind: Kind,
    source: BoxError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// TCP connect (or the HTTP/2 handshake) failed or timed out: nothing was sent.
    Connect,
    /// The connection closed before the request was written, on a connection
    /// that could not be replaced: nothing was sent either.
    Canceled,
    /// Writing the request or reading the response head failed.
    SendRequest,
}

impl ClientError {
    pub(crate) fn connect(source: impl Into<BoxError>) -> Self {
        Self {
            kind: Kind::Connect,
            source: source.into(),
        }
    }

    pub(crate) fn canceled(source: hyper::Error) -> Self {
        Self {
            kind: Kind::Canceled,
            source: Box::new(source),
        }
    }

    pub(crate) fn send(source: hyper::Error) -> Self {
        Self {
            kind: Kind::SendRequest,
            source: Box::new(source),
        }
    }

    /// The connection could not be established: the request was never sent.
    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }

    /// The request was never written to the upstream (connect failure, or a
    /// connection that closed before the request went out).
    pub fn is_unsent(&self) -> bool {
        matches!(self.kind, Kind::Connect | Kind::Canceled)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client error ({:?})", self.kind)
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}
