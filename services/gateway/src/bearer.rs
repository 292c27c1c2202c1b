//! What the gateway may learn from a bearer credential without verifying it (the services
//! verify; the gateway holds no key to): an API key's public id, and a JWT's claimed tenant and
//! subject. The access log names the principal this way, and the per-key rate limit counts by
//! the key id. Nothing secret comes out: not an API key's secret part, not a token's signature
//! or any other claim.
//!
//! A claim is only a claim: a forged token can name anyone, and the services then refuse it
//! (the access line's status says 401). The per-key limit is for a genuine key used too hard,
//! not against forgers, whom the per-address limit and auth-service's lockouts stop.

use std::fmt;

use base64::Engine as _;

/// A bearer as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// An `mcp_sk_` key: its public 12-character id.
    ApiKey(String),
    /// A JWT: the `tenant` and `sub` it claims.
    Token {
        /// The claimed tenant.
        tenant: String,
        /// The claimed subject.
        subject: String,
    },
}

/// The longest `authorization` value looked into.
const MAX_AUTHORIZATION: usize = 8 * 1024;
/// The longest id a claim may carry to be named.
const MAX_ID: usize = 64;

/// The bearer of an `authorization` header value, if it is a well-formed API key or a JWT
/// whose payload names a plain tenant and subject.
pub fn identify(authorization: Option<&http::HeaderValue>) -> Option<Bearer> {
    let value = authorization?;
    if value.len() > MAX_AUTHORIZATION {
        return None;
    }
    let credential = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    if let Some(rest) = credential.strip_prefix("mcp_sk_") {
        // `{id}_{secret}{checksum}`: only the id leaves this function.
        let (id, secret) = rest.split_once('_')?;
        return (id.len() == 12
            && secret.len() == 49
            && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| Bearer::ApiKey(id.to_owned()));
    }
    let mut parts = credential.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let plain = |claim: &str| {
        claims[claim]
            .as_str()
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= MAX_ID
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            })
            .map(str::to_owned)
    };
    Some(Bearer::Token {
        tenant: plain("tenant")?,
        subject: plain("sub")?,
    })
}

impl fmt::Display for Bearer {
    /// `apiKeys/{id}`, or `tenants/{tenant}/principals/{subject}` for a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bearer::ApiKey(id) => write!(f, "apiKeys/{id}"),
            Bearer::Token { tenant, subject } => {
                write!(f, "tenants/{tenant}/principals/{subject}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(value).unwrap()
    }

    fn token(claims: &serde_json::Value) -> String {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        format!(
            "{}.{}.c2lnbmF0dXJlU0VDUkVU",
            encode(br#"{"alg":"RS256"}"#),
            encode(claims.to_string().as_bytes())
        )
    }

    #[test]
    fn an_api_key_is_named_by_its_public_id_only() {
        let secret = "S".repeat(49);
        let key = format!("mcp_sk_AbCdEf012345_{secret}");
        let bearer = identify(Some(&header(&format!("Bearer {key}")))).unwrap();
        assert_eq!(bearer, Bearer::ApiKey("AbCdEf012345".into()));
        assert_eq!(bearer.to_string(), "apiKeys/AbCdEf012345");
        assert!(!bearer.to_string().contains(&secret[..8]));
        for malformed in [
            "mcp_sk_short_x".to_owned(),
            format!("mcp_sk_AbCdEf01234!_{secret}"),
            format!("mcp_sk_AbCdEf012345_{secret}x"),
            format!("Basic mcp_sk_AbCdEf012345_{secret}"),
        ] {
            assert_eq!(identify(Some(&header(&malformed))), None, "{malformed}");
            assert_eq!(
                identify(Some(&header(&format!("Bearer {malformed}")))),
                None,
                "{malformed}"
            );
        }
    }

    #[test]
    fn a_token_is_named_by_its_claimed_tenant_and_subject_and_nothing_else() {
        let claims = serde_json::json!({
            "tenant": "acme", "sub": "ada", "jti": "SECRETJTI", "scope": "org:admin"
        });
        let bearer = identify(Some(&header(&format!("Bearer {}", token(&claims))))).unwrap();
        assert_eq!(bearer.to_string(), "tenants/acme/principals/ada");
        for odd in [
            serde_json::json!({"tenant": "acme"}),
            serde_json::json!({"tenant": "acme", "sub": "a/b"}),
            serde_json::json!({"tenant": "a c", "sub": "ada"}),
            serde_json::json!({"tenant": "acme", "sub": "x".repeat(65)}),
            serde_json::json!({"tenant": 7, "sub": "ada"}),
        ] {
            assert_eq!(
                identify(Some(&header(&format!("Bearer {}", token(&odd))))),
                None,
                "{odd}"
            );
        }
        for garbage in ["Bearer a.b", "Bearer a.b.c.d", "Bearer !!.??.x", "Bearer "] {
            assert_eq!(identify(Some(&header(garbage))), None, "{garbage}");
        }
        assert_eq!(identify(None), None);
        let huge = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION));
        assert_eq!(identify(Some(&header(&huge))), None);
    }
}
