//! Another Coffer service as a dependency: an [`Upstream`] (URL, the name its certificate
//! carries, the SPIFFE ID it must present), parsed from configuration the same way by every
//! service that calls another, and connected over mTLS with the SPIFFE ID checked in the
//! handshake (see [`coffer_transport::upstream`]).
//!
//! For a dependency `{NAME}` (e.g. `KEY_SERVICE`) in a service's section:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `{NAME}_URL` | required | `https://host:port` |
//! | `{NAME}_SERVER_NAME` | the URL's host | the DNS name or IP its certificate must carry |
//! | `{NAME}_IDENTITY` | `spiffe://{td}/{service}` | the SPIFFE ID its certificate must carry; `td` is the trust domain of this service's own certificate |

use coffer_config::Parser;
pub use coffer_transport::Upstream;
use coffer_transport::{SpiffeId, TlsMaterial};

/// The trust domain assumed when a service's own certificate names none.
pub const DEFAULT_TRUST_DOMAIN: &str = "coffer.local";

/// The trust domain of `tls`'s own certificate, or [`DEFAULT_TRUST_DOMAIN`].
pub fn trust_domain(tls: Option<&TlsMaterial>) -> String {
    tls.and_then(TlsMaterial::identity)
        .map_or(DEFAULT_TRUST_DOMAIN, SpiffeId::trust_domain)
        .to_owned()
}

/// `url` as the service `service` of `trust_domain`: verified as the URL's host and as
/// `spiffe://{trust_domain}/{service}`.
///
/// # Errors
/// If `url` is not `https://host:port` or the trust domain or service name is not valid in a
/// SPIFFE ID.
pub fn at(url: String, service: &str, trust_domain: &str) -> Result<Upstream, String> {
    let server_name = coffer_config::https_host(&url)
        .filter(|_| url.starts_with("https://"))
        .ok_or_else(|| "must be https://host:port".to_owned())?;
    let identity = SpiffeId::new(trust_domain, service).map_err(|e| e.to_string())?;
    Ok(Upstream {
        url,
        server_name,
        identity,
    })
}

/// As [`parse`] for a dependency a service can run without: `Some(None)` when `{name}_URL`
/// is unset (and then neither of the other two may be set); `None` with the problems recorded.
pub fn parse_optional(
    p: &mut Parser<'_>,
    name: &str,
    service: &str,
    trust_domain: &str,
) -> Option<Option<Upstream>> {
    if p.value(&format!("{name}_URL")).is_some() {
        return parse(p, name, service, trust_domain).map(Some);
    }
    let mut stray = false;
    for key in [format!("{name}_SERVER_NAME"), format!("{name}_IDENTITY")] {
        if p.value(&key).is_some() {
            p.error(&key, &format!("set without {name}_URL"));
            stray = true;
        }
    }
    (!stray).then_some(None)
}

/// Parses the dependency `name` (`{name}_URL`, `{name}_SERVER_NAME`, `{name}_IDENTITY`),
/// whose SPIFFE ID defaults to `spiffe://{trust_domain}/{service}`; `None` with the problems
/// recorded in `p`.
pub fn parse(
    p: &mut Parser<'_>,
    name: &str,
    service: &str,
    trust_domain: &str,
) -> Option<Upstream> {
    let url_key = format!("{name}_URL");
    // Every setting is read before any problem returns, so all of them are reported.
    let server_name = p.value(&format!("{name}_SERVER_NAME"));
    let identity = p.value(&format!("{name}_IDENTITY"));
    let url = p.required(&url_key)?;
    let mut upstream = at(url, service, trust_domain)
        .map_err(|why| p.error(&url_key, &why))
        .ok()?;
    if let Some(server_name) = server_name {
        upstream.server_name = server_name;
    }
    if let Some(identity) = identity {
        match SpiffeId::parse(&identity) {
            Ok(id) => upstream.identity = id,
            Err(_) => {
                p.error(&format!("{name}_IDENTITY"), "must be a spiffe:// ID");
                return None;
            }
        }
    }
    Some(upstream)
}
