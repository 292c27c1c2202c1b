//! Sealed-box intake: per-tenant session key pairs held only in memory, replaced on a
//! schedule.
//!
//! Each tenant has its own pairs, and a pair's kid names its tenant
//! (`tenants/{tenant}/sealingKeys/{hex}`): a value sealed to one tenant's key is refused in
//! every other tenant, so a sealed box cannot be replayed into another tenant's credential
//! (where its owner could reveal it). The current pair is handed out by GetSealingKey until
//! half its lifetime has passed; then a new pair is made, and the old one still opens what
//! was sealed to it until it expires. Keys are never persisted: a restart ends every sealing
//! session (clients fetch a new key).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::SecretBytes;
use coffer_crypto::sealed::{SealError, SealingKeyPair};

use coffer_proto::pb;
use coffer_server::Clock;

use crate::error::reasons;

use crate::{Error, Result};

/// Largest plaintext accepted per sealed value.
pub(crate) const MAX_SIZE_BYTES: usize = 65_536;
/// The algorithm name clients see.
pub(crate) const ALG: &str = "libsodium-sealedbox";

/// A public sealing key as handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PublicSealingKey {
    /// Key id, `tenants/{tenant}/sealingKeys/{hex}`.
    pub(crate) kid: String,
    /// The X25519 public key.
    pub(crate) public_key: [u8; 32],
    /// Expiry, unix seconds.
    pub(crate) expires_at: i64,
}

struct Pair {
    kid: String,
    pair: SealingKeyPair,
    created: i64,
    expires_at: i64,
}

/// The session key pairs of every tenant, or nothing when intake is disabled.
pub(crate) struct SealingKeys {
    lifetime: Option<Duration>,
    pairs: Mutex<HashMap<String, Vec<Pair>>>,
    clock: Clock,
}

impl SealingKeys {
    /// Intake with pairs living `lifetime` on `clock`; `None` disables it.
    pub(crate) fn new(lifetime: Option<Duration>, clock: Clock) -> Self {
        Self {
            lifetime,
            pairs: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The key to seal to now for `tenant` (making a new pair when needed).
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] when intake is disabled; [`Error::Crypto`] if the RNG fails.
    pub(crate) fn current(&self, tenant: &str) -> Result<PublicSealingKey> {
        let lifetime = self.enabled()?;
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let now = self.clock.now();
        let mut all = self.lock();
        // Expired pairs go, and tenants left without any: memory stays bounded by the tenants
        // sealing right now.
        all.retain(|_, pairs| {
            pairs.retain(|pair| pair.expires_at > now);
            !pairs.is_empty()
        });
        let pairs = all.entry(tenant.to_owned()).or_default();
        let fresh = pairs
            .last()
            .filter(|pair| now - pair.created < lifetime / 2);
        if fresh.is_none() {
            let mut id = [0u8; 8];
            coffer_crypto::fill_random(&mut id)?;
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            pairs.push(Pair {
                kid: kid(tenant, &hex),
                pair: SealingKeyPair::generate()?,
                created: now,
                expires_at: now.saturating_add(lifetime),
            });
        }
        let pair = pairs.last().ok_or(Error::Corrupt("no sealing key"))?;
        Ok(PublicSealingKey {
            kid: pair.kid.clone(),
            public_key: *pair.pair.public_key(),
            expires_at: pair.expires_at,
        })
    }

    /// Opens one sealed value of variable `name`, submitted in `tenant`; each failure has its
    /// own message.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] for disabled intake, a kid of another tenant, or an
    /// unknown or expired kid; [`Error::InvalidArgument`] on `field` for bad base64, a box
    /// that does not open, a value over [`MAX_SIZE_BYTES`] or not UTF-8.
    pub(crate) fn open(
        &self,
        tenant: &str,
        field: &'static str,
        name: &str,
        kid: &str,
        ciphertext: &str,
    ) -> Result<String> {
        self.enabled()?;
        if !kid.starts_with(&self::kid(tenant, "")) {
            return Err(Error::FailedPrecondition(
                reasons::SEALING_KEY_MISMATCH,
                format!(
                    "{name}: sealing key `{}` is not a key of tenant {tenant}; seal to the key \
                 GetSealingKey returns for tenants/{tenant}",
                    shown(kid)
                ),
            ));
        }
        let sealed = STANDARD.decode(ciphertext).map_err(|_| {
            Error::invalid(field, format!("{name}: ciphertext is not valid base64"))
        })?;
        if sealed.len() > MAX_SIZE_BYTES + coffer_crypto::sealed::OVERHEAD {
            return Err(Error::invalid(
                field,
                format!("{name}: sealed value over {MAX_SIZE_BYTES} bytes"),
            ));
        }
        let now = self.clock.now();
        let all = self.lock();
        let pair = all
            .get(tenant)
            .into_iter()
            .flatten()
            .find(|pair| pair.kid == kid && pair.expires_at > now)
            .ok_or_else(|| {
                Error::FailedPrecondition(reasons::SEALING_KEY_EXPIRED, format!(
                    "{name}: sealing key `{}` is unknown or expired; fetch a new one with GetSealingKey",
                    shown(kid)
                ))
            })?;
        let opened: SecretBytes = pair.pair.open(&sealed).map_err(|error| match error {
            SealError::TooShort | SealError::WeakKey | SealError::Decrypt | SealError::Seal => {
                Error::invalid(
                    field,
                    format!("{name}: decryption failed (sealed to another key, or altered)"),
                )
            }
        })?;
        let text = String::from_utf8(opened.into_inner())
            .map_err(|_| Error::invalid(field, format!("{name}: the value is not UTF-8")))?;
        Ok(text)
    }

    /// Opens every sealed value of `sealed` (field `field`) into `plain`; a name may not
    /// appear in both.
    ///
    /// # Errors
    /// INVALID_ARGUMENT for a name given twice; as [`SealingKeys::open`].
    pub(crate) fn open_into(
        &self,
        tenant: &str,
        field: &'static str,
        sealed: HashMap<String, pb::SealedValue>,
        mut plain: HashMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        for (name, value) in sealed {
            if plain.contains_key(&name) {
                return Err(Error::invalid(
                    field,
                    format!("`{name}` is given both sealed and in the clear"),
                ));
            }
            let opened = self.open(tenant, field, &name, &value.kid, &value.ciphertext)?;
            plain.insert(name, opened);
        }
        Ok(plain)
    }

    fn enabled(&self) -> Result<Duration> {
        self.lifetime.ok_or_else(|| {
            Error::FailedPrecondition(
                reasons::SEALED_INTAKE_DISABLED,
                "sealed intake is not enabled on this server".to_owned(),
            )
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Pair>>> {
        // A poisoned map at worst lost a pair: clients fetch a new key.
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn kid(tenant: &str, hex: &str) -> String {
    format!("tenants/{tenant}/sealingKeys/{hex}")
}

/// A kid as quoted in an error: not secret, but caller-chosen and possibly long.
fn shown(kid: &str) -> String {
    kid.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_b64(public_key: &[u8; 32], message: &[u8]) -> String {
        STANDARD.encode(coffer_crypto::sealed::seal(public_key, message).unwrap())
    }

    #[test]
    fn each_intake_failure_has_its_own_message() {
        let disabled = SealingKeys::new(None, Clock::system());
        assert!(
            disabled
                .current("acme")
                .unwrap_err()
                .to_string()
                .contains("not enabled")
        );
        assert!(
            disabled
                .open("acme", "env", "A", "kid", "AAAA")
                .unwrap_err()
                .to_string()
                .contains("not enabled")
        );

        let keys = SealingKeys::new(Some(Duration::from_secs(3600)), Clock::system());
        let key = keys.current("acme").unwrap();
        assert!(key.kid.starts_with("tenants/acme/sealingKeys/"));
        let sealed = seal_b64(&key.public_key, b"value");
        assert_eq!(
            keys.open("acme", "env", "A", &key.kid, &sealed).unwrap(),
            "value"
        );
        let error = |kid: &str, ciphertext: &str| {
            keys.open("acme", "env", "A", kid, ciphertext)
                .unwrap_err()
                .to_string()
        };
        assert!(error("nope", &sealed).contains("not a key of tenant acme"));
        assert!(error("tenants/acme/sealingKeys/00", &sealed).contains("unknown or expired"));
        assert!(error(&key.kid, "not base64!").contains("not valid base64"));
        let other = SealingKeyPair::generate().unwrap();
        assert!(
            error(&key.kid, &seal_b64(other.public_key(), b"value")).contains("decryption failed")
        );
        let big = vec![b'x'; MAX_SIZE_BYTES + 1];
        assert!(error(&key.kid, &seal_b64(&key.public_key, &big)).contains("over 65536 bytes"));
        assert!(error(&key.kid, &seal_b64(&key.public_key, &[0xff, 0xfe])).contains("not UTF-8"));
        // The same pair is handed out until half its lifetime has passed.
        assert_eq!(keys.current("acme").unwrap().kid, key.kid);
    }

    #[test]
    fn each_tenant_has_its_own_pair_and_refuses_the_others_boxes() {
        let keys = SealingKeys::new(Some(Duration::from_secs(3600)), Clock::system());
        let acme = keys.current("acme").unwrap();
        let globex = keys.current("globex").unwrap();
        assert_ne!(acme.public_key, globex.public_key);
        assert!(globex.kid.starts_with("tenants/globex/"));
        let sealed = seal_b64(&acme.public_key, b"acme secret");
        let replay = keys
            .open("globex", "env", "A", &acme.kid, &sealed)
            .unwrap_err();
        assert!(matches!(replay, Error::FailedPrecondition(..)), "{replay}");
        assert!(replay.to_string().contains("not a key of tenant globex"));
        // A tenant whose name is a prefix of another's is a different tenant.
        let acm = keys
            .open("acm", "env", "A", &acme.kid, &sealed)
            .unwrap_err();
        assert!(acm.to_string().contains("not a key of tenant acm"));
    }
}
