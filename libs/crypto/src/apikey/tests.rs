use proptest::prelude::*;

use super::*;

#[test]
fn generated_keys_have_the_documented_shape_and_parse_back() {
    let key = ApiKey::generate().unwrap();
    let text = key.expose_secret();
    assert_eq!(text.len(), KEY_LEN);
    assert!(text.starts_with("mcp_sk_"));
    assert_eq!(&text[7 + ID_LEN..8 + ID_LEN], "_");
    let parsed = ApiKey::parse(text).unwrap();
    assert_eq!(parsed.id(), key.id());
    assert_eq!(parsed.expose_secret_part(), key.expose_secret_part());
    assert_ne!(ApiKey::generate().unwrap().expose_secret(), text);
}

#[test]
fn debug_and_hint_never_show_the_secret() {
    let key = ApiKey::generate().unwrap();
    let secret = &key.expose_secret_part()[..SECRET_LEN];
    let debug = format!("{key:?}");
    assert!(
        debug.contains(key.id().as_str()) && !debug.contains(secret),
        "{debug}"
    );
    let hint = key.hint();
    assert!(hint.starts_with(&format!("mcp_sk_{}_...", key.id())));
    assert_eq!(hint.len(), 7 + ID_LEN + 4 + 4);
    assert!(!hint.contains(&secret[..8]));
}

#[test]
fn base62_matches_an_independent_big_integer_conversion() {
    // The expected digits come from plain u128 division, independent of the byte-array code.
    let mut value: u128 = u128::from(u32::MAX);
    let mut expected = Vec::new();
    for _ in 0..6 {
        expected.push(ALPHABET[(value % 62) as usize]);
        value /= 62;
    }
    expected.reverse();
    assert_eq!(
        base62_fixed(&u32::MAX.to_be_bytes(), 6).as_bytes(),
        expected.as_slice()
    );
    assert_eq!(base62_fixed(&[0, 0, 0, 0], 6).as_str(), "000000");
    assert_eq!(base62_fixed(&[0, 0, 0, 61], 6).as_str(), "00000z");
    assert_eq!(base62_fixed(&[0, 0, 0, 62], 6).as_str(), "000010");
    // The largest 256-bit value still fits in 43 digits without wrapping.
    assert_ne!(&base62_fixed(&[0xff; 32], SECRET_LEN)[..1], "0");
}

#[test]
fn malformed_keys_are_refused_with_the_reason() {
    let key = ApiKey::generate().unwrap();
    let good = key.expose_secret().to_owned();
    let cases = [
        (good.replacen("mcp_sk_", "mcp_pk_", 1), ApiKeyError::Prefix),
        (format!("xx{good}"), ApiKeyError::Prefix),
        (good[..KEY_LEN - 1].to_owned(), ApiKeyError::Length),
        (format!("{good}0"), ApiKeyError::Length),
        (good.replacen('_', "-", 3), ApiKeyError::Prefix),
        (
            format!("{}-{}", &good[..7 + ID_LEN], &good[8 + ID_LEN..]),
            ApiKeyError::Length,
        ),
        (
            format!("{}+{}", &good[..30], &good[31..]),
            ApiKeyError::Character,
        ),
        (
            format!("{}é{}", &good[..30], &good[32..]),
            ApiKeyError::Character,
        ),
        (String::new(), ApiKeyError::Prefix),
    ];
    for (bad, expected) in cases {
        assert_eq!(ApiKey::parse(&bad).unwrap_err(), expected, "{bad}");
    }
}

#[test]
fn a_rolled_key_keeps_its_id_and_changes_its_secret() {
    let key = ApiKey::generate().unwrap();
    let rolled = ApiKey::generate_with_id(key.id()).unwrap();
    assert_eq!(rolled.id(), key.id());
    assert_ne!(rolled.expose_secret_part(), key.expose_secret_part());
    assert!(ApiKey::parse(rolled.expose_secret()).is_ok());
}

#[test]
fn ids_parse_on_their_own() {
    assert!(ApiKeyId::parse("abcDEF012345").is_ok());
    assert_eq!(ApiKeyId::parse("abc").unwrap_err(), ApiKeyError::Length);
    assert_eq!(
        ApiKeyId::parse("abcDEF01234_").unwrap_err(),
        ApiKeyError::Character
    );
}

proptest! {
    #[test]
    fn any_single_character_change_is_caught(position in 7usize..KEY_LEN, replacement in 0usize..62) {
        let key = ApiKey::generate().unwrap();
        let mut bytes = key.expose_secret().as_bytes().to_vec();
        prop_assume!(position != 7 + ID_LEN);
        let original = bytes[position];
        let new = ALPHABET[replacement];
        prop_assume!(new != original);
        bytes[position] = new;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(ApiKey::parse(&changed).unwrap_err(), ApiKeyError::Checksum);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_parser(text in "\\PC{0,80}") {
        let _ = ApiKey::parse(&text);
    }
}
