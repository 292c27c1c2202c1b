//! RS256 access tokens.
//!
//! [`SigningKey`] signs with aws-lc-rs directly (the workspace's one crypto backend; no `rsa`
//! crate and so no RUSTSEC-2023-0071 on the signing path). [`Verifier`] checks tokens with
//! jsonwebtoken (aws-lc-rs backend) after its own stricter checks on size and header, and with
//! jsonwebtoken's lax defaults tightened: see the table in `shared/DEPENDENCIES.md`.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lru::LruCache;
use secrecy::SecretSlice;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::Principal;
use crate::jwks::{Jwk, Jwks};
use crate::scope::{Role, Scopes};

/// Longest token accepted, checked before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Largest clock-skew leeway a [`Verifier`] may be configured with.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// The claims of a Coffer access token. Decoded into this typed struct, so a duplicated claim
/// is an error rather than "last one wins".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the principal id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds.
    pub nbf: i64,
    /// Unique token id (for revocation).
    pub jti: String,
    /// The principal's tenant.
    pub tenant: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Role names.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The id of the API key the token was exchanged for, if it was: revoking that key
    /// revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akid: Option<String>,
    /// The principal's role generation when the token was issued: a change of roles raises
    /// it, and tokens of an older generation are refused (they carry the old scopes).
    #[serde(default)]
    pub pgen: u64,
    /// The OAuth client the token was issued to (RFC 9068), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl Claims {
    /// The principal these claims speak for.
    ///
    /// # Errors
    /// [`Error::Invalid`] with [`Reason::Claims`] for an unknown scope or role.
    pub fn principal(&self) -> Result<Principal, Error> {
        let scopes = Scopes::parse(&self.scope).map_err(|_| Error::Invalid(Reason::Claims))?;
        let roles = self
            .roles
            .iter()
            .map(|r| Role::parse(r).ok_or(Error::Invalid(Reason::Claims)))
            .collect::<Result<_, _>>()?;
        Ok(Principal {
            tenant: self.tenant.clone(),
            subject: self.sub.clone(),
            scopes,
            roles,
            api_key: self.akid.clone(),
        })
    }
}

/// RSA modulus sizes for signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RsaBits {
    /// 2048 bits (the default).
    #[default]
    Rsa2048,
    /// 3072 bits.
    Rsa3072,
    /// 4096 bits.
    Rsa4096,
}

/// An RS256 signing key with its public JWK. `Debug` shows only the `kid`.
pub struct SigningKey {
    key_pair: KeyPair,
    jwk: Jwk,
}

impl SigningKey {
    /// Generates a fresh key pair.
    ///
    /// # Errors
    /// [`Error::Key`] if generation fails.
    pub fn generate(bits: RsaBits) -> Result<Self, Error> {
        let size = match bits {
            RsaBits::Rsa2048 => KeySize::Rsa2048,
            RsaBits::Rsa3072 => KeySize::Rsa3072,
            RsaBits::Rsa4096 => KeySize::Rsa4096,
        };
        Self::from_key_pair(KeyPair::generate(size).map_err(|_| Error::Key)?)
    }

    /// Loads a key from its PKCS#8 DER form (as stored, encrypted, by auth-service).
    ///
    /// # Errors
    /// [`Error::Key`] if the bytes are not an acceptable RSA private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        Self::from_key_pair(KeyPair::from_pkcs8(der).map_err(|_| Error::Key)?)
    }

    fn from_key_pair(key_pair: KeyPair) -> Result<Self, Error> {
        let components = PublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
        let jwk = Jwk::rsa(&components.n, &components.e);
        Ok(Self { key_pair, jwk })
    }

    /// The private key as PKCS#8 DER, for storing it encrypted. Never log or persist it in
    /// the clear.
    ///
    /// # Errors
    /// [`Error::Key`] if serialization fails.
    pub fn to_pkcs8(&self) -> Result<SecretSlice<u8>, Error> {
        let der = self.key_pair.as_der().map_err(|_| Error::Key)?;
        Ok(SecretSlice::from(der.as_ref().to_vec()))
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` into a compact JWS with header `{"alg":"RS256","typ":"JWT","kid":..}`.
    ///
    /// # Errors
    /// [`Error::Key`] if signing fails.
    pub fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid() });
        let header = serde_json::to_vec(&header).map_err(|_| Error::Key)?;
        let payload = serde_json::to_vec(claims).map_err(|_| Error::Key)?;
        self.sign_parts(&header, &payload)
    }

    /// Signs any JSON claims (an RFC 7523 client assertion, say) with the same header.
    ///
    /// # Errors
    /// [`Error::Key`] if signing fails.
    pub fn sign_json(&self, claims: &serde_json::Value) -> Result<String, Error> {
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid() });
        let header = serde_json::to_vec(&header).map_err(|_| Error::Key)?;
        let payload = serde_json::to_vec(claims).map_err(|_| Error::Key)?;
        self.sign_parts(&header, &payload)
    }

    /// Signs raw header and payload JSON (tests use it to forge validly signed bad tokens).
    fn sign_parts(&self, header: &[u8], payload: &[u8]) -> Result<String, Error> {
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| Error::Key)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.jwk.kid)
            .finish_non_exhaustive()
    }
}

/// A verified token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Who it speaks for.
    pub principal: Principal,
    /// All its claims (for introspection and revocation checks).
    pub claims: Claims,
}

/// Verifies access tokens against a fixed set of public keys.
///
/// Tokens that verified are remembered (by SHA-256 of the whole token, at most
/// [`VERIFIED_CACHE_CAPACITY`]), so a bearer presented on every call costs one RSA
/// verification, not one per call. A remembered token is still checked on every use against
/// the clock (`exp`, `nbf`, with the same leeway); what is skipped is only what cannot change
/// for the same bytes under the same keys (signature, header, issuer, audience, claim types).
/// A new key set means a new `Verifier`, and so an empty cache. Revocation is not this type's
/// business: callers check it on every use, cached or not.
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    verified: Mutex<LruCache<[u8; 32], Verified>>,
}

/// Verified tokens a [`Verifier`] remembers.
pub const VERIFIED_CACHE_CAPACITY: usize = 4096;

impl Verifier {
    /// A verifier accepting tokens from `issuer` for `audience`, signed by a key of `jwks`.
    ///
    /// # Errors
    /// [`Error::Config`] if `leeway` exceeds [`MAX_LEEWAY`] or a JWK is unusable.
    pub fn new(issuer: &str, audience: &str, jwks: &Jwks, leeway: Duration) -> Result<Self, Error> {
        Self::for_audiences(issuer, &[audience], jwks, leeway)
    }

    /// As [`Verifier::new`], accepting a token whose `aud` is any one of `audiences` (the
    /// authorization server itself, which issues tokens for several resources).
    ///
    /// # Errors
    /// As [`Verifier::new`].
    pub fn for_audiences(
        issuer: &str,
        audiences: &[&str],
        jwks: &Jwks,
        leeway: Duration,
    ) -> Result<Self, Error> {
        if leeway > MAX_LEEWAY {
            return Err(Error::Config("leeway must be at most 60 seconds"));
        }
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            if jwk.kty != "RSA" || jwk.alg != "RS256" {
                return Err(Error::Config("only RS256 RSA keys are accepted"));
            }
            let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
                .map_err(|_| Error::Config("a JWK does not hold a usable RSA key"))?;
            keys.insert(jwk.kid.clone(), key);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf", "iat"]);
        Ok(Self {
            keys,
            validation,
            verified: Mutex::new(LruCache::new(
                NonZeroUsize::new(VERIFIED_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN),
            )),
        })
    }

    /// Verifies `token` and returns its principal and claims.
    ///
    /// # Errors
    /// [`Error::Invalid`] with the [`Reason`] (for logs and metrics; callers answer every reason
    /// with the same UNAUTHENTICATED message).
    pub fn verify(&self, token: &str) -> Result<Verified, Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::Invalid(Reason::TooLarge));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        if let Some(verified) = remembered {
            self.check_times(&verified.claims)?;
            return Ok(verified);
        }
        let verified = self.verify_without_cache(token)?;
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(digest, verified.clone());
        Ok(verified)
    }

    /// `exp` and `nbf` against the system clock, as jsonwebtoken checks them.
    fn check_times(&self, claims: &Claims) -> Result<(), Error> {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        let leeway = i64::try_from(self.validation.leeway).unwrap_or(0);
        if claims.exp < now.saturating_sub(leeway) {
            return Err(Error::Invalid(Reason::Expired));
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(Error::Invalid(Reason::NotYetValid));
        }
        Ok(())
    }

    /// The full verification [`Verifier::verify`] runs on a token's first use, neither
    /// consulting nor filling the cache (for measurements: `coffer bench` compares it with a
    /// bare RSA verification).
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_without_cache(&self, token: &str) -> Result<Verified, Error> {
        let kid = check_header(token)?;
        let key = self
            .keys
            .get(&kid)
            .ok_or(Error::Invalid(Reason::UnknownKey))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| Error::Invalid(reason(e.kind())))?;
        let principal = data.claims.principal()?;
        Ok(Verified {
            principal,
            claims: data.claims,
        })
    }
}

/// Checks the protected header ourselves before jsonwebtoken sees the token: only `alg`
/// (exactly `RS256`), `typ` (`JWT`) and `kid` may appear. That refuses `crit` (which
/// jsonwebtoken parses but does not enforce) and key-carrying or key-locating parameters
/// (`jwk`, `jku`, `x5u`, `x5c`), which we never follow anyway. Returns the `kid`.
fn check_header(token: &str) -> Result<String, Error> {
    let malformed = Error::Invalid(Reason::Malformed);
    let encoded = token
        .split('.')
        .next()
        .ok_or(Error::Invalid(Reason::Malformed))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| Error::Invalid(Reason::Malformed))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| malformed)?;
    let mut kid = None;
    for (name, value) in &header {
        match (name.as_str(), value) {
            ("alg", serde_json::Value::String(alg)) if alg == "RS256" => {}
            ("alg", _) => return Err(Error::Invalid(Reason::Algorithm)),
            ("typ", serde_json::Value::String(typ)) if typ == "JWT" => {}
            ("kid", serde_json::Value::String(id)) => kid = Some(id.clone()),
            _ => return Err(Error::Invalid(Reason::Header)),
        }
    }
    if !header.contains_key("alg") {
        return Err(Error::Invalid(Reason::Algorithm));
    }
    kid.ok_or(Error::Invalid(Reason::UnknownKey))
}

fn reason(kind: &ErrorKind) -> Reason {
    match kind {
        ErrorKind::ExpiredSignature => Reason::Expired,
        ErrorKind::ImmatureSignature => Reason::NotYetValid,
        ErrorKind::InvalidIssuer => Reason::Issuer,
        ErrorKind::InvalidAudience => Reason::Audience,
        ErrorKind::InvalidSignature => Reason::Signature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Reason::Algorithm,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => Reason::Claims,
        _ => Reason::Malformed,
    }
}

/// Why a token was refused. For logs and metrics only: every reason answers the caller with
/// the same message, so a probe learns nothing about which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not three base64url segments of JSON.
    Malformed,
    /// A header parameter other than `alg`, `typ`, `kid`.
    Header,
    /// An algorithm other than exactly `RS256`.
    Algorithm,
    /// No `kid`, or one not in the key set.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// Past `exp` (beyond the leeway).
    Expired,
    /// Before `nbf` (beyond the leeway).
    NotYetValid,
    /// Wrong `iss`.
    Issuer,
    /// Wrong `aud`.
    Audience,
    /// A required claim missing, duplicated or of the wrong type, or an unknown scope or role.
    Claims,
}

/// A verified client assertion (RFC 7523): its id and expiry, for the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// `jti`.
    pub jti: String,
    /// `exp`, unix seconds.
    pub exp: i64,
}

/// Longest lifetime a client assertion may claim (`exp` past now).
pub const MAX_ASSERTION_LIFETIME: i64 = 5 * 60;

/// Verifies an RFC 7523 client assertion of `client_id`: RS256 by a key of `jwks` (by `kid`),
/// `iss` and `sub` = the client id, `aud` one of `audiences`, a `jti`, unexpired (with
/// `leeway`) and expiring within [`MAX_ASSERTION_LIFETIME`] of `now`.
///
/// # Errors
/// [`Error::Invalid`] naming what failed.
pub fn verify_client_assertion(
    token: &str,
    jwks: &Jwks,
    client_id: &str,
    audiences: &[&str],
    now: i64,
    leeway: Duration,
) -> Result<Assertion, Error> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Error::Invalid(Reason::TooLarge));
    }
    let header =
        jsonwebtoken::decode_header(token).map_err(|_| Error::Invalid(Reason::Malformed))?;
    if header.alg != Algorithm::RS256 {
        return Err(Error::Invalid(Reason::Algorithm));
    }
    let jwk = jwks
        .keys
        .iter()
        .find(|jwk| Some(&jwk.kid) == header.kid.as_ref())
        .or_else(|| (jwks.keys.len() == 1 && header.kid.is_none()).then(|| &jwks.keys[0]))
        .ok_or(Error::Invalid(Reason::UnknownKey))?;
    let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
        .map_err(|_| Error::Invalid(Reason::UnknownKey))?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = leeway.as_secs();
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data =
        jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(|e| {
            Error::Invalid(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Reason::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => Reason::Issuer,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => Reason::Audience,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Reason::Signature,
                _ => Reason::Claims,
            })
        })?;
    let jti = data.claims["jti"]
        .as_str()
        .filter(|jti| !jti.is_empty() && jti.len() <= 256)
        .ok_or(Error::Invalid(Reason::Claims))?;
    let exp = data.claims["exp"]
        .as_i64()
        .ok_or(Error::Invalid(Reason::Claims))?;
    if exp > now.saturating_add(MAX_ASSERTION_LIFETIME) {
        return Err(Error::Invalid(Reason::Claims));
    }
    Ok(Assertion {
        jti: jti.to_owned(),
        exp,
    })
}

/// JWT errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token is not acceptable.
    #[error("invalid token ({0:?})")]
    Invalid(Reason),
    /// A signing key could not be generated, loaded or used.
    #[error("signing key unusable")]
    Key,
    /// The verifier was configured wrongly.
    #[error("verifier configuration: {0}")]
    Config(&'static str),
}

#[cfg(test)]
mod tests;
