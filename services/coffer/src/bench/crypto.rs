//! The in-process baselines: each operation's cryptography alone, on one thread, no RPC.
//! An RPC can approach these rates only as far as its transport (the no-op row) allows.

use std::time::Duration;

use coffer_authn::jwks::Jwks;
use coffer_authn::jwt::{Claims, RsaBits, SigningKey, Verifier};
use coffer_crypto::{Aad, TenantKey, envelope};
use secrecy::ExposeSecret as _;
use sha2::Digest as _;

use super::measure::{Report, local};

/// The bcrypt cost auth-service hashes API keys with by default (`BCRYPT_COST`).
pub const BCRYPT_COST: u32 = 12;

/// Names of the baselines the RPC rows refer to.
pub fn seal(payload: usize) -> String {
    format!("AES-256-GCM seal {}", size(payload))
}

/// See [`seal`].
pub fn open(payload: usize) -> String {
    format!("AES-256-GCM open {}", size(payload))
}

/// See [`seal`].
pub const RSA_SIGN: &str = "RSA-2048 sign (PKCS#1 v1.5, SHA-256)";
/// See [`seal`].
pub const RSA_VERIFY: &str = "RSA-2048 verify";
/// See [`seal`].
pub const JWT_VERIFY: &str = "JWT verify, first use (libs/authn)";
/// See [`seal`].
pub const JWT_VERIFY_REMEMBERED: &str = "JWT verify, remembered (libs/authn)";
/// See [`seal`].
pub fn bcrypt_verify() -> String {
    format!("bcrypt verify, cost {BCRYPT_COST}")
}

/// `32 B`, `4 KiB`.
pub fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

/// Every baseline, each run for `duration` (bcrypt for at least three checks).
///
/// # Errors
/// If the OS RNG or a primitive fails.
pub fn baselines(payloads: &[usize], duration: Duration) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    let key = TenantKey::generate()?;
    let aad = Aad::new("coffer/bench").field(b"tenant").field(b"key");
    for &payload in payloads {
        let plaintext = vec![0x5a; payload];
        let sealed = envelope::seal(&key, 1, &aad, &plaintext)?;
        reports.push(local(seal(payload), duration, || {
            envelope::seal(&key, 1, &aad, &plaintext).map(drop)
        })?);
        reports.push(local(open(payload), duration, || {
            envelope::Envelope::parse(&sealed)
                .and_then(|sealed| sealed.open(&key, &aad))
                .map(drop)
        })?);
    }
    reports.push(local("SHA-256 32 B", duration, || {
        std::hint::black_box(sha2::Sha256::digest([0x5a; 32]));
        Ok::<(), anyhow::Error>(())
    })?);
    reports.extend(rsa(duration)?);
    let hash = bcrypt::hash("mcp_sk_bench-secret-part", BCRYPT_COST)?;
    reports.push(local(
        bcrypt_verify(),
        duration.max(Duration::from_secs(1)),
        || bcrypt::verify("mcp_sk_bench-secret-part", &hash).map(drop),
    )?);
    Ok(reports)
}

/// RSA-2048 sign and verify with aws-lc-rs directly, and a whole access-token verification
/// through libs/authn over the same key: on first use (header, key lookup, signature, claims)
/// and remembered (a digest, a cache lookup and the time checks).
fn rsa(duration: Duration) -> anyhow::Result<Vec<Report>> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

    let signing = SigningKey::generate(RsaBits::Rsa2048)?;
    let now = coffer_server::Clock::system().now();
    let claims = Claims {
        iss: "coffer-bench".into(),
        sub: "bench".into(),
        aud: "coffer".into(),
        exp: now + 3600,
        iat: now,
        nbf: now,
        jti: "bench-token".into(),
        tenant: "bench".into(),
        scope: "mcp:read".into(),
        roles: Vec::new(),
        akid: None,
        pgen: 0,
        client_id: None,
    };
    let token = signing.sign(&claims)?;
    let jwks = Jwks {
        keys: vec![signing.jwk().clone()],
    };
    let verifier = Verifier::new("coffer-bench", "coffer", &jwks, Duration::ZERO)?;

    let pkcs8 = signing.to_pkcs8()?;
    let pair = RsaKeyPair::from_pkcs8(pkcs8.expose_secret())
        .map_err(|e| anyhow::anyhow!("RSA key: {e}"))?;
    let rng = SystemRandom::new();
    let (message, _) = token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("a JWT has three parts"))?;
    let mut signature_bytes = vec![0; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &rng,
        message.as_bytes(),
        &mut signature_bytes,
    )
    .map_err(|_| anyhow::anyhow!("RSA sign failed"))?;
    let public = UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        pair.public_key().as_ref().to_vec(),
    );
    let unspecified = |_| anyhow::anyhow!("RSA operation failed");
    Ok(vec![
        local(RSA_SIGN, duration, || {
            let mut out = vec![0; pair.public_modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                message.as_bytes(),
                &mut out,
            )
            .map_err(unspecified)
        })?,
        local(RSA_VERIFY, duration, || {
            public
                .verify(message.as_bytes(), &signature_bytes)
                .map_err(unspecified)
        })?,
        local(JWT_VERIFY, duration, || {
            verifier.verify_without_cache(&token).map(drop)
        })?,
        local(JWT_VERIFY_REMEMBERED, duration, || {
            verifier.verify(&token).map(drop)
        })?,
    ])
}
