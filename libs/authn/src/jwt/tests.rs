//! The JWT attack set: every forged, altered or out-of-policy token is refused, each for the
//! reason we expect.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde_json::{Value, json};

use super::*;

const ISS: &str = "https://coffer.test";
const AUD: &str = "coffer";

static KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate(RsaBits::Rsa2048).unwrap());
static OTHER_KEY: LazyLock<SigningKey> =
    LazyLock::new(|| SigningKey::generate(RsaBits::Rsa2048).unwrap());

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": AUD, "exp": now() + 600, "iat": now(),
        "nbf": now(), "jti": "t-1", "tenant": "acme", "scope": "mcp:read mcp:write",
        "roles": ["developer"],
    })
}

fn verifier() -> Verifier {
    let jwks = Jwks {
        keys: vec![KEY.jwk().clone()],
    };
    Verifier::new(ISS, AUD, &jwks, Duration::from_secs(5)).unwrap()
}

fn header() -> Value {
    json!({ "alg": "RS256", "typ": "JWT", "kid": KEY.kid() })
}

fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
    key.sign_parts(
        &serde_json::to_vec(header).unwrap(),
        &serde_json::to_vec(claims).unwrap(),
    )
    .unwrap()
}

fn reason_for(token: &str) -> Reason {
    match verifier().verify(token) {
        Err(Error::Invalid(reason)) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[test]
fn a_well_formed_token_verifies_into_its_principal() {
    let typed: Claims = serde_json::from_value(claims()).unwrap();
    let token = KEY.sign(&typed).unwrap();
    let verified = verifier().verify(&token).unwrap();
    assert_eq!(verified.claims, typed);
    assert_eq!(verified.principal.tenant, "acme");
    assert_eq!(verified.principal.subject, "user-1");
    assert!(verified.principal.scopes.contains(crate::Scope::McpWrite));
    assert_eq!(verified.principal.roles, vec![Role::Developer]);
}

#[test]
fn signing_keys_survive_their_pkcs8_form() {
    use secrecy::ExposeSecret as _;
    let restored = SigningKey::from_pkcs8(KEY.to_pkcs8().unwrap().expose_secret()).unwrap();
    assert_eq!(restored.kid(), KEY.kid());
    let token = restored
        .sign(&serde_json::from_value(claims()).unwrap())
        .unwrap();
    assert!(verifier().verify(&token).is_ok());
    assert!(!format!("{restored:?}").contains("BEGIN"));
}

#[test]
fn alg_none_and_algorithm_confusion_are_refused() {
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": KEY.kid()})),
        b64(&claims())
    );
    assert_eq!(reason_for(&none), Reason::Algorithm);
    let lower = forge(&KEY, &json!({"alg": "rs256", "kid": KEY.kid()}), &claims());
    assert_eq!(reason_for(&lower), Reason::Algorithm);
    let no_alg = forge(&KEY, &json!({"kid": KEY.kid()}), &claims());
    assert_eq!(reason_for(&no_alg), Reason::Algorithm);

    // HS256 "signed" with the public key as the HMAC secret (the classic confusion attack).
    let public_der = aws_lc_rs::signature::KeyPair::public_key(&KEY.key_pair)
        .as_ref()
        .to_vec();
    let signing_input = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": KEY.kid()})),
        b64(&claims())
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &public_der),
        signing_input.as_bytes(),
    );
    let hs256 = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(reason_for(&hs256), Reason::Algorithm);
}

#[test]
fn unknown_missing_or_injected_kids_are_refused_without_lookup() {
    for kid in [
        "nope",
        "../../dev/null",
        "",
        "https://evil.example/jwks.json",
    ] {
        let token = forge(&KEY, &json!({"alg": "RS256", "kid": kid}), &claims());
        assert_eq!(reason_for(&token), Reason::UnknownKey, "kid {kid}");
    }
    let no_kid = forge(&KEY, &json!({"alg": "RS256"}), &claims());
    assert_eq!(reason_for(&no_kid), Reason::UnknownKey);
    // Another key claiming our kid fails on the signature.
    let impostor = forge(&OTHER_KEY, &header(), &claims());
    assert_eq!(reason_for(&impostor), Reason::Signature);
}

#[test]
fn key_carrying_and_critical_headers_are_refused() {
    for (name, value) in [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("jwk", serde_json::to_value(OTHER_KEY.jwk()).unwrap()),
        ("x5c", json!(["MIIB..."])),
        ("crit", json!(["x-unknown"])),
        ("typ", json!("at+jwt-but-not-ours")),
    ] {
        let mut forged_header = header();
        forged_header[name] = value;
        let token = forge(&KEY, &forged_header, &claims());
        assert_eq!(reason_for(&token), Reason::Header, "header {name}");
    }
}

#[test]
fn altered_or_stripped_tokens_are_refused() {
    let token = forge(&KEY, &header(), &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = claims();
    escalated["scope"] = json!("mcp:read mcp:write credential:reveal org:admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
    assert_eq!(reason_for(&tampered), Reason::Signature);
    let stripped = format!("{}.{}.", parts[0], parts[1]);
    assert!(matches!(
        reason_for(&stripped),
        Reason::Signature | Reason::Malformed
    ));
    let two_parts = format!("{}.{}", parts[0], parts[1]);
    assert_eq!(reason_for(&two_parts), Reason::Malformed);
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    assert_eq!(reason_for(&padded), Reason::Malformed);
    assert_eq!(reason_for(&format!(" {token}")), Reason::Malformed);
    assert_eq!(reason_for(""), Reason::Malformed);
}

#[test]
fn lifetimes_are_enforced_with_a_small_leeway() {
    let mut expired = claims();
    expired["exp"] = json!(now() - 30);
    assert_eq!(
        reason_for(&forge(&KEY, &header(), &expired)),
        Reason::Expired
    );
    let mut just_expired = claims();
    just_expired["exp"] = json!(now() - 2);
    assert!(
        verifier()
            .verify(&forge(&KEY, &header(), &just_expired))
            .is_ok(),
        "within leeway"
    );
    let mut future = claims();
    future["nbf"] = json!(now() + 30);
    assert_eq!(
        reason_for(&forge(&KEY, &header(), &future)),
        Reason::NotYetValid
    );
    assert!(matches!(
        Verifier::new(ISS, AUD, &Jwks::default(), Duration::from_secs(61)),
        Err(Error::Config(_))
    ));
}

#[test]
fn issuer_audience_and_required_claims_are_checked() {
    let mut wrong_iss = claims();
    wrong_iss["iss"] = json!("https://evil.example");
    assert_eq!(
        reason_for(&forge(&KEY, &header(), &wrong_iss)),
        Reason::Issuer
    );
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(
        reason_for(&forge(&KEY, &header(), &wrong_aud)),
        Reason::Audience
    );
    for claim in ["exp", "iss", "aud", "sub", "nbf", "iat", "tenant", "jti"] {
        let mut missing = claims();
        missing.as_object_mut().unwrap().remove(claim);
        assert_eq!(
            reason_for(&forge(&KEY, &header(), &missing)),
            Reason::Claims,
            "without {claim}"
        );
    }
    let mut unknown_scope = claims();
    unknown_scope["scope"] = json!("mcp:read root");
    assert_eq!(
        reason_for(&forge(&KEY, &header(), &unknown_scope)),
        Reason::Claims
    );
}

#[test]
fn duplicated_claims_are_refused_not_last_one_wins() {
    let payload = format!(
        r#"{{"iss":"{ISS}","sub":"user-1","sub":"admin","aud":"{AUD}","exp":{},"iat":{},"nbf":{},"jti":"t","tenant":"acme","scope":"mcp:read"}}"#,
        now() + 600,
        now(),
        now()
    );
    let token = KEY
        .sign_parts(&serde_json::to_vec(&header()).unwrap(), payload.as_bytes())
        .unwrap();
    assert_eq!(reason_for(&token), Reason::Claims);
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let mut huge = claims();
    huge["padding"] = json!("x".repeat(MAX_TOKEN_LEN));
    let token = forge(&KEY, &header(), &huge);
    assert_eq!(reason_for(&token), Reason::TooLarge);
}

/// A remembered token skips only the signature work: its times are checked on every use, and
/// any other bytes (a changed signature, a changed claim) are verified in full.
#[test]
fn remembered_tokens_are_still_checked_against_the_clock_and_nothing_else_is_remembered() {
    let verifier = verifier();
    let token = KEY
        .sign(&serde_json::from_value(claims()).unwrap())
        .unwrap();
    assert!(verifier.verify(&token).is_ok());
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    assert!(
        verifier.verified.lock().unwrap().contains(&digest),
        "remembered"
    );

    // The same bytes, now past their expiry beyond the leeway: refused from the cache.
    verifier
        .verified
        .lock()
        .unwrap()
        .get_mut(&digest)
        .unwrap()
        .claims
        .exp = now() - 6;
    assert_eq!(
        verifier.verify(&token).unwrap_err(),
        Error::Invalid(Reason::Expired)
    );
    verifier
        .verified
        .lock()
        .unwrap()
        .get_mut(&digest)
        .unwrap()
        .claims
        .exp = now() - 4;
    assert!(verifier.verify(&token).is_ok(), "within the 5 s leeway");
    verifier
        .verified
        .lock()
        .unwrap()
        .get_mut(&digest)
        .unwrap()
        .claims
        .nbf = now() + 6;
    assert_eq!(
        verifier.verify(&token).unwrap_err(),
        Error::Invalid(Reason::NotYetValid)
    );

    // A cached token's signature swapped for another key's is other bytes: verified, refused.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let other = forge(&OTHER_KEY, &header(), &claims());
    let (_, other_signature) = other.rsplit_once('.').unwrap();
    assert_eq!(
        verifier
            .verify(&format!("{signed}.{other_signature}"))
            .unwrap_err(),
        Error::Invalid(Reason::Signature)
    );
    // Refusals are never remembered.
    assert_eq!(verifier.verified.lock().unwrap().len(), 1);
}
