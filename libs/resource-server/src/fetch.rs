//! One bounded HTTP(S) request for a JSON document (the authorization server's JWKS, an
//! introspection answer): HTTP/1.1,
//! at most [`MAX_BYTES`], within [`TIMEOUT`], no redirects followed, no cookies. `https`
//! needs the TLS configuration the caller gave; plain `http` is refused unless the host is a
//! loopback address (dev mode).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;

/// Largest document accepted.
pub(crate) const MAX_BYTES: usize = 256 * 1024;
/// Longest a fetch may take, connection included.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be fetched with this configuration.
    #[error("{0}")]
    Url(String),
    /// Connecting, TLS or HTTP failed, or it took too long.
    #[error("fetching {url}: {why}")]
    Transport {
        /// What was fetched.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// The answer was not a 200 with a JSON body within the limits.
    #[error("{url} answered {why}")]
    Answer {
        /// What was fetched.
        url: String,
        /// What was wrong.
        why: String,
    },
}

/// A POST of a form, with an `Authorization` header.
pub(crate) struct Form<'a> {
    pub(crate) authorization: &'a str,
    pub(crate) body: String,
}

/// GETs `url` (or POSTs `form` to it) and parses the answer's body as JSON.
///
/// # Errors
/// [`FetchError`].
pub(crate) async fn json(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    form: Option<Form<'_>>,
) -> Result<serde_json::Value, FetchError> {
    tokio::time::timeout(TIMEOUT, get(url, tls, form))
        .await
        .map_err(|_| FetchError::Transport {
            url: url.to_owned(),
            why: format!("no answer within {TIMEOUT:?}"),
        })?
}

async fn get(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    form: Option<Form<'_>>,
) -> Result<serde_json::Value, FetchError> {
    let parsed =
        url::Url::parse(url).map_err(|_| FetchError::Url(format!("{url:?} is not a URL")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| FetchError::Url(format!("{url}: no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| FetchError::Url(format!("{url}: no port")))?;
    let transport = |why: String| FetchError::Transport {
        url: url.to_owned(),
        why,
    };
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| transport(e.to_string()))?;
    let authority = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    let mut request = http::Request::builder()
        .uri(&parsed[url::Position::BeforePath..])
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json");
    let body = match form {
        Some(form) => {
            request = request
                .method(http::Method::POST)
                .header(http::header::AUTHORIZATION, form.authorization)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
            Full::new(Bytes::from(form.body))
        }
        None => Full::new(Bytes::new()),
    };
    let request = request
        .body(body)
        .map_err(|e| FetchError::Url(e.to_string()))?;
    let response = match parsed.scheme() {
        "https" => {
            let config = tls.ok_or_else(|| {
                FetchError::Url(format!("{url}: https needs a TLS configuration"))
            })?;
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|_| FetchError::Url(format!("{url}: not a TLS server name")))?;
            let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                .connect(name, stream)
                .await
                .map_err(|e| transport(e.to_string()))?;
            send(TokioIo::new(stream), request).await
        }
        "http" if is_loopback(&parsed) => send(TokioIo::new(stream), request).await,
        _ => {
            return Err(FetchError::Url(format!(
                "{url}: https only (http on a loopback host)"
            )));
        }
    }
    .map_err(transport)?;
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Answer {
            url: url.to_owned(),
            why: format!("HTTP {}", response.status()),
        });
    }
    let body = Limited::new(response.into_body(), MAX_BYTES)
        .collect()
        .await
        .map_err(|_| FetchError::Answer {
            url: url.to_owned(),
            why: format!("a body over {MAX_BYTES} bytes, or a broken one"),
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|_| FetchError::Answer {
        url: url.to_owned(),
        why: "a body that is not JSON".to_owned(),
    })
}

async fn send<I>(
    io: I,
    request: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

/// Whether a URL's host is a loopback address or `localhost`.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
