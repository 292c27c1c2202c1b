//! Time-based one-time passwords (RFC 6238, over RFC 4226's HOTP), as every authenticator app
//! computes them: HMAC-SHA1, six digits, 30-second steps, a 160-bit secret.
//!
//! [`TotpSecret::verify`] accepts the code of the current step or of one step either side
//! (RFC 6238 section 5.2: at most one step of network delay and clock drift) and never a step
//! at or before the last one accepted, so a code seen once cannot be replayed, not even
//! within its 30 seconds. Codes are compared in constant time, every candidate step is
//! compared, and the caller stores the step it returns. SHA-1 is what RFC 6238 authenticators
//! use; HMAC-SHA1 remains a sound PRF (collisions do not help against it).

use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::SecretString;
use subtle::ConstantTimeEq as _;

use crate::{Error, Result, SecretBytes};

/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Seconds per step.
pub const STEP: i64 = 30;
/// Steps either side of now whose codes are accepted.
pub const WINDOW: i64 = 1;
/// Longest code text [`TotpSecret::verify`] reads (digits and spaces).
const MAX_CODE_LEN: usize = 16;
/// Bytes of a generated secret (RFC 4226 section 4 recommends 160 bits).
pub const SECRET_LEN: usize = 20;

/// A TOTP secret: zeroized on drop, redacted in `Debug`, no `Clone`.
pub struct TotpSecret(SecretBytes);

impl TotpSecret {
    /// A fresh secret from the OS generator.
    ///
    /// # Errors
    /// [`Error::Rng`].
    pub fn generate() -> Result<Self> {
        let mut bytes = vec![0u8; SECRET_LEN];
        crate::fill_random(&mut bytes)?;
        Ok(Self(SecretBytes::new(bytes)))
    }

    /// A stored secret.
    ///
    /// # Errors
    /// [`Error::KeyLength`] unless it is [`SECRET_LEN`] bytes.
    pub fn from_bytes(bytes: SecretBytes) -> Result<Self> {
        if bytes.len() != SECRET_LEN {
            return Err(Error::KeyLength {
                expected: SECRET_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// A secret as people type it from an enrollment page: base32 without padding, case and
    /// spaces ignored. `None` unless it decodes to [`SECRET_LEN`] bytes.
    pub fn from_base32(text: &str) -> Option<Self> {
        let cleaned = zeroize::Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect::<String>(),
        );
        let bytes = data_encoding::BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .ok()?;
        Self::from_bytes(SecretBytes::new(bytes)).ok()
    }

    /// The raw secret, for encrypting it at rest.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The secret in base32 without padding, as people type it into an authenticator.
    pub fn base32(&self) -> SecretString {
        SecretString::from(data_encoding::BASE32_NOPAD.encode(self.expose_secret()))
    }

    /// The `otpauth://` URI an authenticator app reads from a QR code (Google
    /// Authenticator's key URI format, which the other apps follow): the label
    /// `issuer:account`, the secret, and the algorithm, digits and period spelled out.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> SecretString {
        let label = format!("{issuer}:{account}");
        let label: String = url::form_urlencoded::byte_serialize(label.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "secret",
                &data_encoding::BASE32_NOPAD.encode(self.expose_secret()),
            )
            .append_pair("issuer", issuer)
            .append_pair("algorithm", "SHA1")
            .append_pair("digits", &DIGITS.to_string())
            .append_pair("period", &STEP.to_string())
            .finish();
        SecretString::from(format!("otpauth://totp/{label}?{query}"))
    }

    /// The code of `step` (seconds since the epoch divided by [`STEP`]).
    pub fn code_at(&self, step: u64) -> u32 {
        hotp(self.expose_secret(), step, DIGITS)
    }

    /// The code an authenticator app shows at unix time `now` (six digits; a time before
    /// 1970 gives step 0's).
    pub fn code(&self, now: i64) -> String {
        let step = u64::try_from(now.div_euclid(STEP)).unwrap_or(0);
        code_text(self.code_at(step))
    }

    /// Checks `code` (six digits; spaces ignored) at unix time `now`: the step it belongs to,
    /// if it is the code of a step within [`WINDOW`] of now and after `last_used`, the step
    /// accepted last. `None` for anything else.
    pub fn verify(&self, code: &str, now: i64, last_used: Option<i64>) -> Option<i64> {
        // Six digits and a few spaces at most: anything longer is not read through.
        if code.len() > MAX_CODE_LEN {
            return None;
        }
        let digits: Vec<u8> = code.bytes().filter(|b| *b != b' ').collect();
        if digits.len() != DIGITS as usize || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let current = now.div_euclid(STEP);
        let mut accepted = None;
        for step in current.saturating_sub(WINDOW)..=current.saturating_add(WINDOW) {
            let Ok(counter) = u64::try_from(step) else {
                continue;
            };
            let expected = code_text(self.code_at(counter));
            let matches = bool::from(expected.as_bytes().ct_eq(&digits));
            if matches && last_used.is_none_or(|last| step > last) {
                accepted = Some(step);
            }
        }
        accepted
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// A code as text, zero-padded to [`DIGITS`].
fn code_text(code: u32) -> String {
    format!("{code:0width$}", width = DIGITS as usize)
}

/// HOTP (RFC 4226 section 5): HMAC-SHA1 of the big-endian counter, dynamically truncated.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC takes a key of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(SecretBytes::new(RFC_SECRET.to_vec())).unwrap()
    }

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_sha1() {
        for (time, code) in [
            (59_u64, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(RFC_SECRET, time / 30, 8), code, "time {time}");
            assert_eq!(rfc_secret().code_at(time / 30), code % 1_000_000);
        }
    }

    #[test]
    fn a_typed_key_reads_back_and_shows_the_current_code() {
        let secret = TotpSecret::generate().unwrap();
        let typed = secrecy::ExposeSecret::expose_secret(&secret.base32()).to_ascii_lowercase();
        let spaced = format!("{} {}", &typed[..16], &typed[16..]);
        let read = TotpSecret::from_base32(&spaced).unwrap();
        assert_eq!(read.expose_secret(), secret.expose_secret());
        assert!(TotpSecret::from_base32("AAAA").is_none(), "too short");
        assert!(TotpSecret::from_base32("not base32!").is_none());
        // 1 234 567 890 is RFC 6238's step 41 152 263, whose code ends in 005924.
        assert_eq!(rfc_secret().code(1_234_567_890), "005924");
        assert_eq!(rfc_secret().code(-5), code_text(rfc_secret().code_at(0)));
    }

    #[test]
    fn a_code_is_accepted_once_within_one_step_of_now() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / STEP;
        let code = |step: i64| format!("{:06}", secret.code_at(step as u64));
        assert_eq!(secret.verify(&code(step), now, None), Some(step));
        assert_eq!(secret.verify(&code(step - 1), now, None), Some(step - 1));
        assert_eq!(secret.verify(&code(step + 1), now, None), Some(step + 1));
        assert_eq!(secret.verify(&code(step - 2), now, None), None, "too old");
        assert_eq!(secret.verify(&code(step + 2), now, None), None, "too new");
        // Replay: the accepted step, or any before it, is refused.
        assert_eq!(secret.verify(&code(step), now, Some(step)), None);
        assert_eq!(secret.verify(&code(step - 1), now, Some(step)), None);
        assert_eq!(
            secret.verify(&code(step + 1), now, Some(step)),
            Some(step + 1)
        );
        // Spaces are ignored; anything else that is not six digits is refused.
        let spaced = format!("{} {}", &code(step)[..3], &code(step)[3..]);
        assert_eq!(secret.verify(&spaced, now, None), Some(step));
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(secret.verify(bad, now, None), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_random_redacted_and_of_a_sane_length() {
        let one = TotpSecret::generate().unwrap();
        let two = TotpSecret::generate().unwrap();
        assert_eq!(one.expose_secret().len(), SECRET_LEN);
        assert_ne!(one.expose_secret(), two.expose_secret());
        assert_eq!(format!("{one:?}"), "TotpSecret([REDACTED])");
        assert!(TotpSecret::from_bytes(SecretBytes::new(vec![0; 19])).is_err());
        assert!(TotpSecret::from_bytes(SecretBytes::new(vec![0; 21])).is_err());
    }

    #[test]
    fn the_key_uri_names_issuer_account_and_parameters() {
        use secrecy::ExposeSecret as _;
        let uri = rfc_secret().otpauth_uri("Coffer", "alice@acme");
        assert_eq!(
            uri.expose_secret(),
            "otpauth://totp/Coffer%3Aalice%40acme?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Coffer&algorithm=SHA1&digits=6&period=30"
        );
        assert_eq!(
            rfc_secret().base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
