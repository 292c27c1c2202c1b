//! Create, read (masked), list, update, delete, reveal, validate.

use coffer_crypto::{Aad, DataKey, envelope};

use super::{Actor, credential_name};
use crate::audit_key::AuditKeys;
use crate::content::{Content, ContentKind, Opaque, zero_knowledge};
use crate::dek::DataKeys;
use crate::env::Env;
use crate::error::reasons;
use crate::metrics::Metrics;
use crate::names::CredentialName;
use crate::store::{CredentialRow, NewAuditEvent, RowVersion, Store};
use coffer_server::Clock;

use crate::{Error, Result};

/// How often a reveal reads a row that keeps changing before it gives up (ABORTED).
const REVEAL_ATTEMPTS: u32 = 3;

/// The operations, over storage and data keys.
pub(crate) struct Credentials {
    pub(super) store: Store,
    pub(super) keys: DataKeys,
    pub(super) rewrap_page_size: u32,
    pub(super) metrics: Metrics,
    pub(super) denials: super::audit::DenialBudget,
    pub(super) audit_keys: AuditKeys,
    pub(super) clock: Clock,
}

/// A validated CreateCredential.
#[derive(Debug)]
pub(crate) struct NewCredential {
    /// Tenant.
    pub(crate) tenant: String,
    /// MCP server id.
    pub(crate) server_id: String,
    /// Template id.
    pub(crate) template_id: String,
    /// Display name.
    pub(crate) server_name: String,
    /// The environment, or a zero-knowledge entry.
    pub(crate) content: Content,
    /// Integration names.
    pub(crate) configured_integrations: Vec<String>,
    /// Expiry.
    pub(crate) expire_time: Option<i64>,
}

impl Credentials {
    /// Assembles the operations.
    pub(crate) fn new(
        store: Store,
        keys: DataKeys,
        audit_keys: AuditKeys,
        rewrap_page_size: u32,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        Self {
            clock,
            store,
            keys,
            audit_keys,
            rewrap_page_size,
            metrics,
            denials: super::audit::DenialBudget::default(),
        }
    }

    /// Fetches key-service's key changes once and evicts the data keys they concern (see
    /// [`crate::dek`]).
    ///
    /// # Errors
    /// [`Error::KeyService`].
    pub(crate) async fn watch_key_changes(&self) -> Result<()> {
        self.keys.watch_once().await
    }

    /// The audit key of `tenant`'s chain (fail closed: no key, no audited operation).
    ///
    /// # Errors
    /// [`Error::KeyService`], [`Error::Database`].
    pub(super) async fn chain_key(
        &self,
        tenant: &str,
    ) -> Result<std::sync::Arc<coffer_crypto::AuditKey>> {
        self.audit_keys.key(&self.store, tenant).await
    }

    /// The store (for shutdown).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a credential under a fresh data key.
    ///
    /// # Errors
    /// [`Error::KeyService`] if key-service is down (nothing is written); [`Error::Database`].
    pub(crate) async fn create(
        &self,
        new: NewCredential,
        actor: &Actor,
    ) -> Result<(CredentialRow, Content)> {
        let mut id_bytes = [0u8; 16];
        coffer_crypto::fill_random(&mut id_bytes)?;
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let data_key = self.keys.generate(&new.tenant, &id).await?;
        let ciphertext = seal(&data_key.key, &new.tenant, &id, 1, &new.content)?;
        let time = self.now();
        let row = CredentialRow {
            tenant: new.tenant,
            id,
            server_id: new.server_id,
            template_id: new.template_id,
            server_name: new.server_name,
            configured_integrations: serde_json::to_string(&new.configured_integrations)
                .map_err(|_| Error::Corrupt("integrations"))?,
            wrapped_dek: data_key.wrapped,
            dek_key_version: data_key.key_version,
            ciphertext,
            created_by: actor.id.clone(),
            create_time: time,
            updated_by: actor.id.clone(),
            update_time: time,
            expire_time: new.expire_time,
            row_version: 1,
            kind: new.content.kind(),
        };
        let name = credential_name(&row.tenant, &row.id);
        let chain = self.chain_key(&row.tenant).await?;
        self.store
            .create(
                &row,
                &chain,
                &self.event(&row.tenant, actor, "create", &name, "success"),
            )
            .await?;
        Ok((row, new.content))
    }

    /// A credential and its decrypted content (for masking, or an opaque entry as stored).
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::KeyService`] when the data key is not cached and
    /// key-service is down; [`Error::Undecryptable`].
    pub(crate) async fn get(
        &self,
        name: &CredentialName,
        actor: &Actor,
    ) -> Result<(CredentialRow, Content)> {
        // A masked read: the row may come from memory (within the row cache's bound).
        let row = self.cached_row(name).await?;
        let content = self.open(&row, actor).await?;
        Ok((row, content))
    }

    /// One page of credentials with their environments.
    ///
    /// # Errors
    /// As [`Credentials::get`].
    pub(crate) async fn list(
        &self,
        tenant: &str,
        filter: (&str, &str),
        page_size: u32,
        after: &str,
        actor: &Actor,
    ) -> Result<(Vec<(CredentialRow, Content)>, Option<String>)> {
        let rows = self
            .store
            .list(tenant, after, filter.0, filter.1, page_size + 1)
            .await?;
        let (rows, next) = coffer_server::paging::split_page(rows, page_size, |row| row.id.clone());
        let mut page = Vec::with_capacity(rows.len());
        for row in rows {
            let env = self.open(&row, actor).await?;
            page.push((row, env));
        }
        Ok((page, next))
    }

    /// Sets and unsets entries if the row is still at `expected_version`.
    ///
    /// # Errors
    /// [`Error::Aborted`] for a stale version (nothing written); [`Error::FailedPrecondition`]
    /// for a zero-knowledge credential; as [`Credentials::get`].
    pub(crate) async fn update(
        &self,
        name: &CredentialName,
        expected_version: u64,
        set: Env,
        unset: &[String],
        actor: &Actor,
    ) -> Result<(CredentialRow, Content)> {
        self.change(name, expected_version, actor, |content| {
            let mut env = content.into_env(&name.to_string())?;
            env.apply(set, unset);
            env.check("set_env")?;
            Ok(Content::Env(env))
        })
        .await
    }

    /// Replaces a zero-knowledge credential's entry if the row is still at `expected_version`.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] for a credential that is not zero-knowledge; as
    /// [`Credentials::update`].
    pub(crate) async fn replace_opaque(
        &self,
        name: &CredentialName,
        expected_version: u64,
        opaque: Opaque,
        actor: &Actor,
    ) -> Result<(CredentialRow, Content)> {
        self.change(name, expected_version, actor, |content| match content {
            Content::Opaque(_) => Ok(Content::Opaque(opaque)),
            Content::Env(_) => Err(Error::FailedPrecondition(
                reasons::NOT_ZERO_KNOWLEDGE,
                format!("{name} is not zero-knowledge; set its variables with set_env"),
            )),
        })
        .await
    }

    /// Re-encrypts a row with `edit` applied, under a new row version, if the row is still at
    /// `expected_version`.
    async fn change(
        &self,
        name: &CredentialName,
        expected_version: u64,
        actor: &Actor,
        edit: impl FnOnce(Content) -> Result<Content>,
    ) -> Result<(CredentialRow, Content)> {
        let (tenant, id) = (name.tenant().as_str(), name.id());
        let stale = || Error::Aborted(name.to_string(), expected_version);
        let expected = i64::try_from(expected_version).map_err(|_| stale())?;
        let mut row = self.row(name).await?;
        if row.row_version != expected {
            return Err(stale());
        }
        let key = self.keys.unwrap(tenant, id, &row.wrapped_dek).await?;
        let content = edit(self.open(&row, actor).await?)?;
        row.row_version = expected + 1;
        row.ciphertext = seal(&key, tenant, id, row.row_version, &content)?;
        row.updated_by = actor.id.clone();
        row.update_time = self.now();
        let resource = name.to_string();
        let event = self.event(tenant, actor, "update", &resource, "success");
        let chain = self.chain_key(tenant).await?;
        if !self.store.update(&row, expected, &chain, &event).await? {
            return Err(stale());
        }
        Ok((row, content))
    }

    /// Deletes a credential.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Database`].
    pub(crate) async fn delete(&self, name: &CredentialName, actor: &Actor) -> Result<()> {
        let (tenant, id, name) = (name.tenant().as_str(), name.id(), name.to_string());
        let chain = self.chain_key(tenant).await?;
        if self
            .store
            .delete(
                tenant,
                id,
                &chain,
                &self.event(tenant, actor, "delete", &name, "success"),
            )
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound(name))
        }
    }

    /// The environment in the clear (for a reveal or a hydrate, named by `action`), after
    /// writing the audit event: if the event cannot be written, nothing is revealed.
    ///
    /// The row may come from memory, as a masked read's does; the audit event is appended
    /// only if the row is still current when it commits ([`Store::audit_read`]), so what is
    /// revealed is never older than the event's place in the chain. A row that changed is
    /// evicted and read again from the database.
    ///
    /// # Errors
    /// [`Error::FailedPrecondition`] for an expired credential; [`Error::Aborted`] if the row
    /// kept changing while it was being revealed; the audit write's error; as
    /// [`Credentials::get`].
    pub(crate) async fn reveal(
        &self,
        name: &CredentialName,
        action: &str,
        actor: &Actor,
    ) -> Result<(CredentialRow, Env)> {
        let (tenant, resource) = (name.tenant().as_str(), name.to_string());
        let chain = self.chain_key(tenant).await?;
        let mut last_seen = 0;
        for _ in 0..REVEAL_ATTEMPTS {
            let row = self.cached_row(name).await?;
            if row.kind != ContentKind::Env {
                return Err(zero_knowledge(&resource));
            }
            if row.expire_time.is_some_and(|t| t <= self.now()) {
                return Err(Error::FailedPrecondition(
                    reasons::CREDENTIAL_EXPIRED,
                    format!("{resource} has expired"),
                ));
            }
            let event = self.event(tenant, actor, action, &resource, "success");
            if self
                .store
                .audit_read(&chain, &event, RowVersion::of(&row))
                .await?
            {
                self.metrics.reveals.inc();
                let env = self.open(&row, actor).await?.into_env(&resource)?;
                return Ok((row, env));
            }
            last_seen = row.row_version;
        }
        Err(Error::Aborted(
            resource,
            u64::try_from(last_seen).unwrap_or_default(),
        ))
    }

    /// Which of `required` are missing or empty.
    ///
    /// # Errors
    /// As [`Credentials::get`].
    pub(crate) async fn validate(
        &self,
        name: &CredentialName,
        required: &[String],
        actor: &Actor,
    ) -> Result<Vec<String>> {
        let (_, content) = self.get(name, actor).await?;
        let env = content.into_env(&name.to_string())?;
        Ok(required
            .iter()
            .filter(|name| env.entries().get(*name).is_none_or(String::is_empty))
            .cloned()
            .collect())
    }

    async fn row(&self, name: &CredentialName) -> Result<CredentialRow> {
        self.store
            .get(name.tenant().as_str(), name.id())
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// As [`Credentials::row`], from the row cache when it holds the row.
    async fn cached_row(&self, name: &CredentialName) -> Result<CredentialRow> {
        self.store
            .get_cached(name.tenant().as_str(), name.id())
            .await?
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// Decrypts a row's environment; a row that does not decrypt is audited as such.
    async fn open(&self, row: &CredentialRow, actor: &Actor) -> Result<Content> {
        let opened = async {
            let key = self
                .keys
                .unwrap(&row.tenant, &row.id, &row.wrapped_dek)
                .await?;
            let json = envelope::Envelope::parse(&row.ciphertext)
                .and_then(|sealed| sealed.open(&*key, &aad(&row.tenant, &row.id, row.row_version)))
                .map_err(|_| Error::Undecryptable)?;
            Content::from_json(row.kind, json.expose_secret())
        }
        .await;
        if let Err(Error::Undecryptable) = opened {
            self.metrics.decrypt_failures.inc();
            let name = credential_name(&row.tenant, &row.id);
            let chain = self.chain_key(&row.tenant).await?;
            self.store
                .audit(
                    &chain,
                    &self.event(&row.tenant, actor, "decrypt_failed", &name, "failure"),
                )
                .await?;
        }
        opened
    }
}

/// The AAD of a credential's ciphertext: tenant, id and row version, so a ciphertext moved to
/// another row, tenant or version does not decrypt.
fn aad(tenant: &str, id: &str, row_version: i64) -> Aad {
    Aad::new("coffer/credential/v1")
        .field(tenant.as_bytes())
        .field(id.as_bytes())
        .field(&row_version.to_be_bytes())
}

fn seal(
    key: &DataKey,
    tenant: &str,
    id: &str,
    row_version: i64,
    content: &Content,
) -> Result<Vec<u8>> {
    Ok(envelope::seal(
        key,
        1,
        &aad(tenant, id, row_version),
        &content.to_json()?,
    )?)
}

impl Credentials {
    /// Now, in unix seconds, on the service's clock.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// An audit event of `actor` at this moment.
    fn event<'a>(
        &self,
        tenant: &'a str,
        actor: &'a Actor,
        action: &'a str,
        name: &'a str,
        outcome: &'a str,
    ) -> NewAuditEvent<'a> {
        NewAuditEvent {
            tenant,
            actor: &actor.id,
            action,
            credential: name,
            outcome,
            request_id: &actor.request_id,
            time: self.now(),
        }
    }
}
