//! HTTP/1.1 keep-alive connections for the rows of HTTP peers and of Coffer's own gateway:
//! one connection per worker (as `wrk` does), plain or TLS, and one request at a time on it.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

/// At most this much of a response body is read.
const MAX_RESPONSE: usize = 64 * 1024;

/// One worker's connection.
pub type Connection = SendRequest<Full<Bytes>>;

/// Opens a connection to `addr`, over TLS with `tls` (the server named by its IP address).
///
/// # Errors
/// If the connection or the TLS handshake fails.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> anyhow::Result<Connection> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match tls {
        Some(tls) => {
            let stream = tls
                .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                .await?;
            handshake(stream).await
        }
        None => handshake(tcp).await,
    }
}

async fn handshake<S>(stream: S) -> anyhow::Result<Connection>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request to `uri` (absolute) with `headers`; an answer other than 2xx is an error
/// naming `label`, the method, the path and the status.
///
/// # Errors
/// If the request fails, the body cannot be read, or the status is not 2xx.
pub async fn call(
    connection: &mut Connection,
    label: &str,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<Bytes> {
    let mut with_type = headers.to_vec();
    with_type.push(("content-type", "application/json"));
    let answer = exchange(connection, label, method, uri, &with_type, body).await?;
    anyhow::ensure!(
        answer.status.is_success(),
        "{label} {method} {uri}: {}",
        answer.status
    );
    Ok(answer.body)
}

/// An answer of any status.
pub struct Answer {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body (at most 64 KiB).
    pub body: Bytes,
}

/// One request to `uri` (absolute) with exactly `headers`, whatever the answer's status.
///
/// # Errors
/// If the request fails or the body cannot be read.
pub async fn exchange(
    connection: &mut Connection,
    label: &str,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> anyhow::Result<Answer> {
    let mut request = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let path = request.uri().path().to_owned();
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    let (status, headers) = (response.status(), response.headers().clone());
    let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("{label} {path}: reading the answer: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}
