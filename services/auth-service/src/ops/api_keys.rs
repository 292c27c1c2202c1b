//! API keys: creation, listing, revocation, rolling, verification and exchange.
//!
//! Verification: parse and checksum (no I/O for a malformed key) -> the cache, keyed by the
//! SHA-256 of the whole key (hot keys never pay bcrypt and never wait on the bcrypt pool) ->
//! the block of the calling source (see [`super::Lockout`]) -> the row -> one bcrypt check
//! (against a decoy hash when the id is unknown, so an unknown id costs what a wrong secret
//! costs; a failure counts against the source, never against the key) -> revocation, expiry
//! and the owner's current scopes.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coffer_authn::{Principal, Scope, Scopes};
use coffer_crypto::apikey::ApiKey;
use lru::LruCache;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use super::directory::effective_scopes;
use super::{Auth, Tokens, seconds};
use crate::source::Source;
use crate::store::{ApiKeyRow, ChainEvent, RolledSecret};
use crate::{Error, Result};

/// Longest grace period of a roll.
pub(crate) const MAX_ROLL_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Whom a verified API key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedKey {
    /// The key's public id.
    pub(crate) id: String,
    /// Its tenant.
    pub(crate) tenant: String,
    /// Its principal.
    pub(crate) principal_id: String,
    /// Its scopes (bounded by the owner's current ones).
    pub(crate) scopes: Scopes,
    /// Its expiry, if any (unix seconds).
    pub(crate) expire_time: Option<i64>,
    /// The owner's role generation when verified (tokens exchanged for the key carry it).
    pub(crate) owner_generation: u64,
}

impl VerifiedKey {
    /// The key as a request principal.
    pub(crate) fn principal(&self) -> Principal {
        Principal {
            tenant: self.tenant.clone(),
            subject: self.principal_id.clone(),
            scopes: self.scopes.clone(),
            roles: Vec::new(),
            api_key: Some(self.id.clone()),
        }
    }
}

/// A new key: its row and the plaintext, shown once.
pub(crate) struct IssuedKey {
    /// The stored metadata.
    pub(crate) row: ApiKeyRow,
    /// `mcp_sk_...`.
    pub(crate) key: ApiKey,
}

/// What CreateApiKey asks for, validated at the edge.
pub(crate) struct NewApiKey {
    /// Tenant.
    pub(crate) tenant: String,
    /// Owner.
    pub(crate) principal_id: String,
    /// Label.
    pub(crate) display_name: String,
    /// Requested scopes; `None` means all of the owner's.
    pub(crate) scopes: Option<Scopes>,
    /// Lifetime, if any.
    pub(crate) ttl: Option<Duration>,
    /// Who asks (for `created_by`).
    pub(crate) created_by: String,
    /// The creator's own scopes, when the creator is a principal: a key can never grant more.
    pub(crate) creator_scopes: Option<Scopes>,
    /// Where the request came from (for the bcrypt pool's per-source share).
    pub(crate) source: Source,
    /// The API key behind the creator's bearer, if any: revoking it revokes the new key.
    pub(crate) parent_id: Option<String>,
}

/// Verified keys, by SHA-256 of the whole key, for a short time.
///
/// Concurrent verifications of one key run bcrypt once: the first takes the key's turn
/// ([`KeyCache::turn`]) and the others wait for it, then find its answer cached. Without this,
/// a burst of calls with a key whose entry just expired would each start a quarter-second
/// bcrypt check, fill the bounded pool and be shed (RESOURCE_EXHAUSTED).
pub(crate) struct KeyCache {
    entries: Mutex<LruCache<[u8; 32], (VerifiedKey, Instant)>>,
    ttl: Duration,
    /// One lock per key being verified now (removed by the last holder).
    turns: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to verify one key while other callers with the same key wait (see
/// [`KeyCache::turn`]).
pub(crate) struct Turn<'a> {
    cache: &'a KeyCache,
    digest: [u8; 32],
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Let the next waiter in first (it holds its own clone of the lock).
        drop(self.held.take());
        let mut turns = self
            .cache
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map and this turn hold it: no one else is waiting, so forget it. Checked
        // under the map lock, which every new waiter takes to clone it.
        if Arc::strong_count(&self.lock) == 2
            && turns
                .get(&self.digest)
                .is_some_and(|lock| Arc::ptr_eq(lock, &self.lock))
        {
            turns.remove(&self.digest);
        }
    }
}

impl KeyCache {
    /// A cache of at most `capacity` keys, each trusted for at most `ttl`.
    pub(crate) fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until no other call is verifying the key of `digest`, and holds that turn until
    /// dropped.
    pub(crate) async fn turn(&self, digest: [u8; 32]) -> Turn<'_> {
        let lock = Arc::clone(
            self.turns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(digest)
                .or_default(),
        );
        // Made before waiting, so a caller that gives up while waiting still cleans up.
        let mut turn = Turn {
            cache: self,
            digest,
            lock,
            held: None,
        };
        turn.held = Some(Arc::clone(&turn.lock).lock_owned().await);
        turn
    }

    fn get(&self, digest: &[u8; 32]) -> Option<VerifiedKey> {
        let mut entries = self.lock();
        match entries.get(digest) {
            Some((key, until)) if Instant::now() < *until => Some(key.clone()),
            Some(_) => {
                entries.pop(digest);
                None
            }
            None => None,
        }
    }

    fn insert(&self, digest: [u8; 32], key: VerifiedKey, lifetime: Duration) {
        let until = Instant::now() + self.ttl.min(lifetime);
        self.lock().put(digest, (key, until));
    }

    /// Forgets every cached verification of key `id` (after a revocation or roll).
    pub(crate) fn evict(&self, id: &str) {
        self.evict_where(|key| key.id == id);
    }

    /// Forgets every cached verification of the keys of one principal (after its roles
    /// changed: the keys' scopes are bounded by the owner's current ones).
    pub(crate) fn evict_owner(&self, tenant: &str, principal_id: &str) {
        self.evict_where(|key| key.tenant == tenant && key.principal_id == principal_id);
    }

    fn evict_where(&self, stale: impl Fn(&VerifiedKey) -> bool) {
        let mut entries = self.lock();
        let digests: Vec<[u8; 32]> = entries
            .iter()
            .filter(|(_, (key, _))| stale(key))
            .map(|(digest, _)| *digest)
            .collect();
        for digest in digests {
            entries.pop(&digest);
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<[u8; 32], (VerifiedKey, Instant)>> {
        // A poisoned cache can at worst miss an entry: a cache miss, never a wrong answer.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Auth {
    /// Creates a key; the plaintext is in the result and nowhere else.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown principal; [`Error::InvalidArgument`] for scopes
    /// beyond the principal's (or the creator's); [`Error::ResourceExhausted`].
    pub(crate) async fn create_api_key(&self, new: NewApiKey) -> Result<IssuedKey> {
        if new.display_name.chars().count() > 200 {
            return Err(Error::invalid("display_name", "at most 200 characters"));
        }
        let owner = self
            .store
            .principal(&new.tenant, &new.principal_id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "tenants/{}/principals/{}",
                    new.tenant, new.principal_id
                ))
            })?;
        let available = effective_scopes(&owner)?;
        // No scopes asked for: everything the principal holds that the caller holds too (a
        // narrow key creating a key for its own principal gets its own scopes, not a refusal).
        let scopes = new.scopes.unwrap_or_else(|| match &new.creator_scopes {
            Some(creator) => available.intersection(creator),
            None => available.clone(),
        });
        let allowed = |scope: Scope| {
            available.contains(scope)
                && new
                    .creator_scopes
                    .as_ref()
                    .is_none_or(|c| c.contains(scope))
        };
        if let Some(excess) = scopes.iter().find(|scope| !allowed(*scope)) {
            return Err(Error::invalid(
                "scopes",
                format!("{excess} is beyond what the principal or caller holds"),
            ));
        }
        let key = ApiKey::generate()?;
        let secret_hash = self
            .passwords
            .hash(
                SecretString::from(key.expose_secret_part().to_owned()),
                &new.source,
            )
            .await?;
        let created = self.now();
        let row = ApiKeyRow {
            id: key.id().to_string(),
            tenant: new.tenant,
            principal_id: new.principal_id,
            display_name: new.display_name,
            secret_hash,
            previous_hash: None,
            previous_valid_until: None,
            scopes: scopes.to_string(),
            hint: key.hint(),
            created_by: new.created_by,
            create_time: created,
            expire_time: new.ttl.map(|ttl| created.saturating_add(seconds(ttl))),
            last_used_time: None,
            revoke_time: None,
            parent_id: new.parent_id,
        };
        let subject = format!(
            "tenants/{}/apiKeys/{} principal={} scopes=[{}]",
            row.tenant, row.id, row.principal_id, row.scopes
        );
        let event = ChainEvent {
            tenant: &row.tenant,
            actor: &row.created_by,
            action: "api_key.create",
            subject: &subject,
            outcome: "success",
        };
        self.store
            .insert_api_key(&row, self.audit_key(), &event)
            .await?;
        Ok(IssuedKey { row, key })
    }

    /// One page of a tenant's keys and the next page's token.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn list_api_keys(
        &self,
        tenant: &str,
        page_size: u32,
        after: &str,
    ) -> Result<(Vec<ApiKeyRow>, Option<String>)> {
        let rows = self
            .store
            .list_api_keys(tenant, after, page_size + 1)
            .await?;
        Ok(coffer_server::paging::split_page(rows, page_size, |row| {
            row.id.clone()
        }))
    }

    /// A key of `tenant`.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn api_key(&self, tenant: &str, id: &str) -> Result<ApiKeyRow> {
        self.store
            .api_key(id)
            .await?
            .filter(|row| row.tenant == tenant)
            .ok_or_else(|| Error::NotFound(format!("tenants/{tenant}/apiKeys/{id}")))
    }

    /// Revokes a key now, with every key created with it (recursively), here and on every
    /// replica (NOTIFY, and the change poll behind it); verifiers elsewhere learn it from
    /// the revocation feed, which also ends every token exchanged for these keys.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn revoke_api_key(
        &self,
        tenant: &str,
        id: &str,
        actor: &str,
    ) -> Result<ApiKeyRow> {
        let forget_after = self.forget_after();
        let subject = format!("tenants/{tenant}/apiKeys/{id} and the keys derived from it");
        let event = ChainEvent {
            tenant,
            actor,
            action: "api_key.revoke",
            subject: &subject,
            outcome: "success",
        };
        let (row, revoked) = self
            .store
            .revoke_api_key(
                tenant,
                id,
                self.now(),
                forget_after,
                self.audit_key(),
                &event,
            )
            .await?;
        let row = row.ok_or_else(|| Error::NotFound(format!("tenants/{tenant}/apiKeys/{id}")))?;
        for revoked in &revoked {
            self.api_key_cache.evict(revoked);
            self.store.notify_change(&format!("apikey:{revoked}")).await;
        }
        if revoked.len() > 1 {
            tracing::info!(
                key = id,
                derived = revoked.len() - 1,
                "revoked derived API keys too"
            );
        }
        Ok(row)
    }

    /// Gives a key a new secret; the old one stays valid for `grace`.
    ///
    /// # Errors
    /// [`Error::NotFound`] (or revoked), [`Error::InvalidArgument`] for too long a grace.
    pub(crate) async fn roll_api_key(
        &self,
        tenant: &str,
        id: &str,
        grace: Duration,
        source: &Source,
        actor: &str,
    ) -> Result<IssuedKey> {
        if grace > MAX_ROLL_GRACE {
            return Err(Error::invalid("grace_period", "at most 7 days (604800 s)"));
        }
        let key = ApiKey::generate_with_id(
            &coffer_crypto::apikey::ApiKeyId::parse(id)
                .map_err(|_| Error::NotFound(format!("tenants/{tenant}/apiKeys/{id}")))?,
        )?;
        let hash = self
            .passwords
            .hash(
                SecretString::from(key.expose_secret_part().to_owned()),
                source,
            )
            .await?;
        let changed = self.now();
        let subject = format!("tenants/{tenant}/apiKeys/{id} grace={}s", grace.as_secs());
        let event = ChainEvent {
            tenant,
            actor,
            action: "api_key.roll",
            subject: &subject,
            outcome: "success",
        };
        let secret = RolledSecret {
            hash: &hash,
            hint: &key.hint(),
            previous_until: changed.saturating_add(seconds(grace)),
            now: changed,
        };
        let row = self
            .store
            .roll_api_key(tenant, id, &secret, self.audit_key(), &event)
            .await?
            .ok_or_else(|| Error::NotFound(format!("tenants/{tenant}/apiKeys/{id}")))?;
        self.api_key_cache.evict(id);
        self.store.notify_change(&format!("apikey:{id}")).await;
        Ok(IssuedKey { row, key })
    }

    /// Verifies a presented key from `source` (see the module docs for the order of checks).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for any invalid key; [`Error::ResourceExhausted`] while the
    /// source is blocked or bcrypt is saturated; [`Error::Database`].
    pub(crate) async fn verify_api_key(
        &self,
        presented: &SecretString,
        source: &Source,
    ) -> Result<VerifiedKey> {
        let key = ApiKey::parse(presented.expose_secret())
            .map_err(|_| Error::unauthenticated("malformed API key"))?;
        let digest: [u8; 32] = Sha256::digest(key.expose_secret().as_bytes()).into();
        // A cached verification never outlives the key's expiry on the service's clock.
        let cached = || {
            self.api_key_cache
                .get(&digest)
                .filter(|hit| hit.expire_time.is_none_or(|expiry| expiry > self.now()))
        };
        if let Some(hit) = cached() {
            return Ok(hit);
        }
        // One bcrypt check per key at a time: a concurrent caller with the same key waits for
        // this one and then finds its answer in the cache (a failure is not cached, so each
        // waiter then checks in turn, one at a time).
        let _turn = self.api_key_cache.turn(digest).await;
        if let Some(hit) = cached() {
            return Ok(hit);
        }
        let checked = self.now();
        self.check_source(source, checked).await?;
        let row = self.store.api_key(key.id().as_str()).await?;
        let secret = || SecretString::from(key.expose_secret_part().to_owned());
        let mut valid = self
            .passwords
            .verify(
                secret(),
                row.as_ref().map(|r| r.secret_hash.as_str()),
                source,
            )
            .await?;
        if let Some(row) = row
            .as_ref()
            .filter(|r| !valid && r.previous_valid_until.is_some_and(|t| t > checked))
        {
            valid = self
                .passwords
                .verify(secret(), row.previous_hash.as_deref(), source)
                .await?;
        }
        let Some(row) = row.filter(|_| valid) else {
            self.record_source_failure(source, checked).await?;
            return Err(Error::unauthenticated("wrong API key"));
        };
        if row.revoke_time.is_some() {
            return Err(Error::unauthenticated("revoked API key"));
        }
        if row.expire_time.is_some_and(|t| t <= checked) {
            return Err(Error::unauthenticated("expired API key"));
        }
        let stored =
            Scopes::parse(&row.scopes).map_err(|_| Error::Corrupt("unknown stored scope"))?;
        // A key never speaks with more authority than its owner has now: a demoted owner's
        // keys shrink with it (and SetRoles evicts them from every replica's cache).
        let owner = self
            .store
            .principal(&row.tenant, &row.principal_id)
            .await?
            .ok_or(Error::unauthenticated("API key of a deleted principal"))?;
        let scopes = stored.intersection(&effective_scopes(&owner)?);
        self.store.touch_api_key(&row.id, checked).await?;
        let verified = VerifiedKey {
            id: row.id,
            tenant: row.tenant,
            principal_id: row.principal_id,
            scopes,
            expire_time: row.expire_time,
            owner_generation: owner.generation,
        };
        let lifetime = row.expire_time.map_or(Duration::MAX, |t| {
            Duration::from_secs(u64::try_from(t - checked).unwrap_or(0))
        });
        self.api_key_cache
            .insert(digest, verified.clone(), lifetime);
        Ok(verified)
    }

    /// Exchanges a key for a short-lived access token with the key's scopes.
    ///
    /// # Errors
    /// As [`Auth::verify_api_key`].
    pub(crate) async fn exchange_api_key(
        &self,
        presented: &SecretString,
        source: &Source,
    ) -> Result<Tokens> {
        let verified = self.verify_api_key(presented, source).await?;
        let ttl = self.keys.settings().access_token_ttl;
        // The token never outlives the key, and names it so that revoking the key ends it.
        let ttl = verified.expire_time.map_or(ttl, |expiry| {
            let left = u64::try_from(expiry.saturating_sub(self.now())).unwrap_or(0);
            ttl.min(Duration::from_secs(left))
        });
        let access_token = self.access_token(&super::tokens::Grant {
            tenant: &verified.tenant,
            subject: &verified.principal_id,
            scopes: &verified.scopes,
            roles: &[],
            akid: Some(&verified.id),
            generation: verified.owner_generation,
            ttl,
            audience: None,
            client_id: None,
        })?;
        Ok(Tokens {
            access_token,
            expires_in: ttl.as_secs(),
            refresh_token: SecretString::from(String::new()),
            refresh_expires_in: 0,
            scope: verified.scopes.to_string(),
        })
    }

    /// The revocation feed from `since` (see ListRevocations): at most `limit` entries, and
    /// whether more follow.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn revocations_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<(Vec<crate::store::RevocationRow>, bool, i64)> {
        let answered = self.now();
        let rows = self
            .store
            .revocations_since(since, answered, limit + 1)
            .await?;
        let (rows, more) = coffer_server::paging::split_page(rows, limit, |_| String::new());
        Ok((rows, more.is_some(), answered))
    }

    /// Applies a change another replica announced (see `Store::notify_change`).
    ///
    /// # Errors
    /// [`Error::KeyService`] or [`Error::Database`] when reloading signing keys fails.
    pub(crate) async fn apply_change(&self, change: &str) -> Result<()> {
        if let Some(id) = change.strip_prefix("apikey:") {
            self.api_key_cache.evict(id);
            return Ok(());
        }
        if let Some((tenant, id)) = change
            .strip_prefix("principal:")
            .and_then(|owner| owner.split_once('/'))
        {
            self.api_key_cache.evict_owner(tenant, id);
            return Ok(());
        }
        self.keys.reload().await
    }

    /// Evicts cached verifications of keys revoked or rolled at or after `since` (possibly
    /// by another replica). Returns how many keys changed.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub(crate) async fn evict_changed_api_keys(&self, since: i64) -> Result<usize> {
        let changed = self.store.api_keys_changed_since(since).await?;
        for id in &changed {
            self.api_key_cache.evict(id);
        }
        Ok(changed.len())
    }
}
