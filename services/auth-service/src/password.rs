//! bcrypt off the async runtime, in a bounded pool.
//!
//! One bcrypt at cost 12 takes about a quarter second of a core, so it is the service's
//! denial-of-service surface. At most `concurrency` hashes run at once, on blocking threads;
//! when all slots are busy a further call fails at once with RESOURCE_EXHAUSTED instead of
//! queueing without bound. And no one [`Source`] may hold more than `per_source` slots, so
//! a single client flooding logins leaves the rest of the pool to everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Semaphore;

use crate::source::Source;
use crate::{Error, Result};

/// The bounded bcrypt pool.
#[derive(Debug, Clone)]
pub(crate) struct Passwords {
    slots: Arc<Semaphore>,
    per_source: usize,
    in_flight: Arc<Mutex<HashMap<Source, usize>>>,
    cost: u32,
    /// A hash of a random password, verified against when the user does not exist, so an
    /// unknown user costs the same as a wrong password (no existence oracle).
    decoy: Arc<str>,
}

impl Passwords {
    /// A pool running at most `concurrency` hashes at once, at most `per_source` of them for
    /// one source, hashing at `cost`.
    ///
    /// # Errors
    /// [`Error::Bcrypt`] for a cost outside bcrypt's range, [`Error::Crypto`] if the RNG fails.
    pub(crate) fn new(concurrency: usize, per_source: usize, cost: u32) -> Result<Self> {
        let mut random = [0u8; 24];
        coffer_crypto::fill_random(&mut random)?;
        let decoy = bcrypt::hash(random, cost)?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            per_source: per_source.max(1),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            cost,
            decoy: decoy.into(),
        })
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] when the pool is saturated, [`Error::Bcrypt`].
    pub(crate) async fn hash(&self, password: SecretString, source: &Source) -> Result<String> {
        let cost = self.cost;
        self.run(source, move || {
            bcrypt::hash(password.expose_secret(), cost).map_err(Error::from)
        })
        .await
    }

    /// Verifies `password` against `hash`, or against the decoy when there is no hash (the
    /// result is then always `false`, after the same work).
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] when the pool is saturated, [`Error::Bcrypt`] for a
    /// malformed stored hash.
    pub(crate) async fn verify(
        &self,
        password: SecretString,
        hash: Option<&str>,
        source: &Source,
    ) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let matches = self
            .run(source, move || {
                bcrypt::verify(password.expose_secret(), &hash).map_err(Error::from)
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        source: &Source,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let share = SourceShare::claim(&self.in_flight, source, self.per_source).ok_or(
            Error::ResourceExhausted(
                "too many password checks in progress from this client; retry",
            ),
        )?;
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Error::ResourceExhausted("too many password checks in progress; retry"))?;
        tokio::task::spawn_blocking(move || {
            let outcome = work();
            drop(permit);
            drop(share);
            outcome
        })
        .await?
    }
}

/// One source's claim on one slot; released on drop.
struct SourceShare {
    in_flight: Arc<Mutex<HashMap<Source, usize>>>,
    source: Source,
}

impl SourceShare {
    fn claim(
        in_flight: &Arc<Mutex<HashMap<Source, usize>>>,
        source: &Source,
        limit: usize,
    ) -> Option<Self> {
        let mut counts = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(source.clone()).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            in_flight: Arc::clone(in_flight),
            source: source.clone(),
        })
    }
}

impl Drop for SourceShare {
    fn drop(&mut self) {
        let mut counts = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.source) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str) -> Source {
        Source::peer(&coffer_transport::SpiffeId::parse(&format!("spiffe://td/{name}")).unwrap())
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_or_unknown_passwords_do_not() {
        let passwords = Passwords::new(2, 1, 4).unwrap();
        let me = source("me");
        let hash = passwords
            .hash(SecretString::from("correct horse"), &me)
            .await
            .unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            passwords
                .verify(SecretString::from("correct horse"), Some(&hash), &me)
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(SecretString::from("wrong horse"), Some(&hash), &me)
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(SecretString::from("correct horse"), None, &me)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_saturated_pool_refuses_at_once() {
        let passwords = Passwords::new(1, 1, 4).unwrap();
        let me = source("me");
        // Hold the only slot, as a running hash would.
        let held = Arc::clone(&passwords.slots).try_acquire_owned().unwrap();
        let refused = passwords.verify(SecretString::from("x"), None, &me).await;
        assert!(
            matches!(refused, Err(Error::ResourceExhausted(_))),
            "{refused:?}"
        );
        drop(held);
        assert!(
            passwords
                .verify(SecretString::from("x"), None, &me)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn one_source_cannot_take_more_than_its_share() {
        let passwords = Passwords::new(2, 1, 4).unwrap();
        let (flood, other) = (source("flood"), source("other"));
        // The flooding source holds its one share, as a running hash would.
        let held = SourceShare::claim(&passwords.in_flight, &flood, 1).unwrap();
        let refused = passwords
            .verify(SecretString::from("x"), None, &flood)
            .await;
        assert!(
            matches!(refused, Err(Error::ResourceExhausted(_))),
            "{refused:?}"
        );
        assert!(
            passwords
                .verify(SecretString::from("x"), None, &other)
                .await
                .is_ok()
        );
        drop(held);
        assert!(
            passwords
                .verify(SecretString::from("x"), None, &flood)
                .await
                .is_ok()
        );
        assert!(passwords.in_flight.lock().unwrap().is_empty());
    }
}
