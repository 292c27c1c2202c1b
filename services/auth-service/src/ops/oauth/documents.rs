//! Client ID Metadata Documents (the MCP 2026-07-28 default): a `client_id` that is an
//! `https` URL names a JSON document describing the client, which this server fetches,
//! validates and caches.
//!
//! The fetcher is hardened against server-side request forgery, as the MCP security best
//! practices ask: `https` only; the host resolved here and every address checked (loopback,
//! private, link-local and cloud-metadata ranges, CGNAT, multicast, unspecified and
//! documentation ranges are refused, IPv4-mapped IPv6 included), then the connection made to
//! the checked address (pinned: no second resolution a rebinding DNS could answer
//! differently); at most [`MAX_REDIRECTS`] redirects, each hop checked the same way; at most
//! [`MAX_DOCUMENT_BYTES`] within [`FETCH_TIMEOUT`]; no cookies, no credentials. Documents are
//! cached by their `Cache-Control` (`max-age`, clamped to [`MAX_CACHE`]; `no-store` is not
//! cached). A URL that gave no usable document is not fetched again for [`REFUSAL_CACHE`],
//! and at most [`MAX_CONCURRENT_FETCHES`] fetches run at once (the others wait within their
//! [`FETCH_TIMEOUT`]), so authorization requests naming slow or broken URLs cannot make this
//! server fetch without bound.
//!
//! Tests need documents served from 127.0.0.1: [`TestAllowance`] allows named loopback
//! `host:port`s and a test CA. It is a field of [`super::OAuthSettings`] that no setting
//! reads, so only dev mode (`coffer up`) and tests, which build the configuration in code,
//! can enable it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;

use super::OAuthError;
use crate::store::{ClientOrigin, ClientRow};
use crate::{Error, Result};

/// Largest document accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest a fetch may take, redirects included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed.
pub(crate) const MAX_REDIRECTS: usize = 3;
/// Longest a document is cached, and how long when it says nothing.
pub(crate) const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_CACHE: Duration = Duration::from_secs(5 * 60);
/// Seconds a URL that gave no usable document is answered from memory with the same refusal.
pub(crate) const REFUSAL_CACHE: i64 = 30;
/// Fetches in flight at once.
pub(crate) const MAX_CONCURRENT_FETCHES: usize = 16;
/// Documents cached.
const CACHE_CAPACITY: NonZeroUsize = match NonZeroUsize::new(1000) {
    Some(n) => n,
    None => unreachable!(),
};

/// Dev mode and tests only: loopback `host:port`s whose documents may be fetched, and the
/// CA their certificates chain to. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct TestAllowance {
    /// `127.0.0.1:8443` and the like.
    pub hosts: Vec<String>,
    /// PEM of the CA that issued their certificates.
    pub ca_pem: Vec<u8>,
}

/// Fetches and caches client metadata documents.
pub(crate) struct Documents {
    tls: Arc<rustls::ClientConfig>,
    allowance: Option<TestAllowance>,
    /// By client id: what the URL gave, and until when (unix seconds) it is remembered.
    cache: Mutex<lru::LruCache<String, (Remembered, i64)>>,
    fetching: tokio::sync::Semaphore,
}

/// What a document URL gave.
#[derive(Clone)]
enum Remembered {
    /// A valid document.
    Client(Box<ClientRow>),
    /// No usable document: the refusal's description.
    Refused(String),
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("allowance", &self.allowance)
            .finish_non_exhaustive()
    }
}

/// A fetch that did not yield a usable document; the message is for the client.
fn invalid(why: impl Into<String>) -> Error {
    OAuthError::InvalidClient.because(why.into())
}

impl Documents {
    /// The fetcher, trusting Mozilla's roots (and the test CA of `allowance`).
    pub(crate) fn new(allowance: Option<TestAllowance>) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(allowance) = &allowance {
            for der in rustls_pki_types::pem::PemObject::pem_slice_iter(&allowance.ca_pem)
                .filter_map(std::result::Result::ok)
            {
                let der: CertificateDer<'static> = der;
                let _ = roots.add(der);
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        let tls = match tls {
            Ok(tls) => tls,
            // The default provider always supports the default versions.
            Err(_) => unreachable!("aws-lc-rs supports TLS 1.2 and 1.3"),
        };
        Self {
            tls: Arc::new(tls),
            allowance,
            cache: Mutex::new(lru::LruCache::new(CACHE_CAPACITY)),
            fetching: tokio::sync::Semaphore::new(MAX_CONCURRENT_FETCHES),
        }
    }

    /// The client a metadata-document `client_id` describes.
    ///
    /// # Errors
    /// [`OAuthError::InvalidClient`] saying why the document is unusable.
    pub(crate) async fn client(&self, client_id: &str, now: i64) -> Result<ClientRow> {
        if let Some((remembered, until)) = self.cached(client_id)
            && now < until
        {
            return match remembered {
                Remembered::Client(client) => Ok(*client),
                Remembered::Refused(why) => Err(invalid(why)),
            };
        }
        let url = document_url(client_id)?;
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
            let _permit = self
                .fetching
                .acquire()
                .await
                .map_err(|_| invalid("the document fetcher is shutting down"))?;
            let (body, max_age) = self.fetch(url).await?;
            Ok::<_, Error>((validate(client_id, &body, now)?, max_age))
        })
        .await
        .unwrap_or_else(|_| {
            Err(invalid(format!(
                "{client_id}: no answer within {FETCH_TIMEOUT:?}"
            )))
        });
        let remember = match &fetched {
            Ok((client, Some(max_age))) => Some((
                Remembered::Client(Box::new(client.clone())),
                now.saturating_add(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)),
            )),
            Err(Error::OAuth { description, .. }) => Some((
                Remembered::Refused(description.clone()),
                now.saturating_add(REFUSAL_CACHE),
            )),
            Ok((_, None)) | Err(_) => None,
        };
        if let Some(entry) = remember
            && let Ok(mut cache) = self.cache.lock()
        {
            cache.put(client_id.to_owned(), entry);
        }
        fetched.map(|(client, _)| client)
    }

    fn cached(&self, client_id: &str) -> Option<(Remembered, i64)> {
        self.cache.lock().ok()?.get(client_id).cloned()
    }

    /// GETs `url`, following checked redirects: the body and how long it may be cached
    /// (`None`: not at all).
    async fn fetch(&self, mut url: url::Url) -> Result<(Bytes, Option<Duration>)> {
        for _ in 0..=MAX_REDIRECTS {
            let address = self.checked_address(&url).await?;
            let response = self.get(&url, address).await?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| invalid(format!("{url}: a redirect without a location")))?;
                url = url
                    .join(location)
                    .map_err(|_| invalid(format!("{url}: a redirect to a bad location")))?;
                continue;
            }
            if status != http::StatusCode::OK {
                return Err(invalid(format!("{url} answered HTTP {status}")));
            }
            let max_age = cache_lifetime(response.headers());
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|_| invalid(format!("{url}: a document over {MAX_DOCUMENT_BYTES} bytes")))?
                .to_bytes();
            return Ok((body, max_age));
        }
        Err(invalid(format!("more than {MAX_REDIRECTS} redirects")))
    }

    /// The one address to connect to for `url`: `https`, resolved here, and public (or a
    /// test allowance).
    async fn checked_address(&self, url: &url::Url) -> Result<SocketAddr> {
        if url.scheme() != "https" {
            return Err(invalid(format!(
                "{url}: client metadata documents are https only"
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid(format!("{url}: no host")))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| invalid(format!("{host} does not resolve")))?
            .collect();
        let allowed = self
            .allowance
            .as_ref()
            .is_some_and(|a| a.hosts.iter().any(|h| *h == format!("{host}:{port}")));
        let Some(first) = addresses.first() else {
            return Err(invalid(format!("{host} does not resolve")));
        };
        if !allowed && let Some(bad) = addresses.iter().find(|a| !is_public(a.ip())) {
            return Err(invalid(format!(
                "{host} resolves to {}, which is not a public address",
                bad.ip()
            )));
        }
        Ok(*first)
    }

    /// One GET over TLS to the pinned `address`, with `url`'s host as the TLS name.
    async fn get(
        &self,
        url: &url::Url,
        address: SocketAddr,
    ) -> Result<http::Response<hyper::body::Incoming>> {
        let failed = |why: String| invalid(format!("fetching {url}: {why}"));
        let host = url.host_str().unwrap_or_default();
        let name = rustls_pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|_| failed("not a TLS server name".to_owned()))?;
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(connection);
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let request = http::Request::get(&url[url::Position::BeforePath..])
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| failed(e.to_string()))
    }
}

/// A metadata-document client id: an `https` URL with a path, no fragment, no credentials.
fn document_url(client_id: &str) -> Result<url::Url> {
    let url = url::Url::parse(client_id).map_err(|_| invalid("client_id is not a URL"))?;
    let usable = url.scheme() == "https"
        && url.path() != "/"
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && client_id.len() <= super::MAX_URI_LEN;
    if !usable {
        return Err(invalid(
            "a client_id URL is https, with a path, without a fragment or credentials",
        ));
    }
    Ok(url)
}

/// Whether an address may be fetched from: not loopback, private, link-local (169.254/16,
/// the cloud metadata address among them), CGNAT, unique-local, multicast, unspecified,
/// broadcast or documentation; IPv4-mapped and -compatible IPv6 judged as their IPv4.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || ip.segments()[..6] == [0; 6])
}

/// How long `Cache-Control` lets a document be kept: `no-store`/`no-cache` not at all,
/// `max-age` clamped to [`MAX_CACHE`], five minutes when it says nothing.
fn cache_lifetime(headers: &http::HeaderMap) -> Option<Duration> {
    let Some(value) = headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(DEFAULT_CACHE);
    };
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return None;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds.parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    match max_age {
        Some(age) if age.is_zero() => None,
        Some(age) => Some(age.min(MAX_CACHE)),
        None => Some(DEFAULT_CACHE),
    }
}

/// Checks a document: a JSON object whose `client_id` is exactly its URL, with redirect URIs
/// by the registration rules, a public client (`none`) for the authorization code grant.
fn validate(client_id: &str, body: &[u8], now: i64) -> Result<ClientRow> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| invalid("the client metadata is not JSON"))?;
    let text = |name: &str| document.get(name).and_then(serde_json::Value::as_str);
    if text("client_id") != Some(client_id) {
        return Err(invalid(
            "the document's client_id is not exactly the URL it was fetched from",
        ));
    }
    let list = |name: &str| -> Result<Vec<String>> {
        match document.get(name) {
            None => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| invalid(format!("{name}: a list of strings")))
                })
                .collect(),
            Some(_) => Err(invalid(format!("{name}: a list of strings"))),
        }
    };
    let redirect_uris = list("redirect_uris")?;
    let method = text("token_endpoint_auth_method").unwrap_or("none");
    if method != "none" {
        return Err(invalid(
            "token_endpoint_auth_method: only `none` for metadata-document clients",
        ));
    }
    let grants = list("grant_types")?;
    let grants = if grants.is_empty() {
        vec!["authorization_code".to_owned()]
    } else {
        grants
    };
    if !grants
        .iter()
        .all(|g| g == "authorization_code" || g == "refresh_token")
    {
        return Err(invalid(
            "grant_types: authorization_code and refresh_token only",
        ));
    }
    let application_type = match text("application_type") {
        Some(kind @ ("web" | "native")) => kind,
        Some(_) => return Err(invalid("application_type: web or native")),
        None => super::clients::inferred_application_type(&redirect_uris),
    };
    super::clients::check_redirect_uris(&redirect_uris, application_type)
        .map_err(|error| invalid(error.to_string()))?;
    let name = text("client_name").unwrap_or_default();
    let name = super::clients::check_client_name(name).map_err(|e| invalid(e.to_string()))?;
    Ok(ClientRow {
        client_id: client_id.to_owned(),
        origin: ClientOrigin::Document,
        client_name: name,
        redirect_uris,
        grant_types: grants.join(" "),
        auth_method: "none".to_owned(),
        secret_hash: None,
        jwks: None,
        application_type: application_type.to_owned(),
        resource: None,
        tenant: None,
        principal_id: None,
        scope: String::new(),
        create_time: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_may_be_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn a_document_must_name_its_own_url_and_safe_redirects() {
        let url = "https://client.example/mcp.json";
        let good = serde_json::json!({
            "client_id": url,
            "client_name": "Example",
            "redirect_uris": ["http://127.0.0.1:3000/callback"],
        });
        let client = validate(url, good.to_string().as_bytes(), 0).unwrap();
        assert_eq!(client.application_type, "native");
        let other = serde_json::json!({"client_id": "https://evil.example/x",
            "redirect_uris": ["https://evil.example/cb"]});
        assert!(validate(url, other.to_string().as_bytes(), 0).is_err());
        let unsafe_redirect = serde_json::json!({"client_id": url,
            "redirect_uris": ["http://evil.example/cb"]});
        assert!(validate(url, unsafe_redirect.to_string().as_bytes(), 0).is_err());
        assert!(validate(url, b"not json", 0).is_err());
        assert!(document_url("http://client.example/x").is_err());
        assert!(document_url("https://client.example/").is_err());
        assert!(document_url("https://u:p@client.example/x").is_err());
    }

    #[test]
    fn cache_headers_bound_the_cache() {
        let headers = |value: &str| {
            let mut map = http::HeaderMap::new();
            map.insert(http::header::CACHE_CONTROL, value.parse().unwrap());
            map
        };
        assert_eq!(cache_lifetime(&http::HeaderMap::new()), Some(DEFAULT_CACHE));
        assert_eq!(
            cache_lifetime(&headers("public, max-age=60")),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            cache_lifetime(&headers("max-age=99999999")),
            Some(MAX_CACHE)
        );
        assert_eq!(cache_lifetime(&headers("no-store")), None);
        assert_eq!(cache_lifetime(&headers("max-age=0")), None);
    }
}
