//! The operator text form of a ciphertext: `coffer:v{N}:{base64}`, where `{base64}` is the whole
//! binary envelope (standard alphabet, padded) and `{N}` repeats its key version, as Vault prints
//! `vault:v1:...`. The version in the prefix must match the one inside the envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::{Envelope, Error, Result};

const PREFIX: &str = "coffer:v";

/// Renders a binary envelope in the text form.
///
/// # Errors
/// [`Error::Malformed`] if `ciphertext` is not an envelope.
pub fn encode(ciphertext: &[u8]) -> Result<String> {
    let version = Envelope::parse(ciphertext)?.key_version();
    Ok(format!("{PREFIX}{version}:{}", STANDARD.encode(ciphertext)))
}

/// Parses the text form back into the binary envelope.
///
/// # Errors
/// [`Error::Text`] for a wrong prefix, a bad version number, bad base64 or a version that
/// disagrees with the envelope; [`Error::Malformed`] if the decoded bytes are no envelope.
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let rest = text
        .strip_prefix(PREFIX)
        .ok_or(Error::Text("must start with `coffer:v`"))?;
    let (version, body) = rest
        .split_once(':')
        .ok_or(Error::Text("missing `:` after version"))?;
    if version.is_empty()
        || version.starts_with('0')
        || !version.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::Text("version must be a positive decimal number"));
    }
    let version: u32 = version
        .parse()
        .map_err(|_| Error::Text("version out of range"))?;
    let bytes = STANDARD
        .decode(body)
        .map_err(|_| Error::Text("invalid base64"))?;
    if Envelope::parse(&bytes)?.key_version() != version {
        return Err(Error::Text("version does not match the ciphertext"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Aad, TenantKey, envelope};

    fn sample(version: u32) -> Vec<u8> {
        let key = TenantKey::generate().unwrap();
        envelope::seal(&key, version, &Aad::new("t"), b"hello").unwrap()
    }

    #[test]
    fn text_form_has_the_documented_shape() {
        let text = encode(&sample(7)).unwrap();
        assert!(text.starts_with("coffer:v7:"), "{text}");
    }

    #[test]
    fn bad_text_forms_are_rejected_with_a_reason() {
        let good = encode(&sample(3)).unwrap();
        let body = good.trim_start_matches("coffer:v3:");
        for (bad, why) in [
            (format!("vault:v3:{body}"), "must start with"),
            (format!("coffer:v:{body}"), "version"),
            (format!("coffer:v03:{body}"), "version"),
            (format!("coffer:v4:{body}"), "match"),
            (format!("coffer:v3{body}"), "`:`"),
            ("coffer:v3:@@@@".to_owned(), "base64"),
            (format!("coffer:v99999999999:{body}"), "range"),
        ] {
            let err = decode(&bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    proptest! {
        #[test]
        fn text_form_roundtrips(version in 1u32.., payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = TenantKey::generate().unwrap();
            let ciphertext = envelope::seal(&key, version, &Aad::new("t"), &payload).unwrap();
            prop_assert_eq!(decode(&encode(&ciphertext).unwrap()).unwrap(), ciphertext);
        }
    }
}
