//! Signing keys: generated here, stored only encrypted by key-service, published as a JWKS.
//!
//! The newest unretired key signs. Rotation stores a new key and retires the old one, which
//! stays in the JWKS for `access_token_ttl + leeway`, so every token it signed can still be
//! verified until it expires; then the row is deleted. Every replica reloads the key set every
//! `refresh_interval` and so picks up a rotation made by another.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use coffer_authn::jwks::{Jwk, Jwks};
use coffer_authn::jwt::{RsaBits, SigningKey, Verifier};
use coffer_crypto::AuditKey;
use coffer_key_client::{Ciphertext, Context, KeyClient};
use secrecy::ExposeSecret as _;

use crate::store::{ChainEvent, SigningKeyRow, Store};

/// The tenant whose audit chain records signing-key rotations.
pub(crate) const SYSTEM_TENANT: &str = "coffer-system";
use coffer_server::Clock;

use crate::{Error, Result};

/// Token settings the signing keys serve.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Clock-skew leeway when verifying.
    pub leeway: Duration,
    /// Size of new RSA keys.
    pub rsa_bits: RsaBits,
    /// The other audiences of issued tokens: the OAuth resources (set from
    /// [`crate::OAuthSettings::resources`] at start).
    pub other_audiences: Vec<String>,
}

/// Encrypts and decrypts private signing keys through key-service.
#[derive(Debug, Clone)]
pub(crate) struct KeyServiceVault {
    client: KeyClient,
    key_name: String,
}

impl KeyServiceVault {
    /// Uses `key_name` (`tenants/{t}/keys/{k}`) on key-service, creating the key if it does
    /// not exist yet.
    ///
    /// # Errors
    /// [`Error::KeyService`] if key-service refuses.
    pub(crate) async fn open(client: KeyClient, key_name: String) -> Result<Self> {
        if client.ensure_key(&key_name, false).await? {
            tracing::info!(key = %key_name, "created the signing-key encryption key");
        }
        Ok(Self { client, key_name })
    }

    async fn encrypt(&self, kid: &str, private_key: &[u8]) -> Result<String> {
        Ok(self
            .client
            .encrypt_text(&self.key_name, private_key, context(kid))
            .await?)
    }

    async fn decrypt(&self, kid: &str, ciphertext_text: &str) -> Result<SigningKey> {
        let plaintext = self
            .client
            .decrypt(
                &self.key_name,
                Ciphertext::Text(ciphertext_text),
                context(kid),
            )
            .await?;
        Ok(SigningKey::from_pkcs8(plaintext.expose_secret())?)
    }
}

/// The encryption context binding a stored private key to its purpose and kid.
fn context(kid: &str) -> Context {
    Context::from([
        (
            "purpose".to_owned(),
            "auth-service/jwt-signing-key".to_owned(),
        ),
        ("kid".to_owned(), kid.to_owned()),
    ])
}

/// What requests use: the signing key, the verifier and the published JWKS.
pub(crate) struct KeySet {
    /// Signs new tokens.
    pub(crate) signer: SigningKey,
    /// Verifies tokens from any published key, for Coffer's own audience: the bearers of
    /// Coffer's RPCs.
    pub(crate) verifier: Verifier,
    /// The same for any audience this server issues tokens for (Coffer's and the OAuth
    /// resources'): revocation and introspection, never authentication to Coffer.
    pub(crate) any_audience: Verifier,
    /// The published public keys, newest first.
    pub(crate) jwks: Jwks,
}

/// The live key set, swapped atomically on rotation or reload.
pub(crate) struct SigningKeys {
    store: Store,
    vault: KeyServiceVault,
    settings: TokenSettings,
    audit_key: Arc<AuditKey>,
    current: RwLock<Arc<KeySet>>,
    clock: Clock,
}

impl SigningKeys {
    /// The service's clock.
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Loads the published keys, creating the first signing key if there is none.
    ///
    /// # Errors
    /// [`Error::KeyService`] (fail closed: no key-service, no tokens), [`Error::Database`].
    pub(crate) async fn load(
        store: Store,
        vault: KeyServiceVault,
        settings: TokenSettings,
        audit_key: Arc<AuditKey>,
        clock: Clock,
    ) -> Result<Self> {
        let mut rows = store.published_signing_keys(clock.now()).await?;
        if !rows.iter().any(|row| row.retire_time.is_none()) {
            create_key(
                &store,
                &vault,
                &settings,
                &audit_key,
                "auth-service",
                clock.now(),
            )
            .await?;
            rows = store.published_signing_keys(clock.now()).await?;
        }
        let set = build(&rows, &vault, &settings).await?;
        Ok(Self {
            store,
            vault,
            settings,
            audit_key,
            current: RwLock::new(Arc::new(set)),
            clock,
        })
    }

    /// The token settings.
    pub(crate) fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// The current key set.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Generates, stores and switches to a new signing key; returns the published kids.
    ///
    /// # Errors
    /// [`Error::KeyService`], [`Error::Database`].
    pub(crate) async fn rotate(&self, actor: &str) -> Result<Vec<String>> {
        create_key(
            &self.store,
            &self.vault,
            &self.settings,
            &self.audit_key,
            actor,
            self.clock.now(),
        )
        .await?;
        self.reload().await?;
        self.store.notify_change("signing").await;
        Ok(self
            .current()
            .jwks
            .keys
            .iter()
            .map(|k| k.kid.clone())
            .collect())
    }

    /// Re-reads the published keys (another replica may have rotated) and swaps the set if
    /// it changed.
    ///
    /// # Errors
    /// [`Error::KeyService`], [`Error::Database`].
    pub(crate) async fn reload(&self) -> Result<()> {
        let rows = self.store.published_signing_keys(self.clock.now()).await?;
        let current = self.current();
        let kids: Vec<&str> = rows.iter().map(|row| row.kid.as_str()).collect();
        let published: Vec<&str> = current.jwks.keys.iter().map(|k| k.kid.as_str()).collect();
        if kids != published {
            let set = build(&rows, &self.vault, &self.settings).await?;
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
            tracing::info!(signing = %rows.first().map_or("", |r| r.kid.as_str()), "signing keys reloaded");
        }
        Ok(())
    }
}

/// Makes a new signing key, stores it (the previous one retires) and audits it, by `actor`,
/// in the chain of tenant `coffer-system`.
async fn create_key(
    store: &Store,
    vault: &KeyServiceVault,
    settings: &TokenSettings,
    audit_key: &AuditKey,
    actor: &str,
    now: i64,
) -> Result<()> {
    let bits = settings.rsa_bits;
    let key = tokio::task::spawn_blocking(move || SigningKey::generate(bits)).await??;
    let encrypted_private = vault
        .encrypt(key.kid(), key.to_pkcs8()?.expose_secret())
        .await?;
    let public_jwk = serde_json::to_string(key.jwk()).map_err(|_| Error::Corrupt("JWK"))?;
    let created = now;
    let unpublish_previous = created
        .saturating_add(i64::try_from(settings.access_token_ttl.as_secs()).unwrap_or(i64::MAX))
        .saturating_add(i64::try_from(settings.leeway.as_secs()).unwrap_or(0));
    let row = SigningKeyRow {
        kid: key.kid().to_owned(),
        encrypted_private,
        public_jwk,
        create_time: created,
        retire_time: None,
    };
    let event = ChainEvent {
        tenant: SYSTEM_TENANT,
        actor,
        action: "signing_key.rotate",
        subject: key.kid(),
        outcome: "success",
    };
    store
        .rotate_signing_key(&row, unpublish_previous, audit_key, &event)
        .await?;
    tracing::info!(kid = key.kid(), "new signing key");
    Ok(())
}

async fn build(
    rows: &[SigningKeyRow],
    vault: &KeyServiceVault,
    settings: &TokenSettings,
) -> Result<KeySet> {
    let signing = rows
        .iter()
        .find(|row| row.retire_time.is_none())
        .ok_or(Error::Corrupt("no active signing key"))?;
    let signer = vault
        .decrypt(&signing.kid, &signing.encrypted_private)
        .await?;
    if signer.kid() != signing.kid {
        return Err(Error::Corrupt("signing key does not match its kid"));
    }
    let keys = rows
        .iter()
        .map(|row| serde_json::from_str::<Jwk>(&row.public_jwk).map_err(|_| Error::Corrupt("JWK")))
        .collect::<Result<Vec<_>>>()?;
    let jwks = Jwks { keys };
    let verifier = Verifier::new(&settings.issuer, &settings.audience, &jwks, settings.leeway)?;
    let audiences: Vec<&str> = std::iter::once(settings.audience.as_str())
        .chain(settings.other_audiences.iter().map(String::as_str))
        .collect();
    let any_audience =
        Verifier::for_audiences(&settings.issuer, &audiences, &jwks, settings.leeway)?;
    Ok(KeySet {
        signer,
        verifier,
        any_audience,
        jwks,
    })
}
