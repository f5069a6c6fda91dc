//! One small HTTP(S) client for the two calls this crate makes: a workload
//! asking the issuer for a certificate, and the issuer asking the Kubernetes
//! API server to review a token. Both are a single JSON POST with a bearer
//! token over a connection opened for it, with a bounded answer.
//!
//! A connection per call is deliberate: the calls are rare (one per
//! certificate lifetime, one per CSR) and a fresh connection means a fresh
//! TLS handshake against the trust anchor each time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    #[error("invalid URL {0:?}: needs http:// or https://, a host and a port or default port")]
    Url(String),
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {authority} failed: {source}")]
    Tls {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("the response body is larger than {0} bytes or broke off")]
    Body(usize),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// A response: status, content type and the (bounded) body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

/// A client config that trusts exactly `anchors` (no system roots), with
/// the process's one crypto provider.
pub fn client_config(
    anchors: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for a in anchors {
        roots.add(a.clone())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(proxy_core::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// POSTs `body` as JSON to `uri`, over TLS with `tls` for `https://`.
pub async fn post_json(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    bearer: Option<&str>,
    body: Vec<u8>,
    max_answer: usize,
    timeout: Duration,
) -> Result<Answer, HttpsError> {
    tokio::time::timeout(timeout, post_inner(uri, tls, bearer, body, max_answer))
        .await
        .map_err(|_| HttpsError::Timeout(timeout))?
}

async fn post_inner(
    uri: &Uri,
    tls: Option<&Arc<rustls::ClientConfig>>,
    bearer: Option<&str>,
    body: Vec<u8>,
    max_answer: usize,
) -> Result<Answer, HttpsError> {
    let bad_url = || HttpsError::Url(uri.to_string());
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad_url()),
    };
    let host = uri.host().ok_or_else(bad_url)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|source| HttpsError::Connect {
            authority: authority.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut req = Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "weir-identity")
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| bad_url())?;
    if let Some(token) = bearer {
        let value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| bad_url())?;
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    match (https, tls) {
        (true, Some(cfg)) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|_| bad_url())?;
            let stream = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| HttpsError::Tls { authority, source })?;
            send(TokioIo::new(stream), req, max_answer).await
        }
        (false, _) => send(TokioIo::new(tcp), req, max_answer).await,
        (true, None) => Err(bad_url()),
    }
}

async fn send<IO>(
    io: IO,
    req: Request<Full<Bytes>>,
    max_answer: usize,
) -> Result<Answer, HttpsError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let body = Limited::new(resp.into_body(), max_answer)
            .collect()
            .await
            .map_err(|_| HttpsError::Body(max_answer))?
            .to_bytes();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
    .await;
    conn.abort();
    result
}
