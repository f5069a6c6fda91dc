//! A minimal HTTP(S) GET for JWKS documents.
//!
//! One request every few minutes does not need a pooled client: each fetch
//! opens a connection (TLS through the workspace's one rustls stack with the
//! ring provider), sends one HTTP/1.1 request and reads a bounded body.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// JWK sets are small; anything bigger is a misconfigured URL.
const MAX_BODY: usize = 1024 * 1024;

/// CA bundles of common Linux distributions, tried when no `ca_file` is set.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("reading body: {0}")]
    Body(String),
    #[error("status {0}")]
    Status(StatusCode),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("bad URL: {0}")]
    Url(String),
}

/// How to reach one URL: the parsed URI and, for https, the TLS config.
#[derive(Clone)]
pub(crate) struct Target {
    uri: Uri,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    /// Parses the URL and, for https, loads the trusted roots (`ca_file`, or
    /// the system bundle).
    pub(crate) fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("invalid URL: {e}"))?;
        if uri.host().is_none() {
            return Err("the URL needs a host".to_owned());
        }
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(Arc::new(client_config(ca_file)?)),
            _ => return Err("only http:// and https:// URLs are supported".to_owned()),
        };
        Ok(Self { uri, tls })
    }

    pub(crate) async fn get(&self, timeout: Duration) -> Result<Bytes, FetchError> {
        tokio::time::timeout(timeout, self.get_inner())
            .await
            .map_err(|_| FetchError::Timeout(timeout))?
    }

    async fn get_inner(&self) -> Result<Bytes, FetchError> {
        let host = self
            .uri
            .host()
            .ok_or_else(|| FetchError::Url("no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let port = self.uri.port_u16().unwrap_or(default_port);
        let authority = format!("{host}:{port}");
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|source| FetchError::Connect {
                authority: authority.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.request(TokioIo::new(tcp)).await,
            Some(config) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| FetchError::Url(format!("bad host name: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(FetchError::Tls)?;
                self.request(TokioIo::new(tls)).await
            }
        }
    }

    async fn request<IO>(&self, io: IO) -> Result<Bytes, FetchError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        let conn = tokio::spawn(conn);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let host_header = self.uri.authority().map_or("", |a| a.as_str());
        let req = Request::get(path)
            .header(http::header::HOST, host_header)
            .header(
                http::header::ACCEPT,
                "application/json, application/jwk-set+json",
            )
            .header(http::header::USER_AGENT, "weir-gateway")
            .body(Empty::<Bytes>::new())
            .map_err(|e| FetchError::Url(e.to_string()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if !status.is_success() {
            conn.abort();
            return Err(FetchError::Status(status));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Body(e.to_string()))?
            .to_bytes();
        conn.abort();
        Ok(body)
    }
}

fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = match ca_file {
        Some(p) => p.to_path_buf(),
        None => SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.exists())
            .ok_or("no system CA bundle found; set ca_file")?
            .to_path_buf(),
    };
    let certs = CertificateDer::pem_file_iter(&bundle)
        .map_err(|e| format!("cannot read CA file {}: {e}", bundle.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad certificate in {}: {e}", bundle.display()))?;
        // A bundle may hold certificates rustls rejects; skipping them is
        // what every HTTPS client does with the system store.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!("no usable CA certificate in {}", bundle.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
