//! Two-step sign-in: a TOTP second factor (RFC 6238) and recovery codes.
//!
//! A user enrolls by asking for a secret ([`Auth::enroll_totp`]), adding it to an
//! authenticator app and proving it with a code ([`Auth::confirm_totp`]), which returns ten
//! recovery codes, shown once. Only then does sign-in ask for a code. The secret is stored
//! only as key-service ciphertext under the tenant's `auth-factors` key, bound to the user by
//! the encryption context (so a ciphertext copied to another user's row does not decrypt);
//! without key-service no code can be checked and the sign-in fails UNAVAILABLE. Each code
//! is accepted once (the accepted step is kept, compare-and-set, so two replicas cannot
//! both accept it); recovery codes are 80-bit random values kept as SHA-256 hashes.

use coffer_crypto::totp::TotpSecret;
use coffer_key_client::{Ciphertext, Context};
use secrecy::{ExposeSecret as _, SecretString};
use zeroize::Zeroize as _;

use super::Auth;
use super::oauth::hash;
use crate::store::{ChainEvent, Confirmation, PrincipalKind, PrincipalRow};
use crate::{Error, Result};

/// The key-service key of `tenant`'s second factors.
fn factor_key(tenant: &str) -> String {
    format!("tenants/{tenant}/keys/auth-factors")
}

/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "Coffer";
/// Recovery codes made at confirmation.
const RECOVERY_CODES: usize = 10;
/// Random bytes of a recovery code: 80 bits, 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;
/// Longest second-factor text read (a recovery code with separators and spaces).
const MAX_CODE_LEN: usize = 64;

/// A started enrollment: the secret for the user's app. `Debug` shows only the account.
pub(crate) struct Enrollment {
    /// Base32, to type in.
    pub(crate) secret: SecretString,
    /// The `otpauth://` URI, for a QR code.
    pub(crate) uri: SecretString,
    /// `{tenant}/{principal}`.
    pub(crate) account: String,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// A user's second factor, as the user may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FactorStatus {
    /// When it was confirmed; `None` when sign-in asks for no code.
    pub(crate) confirm_time: Option<i64>,
    /// Unused recovery codes.
    pub(crate) recovery_codes_left: i64,
}

impl Auth {
    /// Starts an enrollment for a user, replacing an unconfirmed one.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] while a confirmed factor exists or for a principal that
    /// is not a user; [`Error::KeyService`] (fail closed); [`Error::Database`].
    pub(crate) async fn enroll_totp(&self, tenant: &str, principal_id: &str) -> Result<Enrollment> {
        if self.user(tenant, principal_id).await?.is_none() {
            return Err(Error::FailedPrecondition(
                "only users sign in with a second factor",
            ));
        }
        let enabled = || Error::FailedPrecondition("a second factor is already enabled");
        if self
            .store
            .factor(tenant, principal_id)
            .await?
            .is_some_and(|row| row.confirm_time.is_some())
        {
            return Err(enabled());
        }
        let secret = TotpSecret::generate()?;
        let key = factor_key(tenant);
        if self.key_service.ensure_key(&key, false).await? {
            tracing::info!(key = %key, "created the second-factor encryption key");
        }
        let ciphertext = self
            .key_service
            .encrypt_text(&key, secret.expose_secret(), context(tenant, principal_id))
            .await?;
        if !self
            .store
            .begin_factor(tenant, principal_id, &ciphertext, self.now())
            .await?
        {
            return Err(enabled());
        }
        let account = format!("{tenant}/{principal_id}");
        Ok(Enrollment {
            secret: secret.base32(),
            uri: secret.otpauth_uri(ISSUER, &account),
            account,
        })
    }

    /// Confirms the pending enrollment with a code from its secret: the recovery codes.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] when no enrollment is pending;
    /// [`Error::InvalidArgument`] for a code that is not the secret's current one;
    /// [`Error::KeyService`] (fail closed); [`Error::Database`].
    pub(crate) async fn confirm_totp(
        &self,
        tenant: &str,
        principal_id: &str,
        code: &SecretString,
        actor: &str,
    ) -> Result<Vec<SecretString>> {
        let not_pending = || Error::FailedPrecondition("no enrollment is pending: enroll first");
        let row = self
            .store
            .factor(tenant, principal_id)
            .await?
            .filter(|row| row.confirm_time.is_none())
            .ok_or_else(not_pending)?;
        let secret = self
            .factor_secret(tenant, principal_id, &row.secret_ciphertext)
            .await?;
        let step = secret
            .verify(code.expose_secret(), self.now(), None)
            .ok_or_else(|| {
                Error::invalid(
                    "code",
                    "not the current code of the new secret (is the device's clock right?)",
                )
            })?;
        let codes = (0..RECOVERY_CODES)
            .map(|_| new_recovery_code())
            .collect::<Result<Vec<_>>>()?;
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| recovery_hash(code.expose_secret()))
            .collect::<Option<_>>()
            .ok_or(Error::Corrupt("generated recovery code"))?;
        let subject = format!("tenants/{tenant}/principals/{principal_id} factor=totp");
        let event = ChainEvent {
            tenant,
            actor,
            action: "second_factor.enable",
            subject: &subject,
            outcome: "success",
        };
        let confirmation = Confirmation {
            tenant,
            principal_id,
            secret_ciphertext: &row.secret_ciphertext,
            step,
            recovery_hashes: &hashes,
        };
        if !self
            .store
            .confirm_factor(&confirmation, self.audit_key(), &event, self.now())
            .await?
        {
            return Err(not_pending());
        }
        Ok(codes)
    }

    /// The user's second factor.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn factor_status(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<FactorStatus> {
        let confirm_time = self
            .store
            .factor(tenant, principal_id)
            .await?
            .and_then(|row| row.confirm_time);
        let recovery_codes_left = if confirm_time.is_some() {
            self.store.recovery_codes_left(tenant, principal_id).await?
        } else {
            0
        };
        Ok(FactorStatus {
            confirm_time,
            recovery_codes_left,
        })
    }

    /// Removes the user's second factor and recovery codes (audited when there was one).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn remove_totp(
        &self,
        tenant: &str,
        principal_id: &str,
        actor: &str,
    ) -> Result<()> {
        let subject = format!("tenants/{tenant}/principals/{principal_id} factor=totp");
        let event = ChainEvent {
            tenant,
            actor,
            action: "second_factor.remove",
            subject: &subject,
            outcome: "success",
        };
        self.store
            .remove_factor(tenant, principal_id, self.audit_key(), &event, self.now())
            .await?;
        Ok(())
    }

    /// A user (a principal of kind user), if there is one.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn user(
        &self,
        tenant: &str,
        principal_id: &str,
    ) -> Result<Option<PrincipalRow>> {
        Ok(self
            .store
            .principal(tenant, principal_id)
            .await?
            .filter(|row| row.kind == PrincipalKind::User))
    }

    /// Whether sign-in asks this user for a second factor.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn has_second_factor(&self, tenant: &str, principal_id: &str) -> Result<bool> {
        Ok(self
            .store
            .factor(tenant, principal_id)
            .await?
            .is_some_and(|row| row.confirm_time.is_some()))
    }

    /// Checks a second factor: a code of the user's TOTP secret not accepted before, or an
    /// unused recovery code (spent by this call).
    ///
    /// # Errors
    /// [`Error::KeyService`] (fail closed: no code is accepted without it);
    /// [`Error::Database`].
    pub(crate) async fn check_second_factor(
        &self,
        tenant: &str,
        principal_id: &str,
        code: &SecretString,
    ) -> Result<bool> {
        let code = code.expose_secret();
        if code.len() > MAX_CODE_LEN {
            return Ok(false);
        }
        if let Some(code_hash) = recovery_hash(code) {
            let spent = self
                .store
                .spend_recovery_code(tenant, principal_id, &code_hash, self.now())
                .await?;
            if spent {
                tracing::info!(tenant, "a recovery code was used to sign in");
            }
            return Ok(spent);
        }
        let Some(row) = self
            .store
            .factor(tenant, principal_id)
            .await?
            .filter(|row| row.confirm_time.is_some())
        else {
            return Ok(false);
        };
        let secret = self
            .factor_secret(tenant, principal_id, &row.secret_ciphertext)
            .await?;
        match secret.verify(code, self.now(), row.last_step) {
            Some(step) => self.store.accept_step(tenant, principal_id, step).await,
            None => Ok(false),
        }
    }

    /// Decrypts a stored secret through key-service.
    async fn factor_secret(
        &self,
        tenant: &str,
        principal_id: &str,
        ciphertext: &str,
    ) -> Result<TotpSecret> {
        let plaintext = self
            .key_service
            .decrypt(
                &factor_key(tenant),
                Ciphertext::Text(ciphertext),
                context(tenant, principal_id),
            )
            .await?;
        TotpSecret::from_bytes(plaintext).map_err(|_| Error::Corrupt("stored TOTP secret"))
    }
}

/// Binds a stored secret to its purpose and user.
fn context(tenant: &str, principal_id: &str) -> Context {
    Context::from([
        ("purpose".to_owned(), "auth-service/totp".to_owned()),
        (
            "principal".to_owned(),
            format!("tenants/{tenant}/principals/{principal_id}"),
        ),
    ])
}

/// A new recovery code, `xxxx-xxxx-xxxx-xxxx` in lower-case base32.
fn new_recovery_code() -> Result<SecretString> {
    let mut random = [0u8; RECOVERY_CODE_BYTES];
    coffer_crypto::fill_random(&mut random)?;
    let text = SecretString::from(data_encoding::BASE32_NOPAD.encode(&random));
    random.zeroize();
    let mut code = String::with_capacity(19);
    for (i, c) in text.expose_secret().chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(c.to_ascii_lowercase());
    }
    Ok(SecretString::from(code))
}

/// The stored hash of a recovery code as typed (case, dashes and spaces ignored), or `None`
/// when the text is not shaped like one (then it may be a TOTP code).
fn recovery_hash(typed: &str) -> Option<String> {
    let normalized: String = typed
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let shaped = normalized.len() == 16
        && normalized
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b));
    shaped.then(|| hash(&format!("recovery:{normalized}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_80_random_bits_read_back_however_they_are_typed() {
        let code = new_recovery_code().unwrap();
        let text = code.expose_secret();
        assert_eq!(text.len(), 19, "four groups of four");
        assert_eq!(text.matches('-').count(), 3);
        let stored = recovery_hash(text).unwrap();
        let retyped = text.to_ascii_uppercase().replace('-', " ");
        assert_eq!(recovery_hash(&retyped), Some(stored.clone()));
        assert_eq!(recovery_hash(&text.replace('-', "")), Some(stored));
        assert_ne!(new_recovery_code().unwrap().expose_secret(), text);
        // Six digits are a TOTP code, not a recovery code.
        assert_eq!(recovery_hash("123456"), None);
        assert_eq!(
            recovery_hash("abcd-efgh-ijkl-mno1"),
            None,
            "1 is not base32"
        );
    }

    #[test]
    fn an_enrollment_debug_shows_no_secret() {
        let secret = TotpSecret::generate().unwrap();
        let enrollment = Enrollment {
            secret: secret.base32(),
            uri: secret.otpauth_uri(ISSUER, "acme/alice"),
            account: "acme/alice".into(),
        };
        let shown = format!("{enrollment:?}");
        assert!(!shown.contains(secret.base32().expose_secret()));
        assert!(shown.contains("acme/alice"));
    }
}
