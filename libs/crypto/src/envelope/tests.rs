use aes_gcm::aead::{Aead as _, Payload};
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use proptest::prelude::*;

use super::*;
use crate::TenantKey;

fn key(byte: u8) -> TenantKey {
    TenantKey::from_bytes(&[byte; 32]).unwrap()
}

fn aad(tenant: &str) -> Aad {
    Aad::new("coffer/test/v1").field(tenant.as_bytes())
}

#[test]
fn layout_is_header_nonce_then_aes_gcm_over_header_and_aad() {
    let nonce = [9u8; NONCE_LEN];
    let sealed = seal_with_nonce(&key(1), 0x0102_0304, &aad("acme"), b"secret", &nonce).unwrap();

    // Recompute independently with the AES-GCM primitive.
    let mut expected_aad = vec![FORMAT_AES256_GCM_V1, 1, 2, 3, 4];
    expected_aad.extend_from_slice(aad("acme").as_bytes());
    let body = Aes256Gcm::new((&[1u8; 32]).into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: b"secret",
                aad: &expected_aad,
            },
        )
        .unwrap();
    let mut expected = vec![FORMAT_AES256_GCM_V1, 1, 2, 3, 4];
    expected.extend_from_slice(&nonce);
    expected.extend_from_slice(&body);

    assert_eq!(sealed, expected);
    assert_eq!(sealed.len(), OVERHEAD + 6);
}

#[test]
fn roundtrip_reports_the_key_version() {
    let sealed = seal(&key(1), 42, &aad("acme"), b"top secret").unwrap();
    let envelope = Envelope::parse(&sealed).unwrap();
    assert_eq!(envelope.key_version(), 42);
    assert_eq!(
        envelope
            .open(&key(1), &aad("acme"))
            .unwrap()
            .expose_secret(),
        b"top secret"
    );
}

#[test]
fn empty_plaintext_roundtrips() {
    let sealed = seal(&key(1), 1, &aad("acme"), b"").unwrap();
    assert_eq!(sealed.len(), OVERHEAD);
    assert!(
        Envelope::parse(&sealed)
            .unwrap()
            .open(&key(1), &aad("acme"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn nonces_are_fresh_for_every_seal() {
    let a = seal(&key(1), 1, &aad("acme"), b"same").unwrap();
    let b = seal(&key(1), 1, &aad("acme"), b"same").unwrap();
    assert_ne!(
        a[HEADER_LEN..HEADER_LEN + NONCE_LEN],
        b[HEADER_LEN..HEADER_LEN + NONCE_LEN]
    );
}

#[test]
fn wrong_key_or_aad_fails() {
    let sealed = seal(&key(1), 1, &aad("acme"), b"x").unwrap();
    let envelope = Envelope::parse(&sealed).unwrap();
    assert_eq!(
        envelope.open(&key(2), &aad("acme")).unwrap_err(),
        Error::Decrypt
    );
    assert_eq!(
        envelope.open(&key(1), &aad("acme2")).unwrap_err(),
        Error::Decrypt
    );
}

#[test]
fn short_or_unknown_format_is_malformed() {
    assert_eq!(
        Envelope::parse(&[1; OVERHEAD - 1]).unwrap_err(),
        Error::Malformed("too short")
    );
    let mut sealed = seal(&key(1), 1, &aad("acme"), b"x").unwrap();
    sealed[0] = 0x02;
    assert_eq!(
        Envelope::parse(&sealed).unwrap_err(),
        Error::Malformed("unknown format")
    );
}

proptest! {
    #[test]
    fn any_plaintext_roundtrips(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        version in any::<u32>(),
        tenant in "[a-z0-9_-]{1,64}",
    ) {
        let sealed = seal(&key(3), version, &aad(&tenant), &plaintext).unwrap();
        let opened = Envelope::parse(&sealed).unwrap().open(&key(3), &aad(&tenant)).unwrap();
        prop_assert_eq!(opened.expose_secret(), plaintext.as_slice());
    }

    #[test]
    fn flipping_any_bit_anywhere_fails(
        plaintext in proptest::collection::vec(any::<u8>(), 0..256),
        position in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut sealed = seal(&key(3), 5, &aad("acme"), &plaintext).unwrap();
        let index = position.index(sealed.len());
        sealed[index] ^= 1 << bit;
        let result = Envelope::parse(&sealed).and_then(|e| e.open(&key(3), &aad("acme")));
        prop_assert!(result.is_err(), "bit {} of byte {} flipped and still opened", bit, index);
    }

    #[test]
    fn truncating_or_extending_fails(
        plaintext in proptest::collection::vec(any::<u8>(), 1..128),
        cut in 1usize..16,
    ) {
        let sealed = seal(&key(3), 1, &aad("acme"), &plaintext).unwrap();
        let truncated = &sealed[..sealed.len() - cut];
        prop_assert!(Envelope::parse(truncated).and_then(|e| e.open(&key(3), &aad("acme"))).is_err());
        let mut extended = sealed.clone();
        extended.push(0);
        prop_assert!(Envelope::parse(&extended).and_then(|e| e.open(&key(3), &aad("acme"))).is_err());
    }
}
