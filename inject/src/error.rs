//! Errors of the injector, the CLI and the webhook.

use std::path::PathBuf;

/// Why a manifest or a pod could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The input is not YAML; `line`/`column` are 1-based positions in the whole input.
    #[error("invalid YAML: {source}")]
    Yaml {
        line: usize,
        column: usize,
        #[source]
        source: serde_norway::Error,
    },
    /// YAML that has no line information (rare: errors found after parsing).
    #[error("invalid YAML in document {document}: {source}")]
    YamlDocument {
        document: usize,
        #[source]
        source: serde_norway::Error,
    },
    /// A document is YAML but not a Kubernetes object we can read.
    #[error("document {document} (starting at line {line}): {message}")]
    Manifest {
        document: usize,
        line: usize,
        message: String,
    },
    /// One or more `weir.dev/*` annotations are invalid.
    #[error("invalid weir.dev annotations: {}", problems.join("; "))]
    Annotations { problems: Vec<String> },
    /// The pod (or pod template) has the wrong shape, e.g. `spec.containers` is not a list.
    #[error("malformed pod: {0}")]
    Pod(String),
    /// A workload's pod template could not be injected.
    #[error("{workload}: {source}")]
    Workload {
        /// `kind/name`
        workload: String,
        #[source]
        source: Box<InjectError>,
    },
    /// Rendering the result back to YAML failed.
    #[error("cannot render YAML: {0}")]
    Render(#[source] serde_norway::Error),
}

impl InjectError {
    /// Adds document context to a pod-level error raised while injecting a manifest.
    pub(crate) fn in_document(self, document: usize, line: usize) -> Self {
        match self {
            InjectError::Annotations { .. }
            | InjectError::Pod(_)
            | InjectError::Workload { .. } => InjectError::Manifest {
                document,
                line,
                message: self.to_string(),
            },
            other => other,
        }
    }
}

/// Why the webhook server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no usable PEM {what} in {path}")]
    Pem { what: &'static str, path: PathBuf },
    #[error("invalid TLS certificate or key: {0}")]
    Tls(#[source] rustls::Error),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("accept failed: {0}")]
    Accept(#[source] std::io::Error),
}
