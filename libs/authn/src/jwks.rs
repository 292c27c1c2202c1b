//! JSON Web Keys (RFC 7517) for RS256 public keys, identified by their RFC 7638 thumbprint.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// One RSA public signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `RSA`.
    pub kty: String,
    /// The key id: the RFC 7638 thumbprint of (`e`, `kty`, `n`).
    pub kid: String,
    /// Always `RS256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The modulus, base64url without padding, no leading zero bytes.
    pub n: String,
    /// The public exponent, base64url without padding.
    pub e: String,
}

/// A JWK Set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys; old ones stay until every token they signed has expired.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an RSA public key given as big-endian modulus and exponent bytes.
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> Self {
        let n = URL_SAFE_NO_PAD.encode(strip_leading_zeros(modulus));
        let e = URL_SAFE_NO_PAD.encode(strip_leading_zeros(exponent));
        Self {
            kty: "RSA".to_owned(),
            kid: thumbprint(&n, &e),
            alg: "RS256".to_owned(),
            use_: "sig".to_owned(),
            n,
            e,
        }
    }
}

/// The RFC 7638 thumbprint of an RSA key: base64url(SHA-256 of the canonical JSON
/// `{"e":"..","kty":"RSA","n":".."}`), members in lexicographic order, no whitespace.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 section 3.1: the example RSA key and its thumbprint.
    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn jwks_serialize_with_the_standard_member_names() {
        let jwk = Jwk::rsa(&[0, 0xc3, 0x01], &[0x01, 0x00, 0x01]);
        assert_eq!((jwk.n.as_str(), jwk.e.as_str()), ("wwE", "AQAB"));
        let json = serde_json::to_value(Jwks { keys: vec![jwk] }).unwrap();
        let key = &json["keys"][0];
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["kid"], thumbprint("wwE", "AQAB"));
    }
}
