//! What auth-service has revoked, mirrored in a verifier: access tokens by `jti`, API keys by
//! id (which revokes every token exchanged for them, by their `akid` claim), and principals'
//! role generations (a change of roles revokes the tokens of older generations, by `pgen`).
//!
//! The mirror is refreshed by polling ListRevocations every `poll_interval` (default 250 ms),
//! so a revocation reaches this verifier within that time plus one round trip. It fails
//! closed: when the last successful refresh is older than `max_staleness` (default one
//! second), the next check refreshes first, and if auth-service cannot answer, the check
//! fails with [`Error::Unavailable`] instead of trusting a stale list. Entries are dropped
//! after their `forget_time`, when every token they concern has expired anyway.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use coffer_proto::pb;
use coffer_proto::pb::auth_service_client::AuthServiceClient;
use coffer_proto::pb::revocation::Kind;
use coffer_server::task::{self, Start, Task};
use tonic::transport::Channel;

use crate::authenticator::Error;

/// The revocation mirror (see the module docs).
pub(crate) struct Revocations {
    client: AuthServiceClient<Channel>,
    max_staleness: Duration,
    state: RwLock<State>,
    /// Held while a refresh runs, so concurrent checks wait for one refresh, not start many.
    refreshing: tokio::sync::Mutex<()>,
}

struct State {
    /// Revoked `jti`s -> forget time (unix seconds).
    access_tokens: HashMap<String, i64>,
    /// Revoked API key ids -> forget time.
    api_keys: HashMap<String, i64>,
    /// `{tenant}/{principal}` -> (forget time, lowest valid role generation).
    principals: HashMap<String, (i64, u64)>,
    /// The `since_time` of the next refresh.
    cursor: i64,
    synced: Instant,
}

impl Revocations {
    /// Loads every revocation still relevant, then refreshes every `poll_interval` in the
    /// background until the returned [`Task`] is dropped.
    ///
    /// # Errors
    /// [`Error::Unavailable`] if auth-service cannot be asked.
    pub(crate) async fn start(
        client: AuthServiceClient<Channel>,
        poll_interval: Duration,
        max_staleness: Duration,
    ) -> Result<(Arc<Self>, Task), Error> {
        let revocations = Arc::new(Self {
            client,
            max_staleness,
            state: RwLock::new(State {
                access_tokens: HashMap::new(),
                api_keys: HashMap::new(),
                principals: HashMap::new(),
                cursor: 0,
                synced: Instant::now(),
            }),
            refreshing: tokio::sync::Mutex::new(()),
        });
        revocations.refresh().await?;
        let mirror = Arc::clone(&revocations);
        // A failure is logged by the task (once per outage); checks fail closed once the
        // mirror is stale.
        let poll = task::every(
            "revocation poll",
            poll_interval,
            Start::AfterPeriod,
            move || {
                let mirror = Arc::clone(&mirror);
                async move { mirror.refresh().await }
            },
        );
        Ok((revocations, poll))
    }

    /// Checks a token's `jti`, the API key it derives from, and its principal's role
    /// generation (`((tenant, principal), pgen)`), whichever are given. Lookups borrow;
    /// nothing is allocated unless some principal's roles changed recently.
    ///
    /// # Errors
    /// [`Error::Invalid`] if any is revoked; [`Error::Unavailable`] if the mirror is stale
    /// and cannot be refreshed.
    pub(crate) async fn check(
        &self,
        jti: Option<&str>,
        api_key: Option<&str>,
        principal: Option<((&str, &str), u64)>,
    ) -> Result<(), Error> {
        if self.stale() {
            let _one_at_a_time = self.refreshing.lock().await;
            if self.stale() {
                self.refresh().await?;
            }
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let revoked = |map: &HashMap<String, i64>, id: Option<&str>| {
            id.is_some_and(|id| map.contains_key(id))
        };
        let outdated = !state.principals.is_empty()
            && principal.is_some_and(|((tenant, id), generation)| {
                state
                    .principals
                    .get(&format!("{tenant}/{id}"))
                    .is_some_and(|(_, lowest)| generation < *lowest)
            });
        if revoked(&state.access_tokens, jti) || revoked(&state.api_keys, api_key) || outdated {
            return Err(Error::Invalid);
        }
        Ok(())
    }

    fn stale(&self) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.synced.elapsed() > self.max_staleness
    }

    async fn refresh(&self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let since_time = self
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .cursor;
            let response = self
                .client
                .clone()
                .list_revocations(pb::ListRevocationsRequest {
                    since_time: Some(prost_types::Timestamp {
                        seconds: since_time,
                        nanos: 0,
                    }),
                })
                .await
                .map_err(|status| {
                    tracing::debug!(code = ?status.code(), "revocation refresh failed");
                    Error::Unavailable
                })?
                .into_inner();
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let mut last = since_time;
            for revocation in &response.revocations {
                let kind = Kind::try_from(revocation.kind).unwrap_or(Kind::Unspecified);
                let forget = revocation
                    .forget_time
                    .as_ref()
                    .map_or(i64::MAX, |t| t.seconds);
                last = revocation.revoke_time.as_ref().map_or(last, |t| t.seconds);
                let id = revocation.id.clone();
                match kind {
                    Kind::AccessToken => {
                        state.access_tokens.insert(id, forget);
                    }
                    Kind::ApiKey => {
                        state.api_keys.insert(id, forget);
                    }
                    Kind::Principal => {
                        state.principals.insert(id, (forget, revocation.generation));
                    }
                    Kind::Unspecified => {}
                }
            }
            let now = response.server_time.map_or(0, |t| t.seconds);
            state.access_tokens.retain(|_, forget| *forget > now);
            state.api_keys.retain(|_, forget| *forget > now);
            state.principals.retain(|_, (forget, _)| *forget > now);
            if response.truncated {
                if last == since_time {
                    // A full page within one second and no way past it: fail closed rather
                    // than ask for the same page forever.
                    tracing::error!(
                        since_time,
                        "too many revocations in one second to page through"
                    );
                    return Err(Error::Unavailable);
                }
                state.cursor = last;
                continue;
            }
            // One second of overlap: revocation times have one-second resolution.
            state.cursor = now.saturating_sub(1);
            state.synced = started;
            return Ok(());
        }
    }
}
