//! The OAuth 2.1 authorization server (for MCP clients): clients, the authorization code flow
//! with PKCE, the token endpoint and revocation. The HTTP side is the gateway's; this module
//! holds the state and the rules (MCP authorization specification 2026-07-28, OAuth 2.1,
//! RFC 7591, 8707, 9207).
//!
//! - [`clients`]: registration (RFC 7591), operator-created clients, client authentication.
//! - [`authorize`]: the authorization request, sign-in and consent.
//! - [`token`]: the token endpoint's grants and revocation.

pub(crate) mod authorize;
pub(crate) mod clients;
pub(crate) mod documents;
pub(crate) mod grants;
pub(crate) mod token;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_authn::{Scope, Scopes};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The `scope` value that asks for a refresh token.
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";
/// How long a pending authorization request waits for its user.
pub(crate) const REQUEST_TTL: i64 = 10 * 60;
/// How long an authorization code is valid (OAuth 2.1 says at most ten minutes).
pub(crate) const CODE_TTL: i64 = 5 * 60;
/// Longest `state`, `scope` and URI accepted.
pub(crate) const MAX_STATE_LEN: usize = 1000;
pub(crate) const MAX_SCOPE_LEN: usize = 1000;
pub(crate) const MAX_URI_LEN: usize = 2000;

/// An RFC 6749 (or RFC 7591, 8707) error code: the ErrorInfo reason of the status, in upper
/// case; the gateway answers with its lower-case form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed, or the client is unknown.
    InvalidClient,
    /// The code, refresh token or PKCE verifier is invalid, expired, revoked or not this
    /// client's.
    InvalidGrant,
    /// The client may not use this grant.
    UnauthorizedClient,
    /// Not a grant this server knows.
    UnsupportedGrantType,
    /// Not `code`.
    UnsupportedResponseType,
    /// A scope is unknown, or beyond what may be granted.
    InvalidScope,
    /// The `resource` (RFC 8707) is missing, repeated or not one of this server's.
    InvalidTarget,
    /// The user said no.
    AccessDenied,
    /// A redirect URI is unusable (RFC 7591), or not the client's.
    InvalidRedirectUri,
    /// Other client metadata is unusable (RFC 7591).
    InvalidClientMetadata,
}

impl OAuthError {
    /// The wire form, e.g. `invalid_grant`.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// The ErrorInfo reason: the code in upper case.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::InvalidClient => "INVALID_CLIENT",
            Self::InvalidGrant => "INVALID_GRANT",
            Self::UnauthorizedClient => "UNAUTHORIZED_CLIENT",
            Self::UnsupportedGrantType => "UNSUPPORTED_GRANT_TYPE",
            Self::UnsupportedResponseType => "UNSUPPORTED_RESPONSE_TYPE",
            Self::InvalidScope => "INVALID_SCOPE",
            Self::InvalidTarget => "INVALID_TARGET",
            Self::AccessDenied => "ACCESS_DENIED",
            Self::InvalidRedirectUri => "INVALID_REDIRECT_URI",
            Self::InvalidClientMetadata => "INVALID_CLIENT_METADATA",
        }
    }

    /// The gRPC code it travels with.
    pub(crate) fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidClient => tonic::Code::Unauthenticated,
            Self::UnauthorizedClient | Self::AccessDenied => tonic::Code::PermissionDenied,
            Self::InvalidGrant => tonic::Code::FailedPrecondition,
            _ => tonic::Code::InvalidArgument,
        }
    }

    /// An [`Error`] with this code and a description for the client (never a secret).
    pub(crate) fn because(self, description: impl Into<String>) -> Error {
        Error::OAuth {
            error: self,
            description: description.into(),
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A protected resource tokens may be requested for (RFC 8707), and the scopes it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its canonical URI, the tokens' `aud`.
    pub uri: String,
    /// The scopes a token for it may carry.
    pub scopes: Scopes,
}

/// The scopes of an MCP server that uses Coffer, unless configured otherwise.
pub(crate) const MCP_SCOPES: [Scope; 3] = [Scope::McpRead, Scope::McpWrite, Scope::McpAdmin];

impl Resource {
    /// Parses `URI` or `URI=scope,scope` (the scopes default to [`MCP_SCOPES`]).
    ///
    /// # Errors
    /// Why the entry is unusable.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let (uri, scopes) = match text.split_once('=') {
            Some((uri, scopes)) => {
                let scopes = Scopes::parse(&scopes.replace(',', " "))
                    .map_err(|unknown| format!("{uri}: unknown scope {unknown}"))?;
                (uri, scopes)
            }
            None => (text, MCP_SCOPES.into_iter().collect()),
        };
        let uri = canonical_resource(uri.trim()).ok_or_else(|| {
            format!(
                "{uri:?}: a resource is an absolute https URI (http only on loopback), no fragment"
            )
        })?;
        Ok(Self { uri, scopes })
    }
}

/// The authorization server's settings.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The resources tokens may be requested for, beside Coffer's own API (the audience, when
    /// it is a URI).
    pub resources: Vec<Resource>,
    /// How long a browser sign-in lasts.
    pub session_ttl: Duration,
    /// Dynamic registrations allowed per source per hour.
    pub registrations_per_hour: u32,
    /// Dev mode and tests only (no setting reads it): loopback hosts whose client metadata
    /// documents may be fetched (see [`documents`]).
    pub document_test_allowance: Option<documents::TestAllowance>,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            resources: Vec::new(),
            session_ttl: Duration::from_secs(30 * 60),
            registrations_per_hour: 20,
            document_test_allowance: None,
        }
    }
}

/// The canonical form of a resource URI (RFC 8707, RFC 9728): `https` (or `http` on a
/// loopback host), lower-case scheme and host, no fragment, and no trailing `/` when the path
/// is just `/`. `None` if it is not such a URI.
pub(crate) fn canonical_resource(text: &str) -> Option<String> {
    if text.len() > MAX_URI_LEN {
        return None;
    }
    let url = url::Url::parse(text).ok()?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !secure || url.fragment().is_some() || url.host().is_none() || !url.username().is_empty() {
        return None;
    }
    let text = url.as_str();
    Some(match url.path() {
        "/" if url.query().is_none() => text.trim_end_matches('/').to_owned(),
        _ => text.to_owned(),
    })
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

/// A requested `scope`: Coffer scopes, and whether `offline_access` was among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requested {
    pub(crate) scopes: Scopes,
    pub(crate) offline: bool,
}

impl Requested {
    /// Parses a `scope` parameter.
    ///
    /// # Errors
    /// [`OAuthError::InvalidScope`] for an unknown scope or too long a list.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_SCOPE_LEN {
            return Err(OAuthError::InvalidScope.because("scope is too long"));
        }
        let mut offline = false;
        let mut scopes = Vec::new();
        for name in text.split_ascii_whitespace() {
            if name == OFFLINE_ACCESS {
                offline = true;
            } else {
                scopes.push(Scope::parse(name).ok_or_else(|| {
                    OAuthError::InvalidScope.because(format!("unknown scope {name}"))
                })?);
            }
        }
        Ok(Self {
            scopes: scopes.into_iter().collect(),
            offline,
        })
    }

    /// The `scope` text of a grant: the scopes, and `offline_access` when a refresh token
    /// comes with it.
    pub(crate) fn text(scopes: &Scopes, offline: bool) -> String {
        let scopes = scopes.to_string();
        match (offline, scopes.is_empty()) {
            (false, _) => scopes,
            (true, true) => OFFLINE_ACCESS.to_owned(),
            (true, false) => format!("{scopes} {OFFLINE_ACCESS}"),
        }
    }
}

/// A fresh secret value: `prefix` and 256 random bits in base64url, and its stored hash.
pub(crate) fn new_secret(prefix: &str) -> Result<(String, String)> {
    let mut random = [0u8; 32];
    coffer_crypto::fill_random(&mut random)?;
    let value = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random));
    let hash = hash(&value);
    Ok((value, hash))
}

/// The stored form of a handle, session, code or secret: hex SHA-256.
pub(crate) fn hash(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Refuses a value longer than `max` bytes with `invalid_request` naming `field`.
pub(crate) fn bounded(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(
            OAuthError::InvalidRequest.because(format!("{field} is longer than {max} bytes"))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_canonical_https_or_loopback_uris() {
        assert_eq!(
            canonical_resource("HTTPS://MCP.Example.com/").as_deref(),
            Some("https://mcp.example.com")
        );
        assert_eq!(
            canonical_resource("https://mcp.example.com/mcp").as_deref(),
            Some("https://mcp.example.com/mcp")
        );
        assert_eq!(
            canonical_resource("http://127.0.0.1:8080/mcp").as_deref(),
            Some("http://127.0.0.1:8080/mcp")
        );
        for bad in [
            "http://mcp.example.com/",
            "https://mcp.example.com/#x",
            "mcp.example.com",
            "https://user@mcp.example.com/",
            "ftp://127.0.0.1/",
        ] {
            assert_eq!(canonical_resource(bad), None, "{bad}");
        }
        let parsed = Resource::parse("https://mcp.example.com/mcp=mcp:read,mcp:write").unwrap();
        assert_eq!(parsed.scopes.to_string(), "mcp:read mcp:write");
        assert!(Resource::parse("https://x.example/=mcp:root").is_err());
    }

    #[test]
    fn offline_access_is_a_flag_not_a_scope() {
        let requested = Requested::parse("mcp:read offline_access").unwrap();
        assert!(requested.offline);
        assert_eq!(requested.scopes.to_string(), "mcp:read");
        assert_eq!(
            Requested::text(&requested.scopes, true),
            "mcp:read offline_access"
        );
        let error = Requested::parse("mcp:read openid").unwrap_err();
        assert!(matches!(
            error,
            Error::OAuth {
                error: OAuthError::InvalidScope,
                ..
            }
        ));
    }
}
