//! Interop with PyJWT: PyJWT verifies Coffer's tokens against Coffer's JWKS, and Coffer
//! verifies a token PyJWT signed with the same key.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coffer_authn::jwks::Jwks;
use coffer_authn::jwt::{Claims, RsaBits, SigningKey, Verifier};
use coffer_test_support::{python_with, workspace_root};
use secrecy::ExposeSecret as _;

#[test]
fn pyjwt_and_coffer_accept_each_others_rs256_tokens() {
    let Some(python) = python_with(&["jwt", "cryptography"]) else {
        return;
    };
    let key = SigningKey::generate(RsaBits::Rsa2048).unwrap();
    let jwks = Jwks {
        keys: vec![key.jwk().clone()],
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = Claims {
        iss: "https://coffer.test".into(),
        sub: "svc-7".into(),
        aud: "coffer".into(),
        exp: now + 300,
        iat: now,
        nbf: now,
        jti: "t-1".into(),
        tenant: "acme".into(),
        scope: "mcp:read".into(),
        roles: vec!["viewer".into()],
        akid: None,
        pgen: 0,
        client_id: None,
    };
    let dir = tempfile::tempdir().unwrap();
    let write =
        |name: &str, contents: &[u8]| std::fs::write(dir.path().join(name), contents).unwrap();
    write("jwks.json", &serde_json::to_vec(&jwks).unwrap());
    write("token", key.sign(&claims).unwrap().as_bytes());
    write("key.pk8", key.to_pkcs8().unwrap().expose_secret());
    write("issuer", claims.iss.as_bytes());
    write("audience", claims.aud.as_bytes());

    let output = Command::new(python)
        .arg(workspace_root().join("scripts/interop/pyjwt_check.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "PyJWT refused: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let verified: Claims =
        serde_json::from_slice(&std::fs::read(dir.path().join("verified.json")).unwrap()).unwrap();
    assert_eq!(verified, claims);

    let pyjwt_token = std::fs::read_to_string(dir.path().join("pyjwt_token")).unwrap();
    let verifier = Verifier::new(&claims.iss, &claims.aud, &jwks, Duration::from_secs(5)).unwrap();
    let ours = verifier.verify(&pyjwt_token).unwrap();
    assert_eq!(ours.claims.jti, "signed-by-pyjwt");
    assert_eq!(ours.principal.tenant, "acme");
}
