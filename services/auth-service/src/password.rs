//! bcrypt off the async runtime, in a bounded pool.
//!
//! One bcrypt at cost 12 takes about a quarter second of a core, so it is the service's
//! denial-of-service surface. At most `concurrency` hashes run at once, on blocking threads;
//! when all slots are busy a further call fails at once with RESOURCE_EXHAUSTED instead of
//! queueing without bound.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Semaphore;

use crate::{Error, Result};

/// The bounded bcrypt pool.
#[derive(Debug, Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    cost: u32,
    /// A hash of a random password, verified against when the user does not exist, so an
    /// unknown user costs the same as a wrong password (no existence oracle).
    decoy: Arc<str>,
}

impl Passwords {
    /// A pool running at most `concurrency` hashes at once, hashing at `cost`.
    ///
    /// # Errors
    /// [`Error::Bcrypt`] for a cost outside bcrypt's range, [`Error::Crypto`] if the RNG fails.
    pub fn new(concurrency: usize, cost: u32) -> Result<Self> {
        let mut random = [0u8; 24];
        coffer_crypto::fill_random(&mut random)?;
        let decoy = bcrypt::hash(random, cost)?;
        Ok(Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            cost,
            decoy: decoy.into(),
        })
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] when the pool is saturated, [`Error::Bcrypt`].
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose_secret(), cost).map_err(Error::from))
            .await
    }

    /// Verifies `password` against `hash`, or against the decoy when there is no hash (the
    /// result is then always `false`, after the same work).
    ///
    /// # Errors
    /// [`Error::ResourceExhausted`] when the pool is saturated, [`Error::Bcrypt`] for a
    /// malformed stored hash.
    pub async fn verify(&self, password: SecretString, hash: Option<&str>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let matches = self
            .run(move || bcrypt::verify(password.expose_secret(), &hash).map_err(Error::from))
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Error::ResourceExhausted("too many password checks in progress; retry"))?;
        tokio::task::spawn_blocking(move || {
            let outcome = work();
            drop(permit);
            outcome
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_or_unknown_passwords_do_not() {
        let passwords = Passwords::new(2, 4).unwrap();
        let hash = passwords
            .hash(SecretString::from("correct horse"))
            .await
            .unwrap();
        assert!(hash.starts_with("$2b$04$"));
        assert!(
            passwords
                .verify(SecretString::from("correct horse"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(SecretString::from("wrong horse"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(SecretString::from("correct horse"), None)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_saturated_pool_refuses_at_once() {
        let passwords = Passwords::new(1, 4).unwrap();
        // Hold the only slot, as a running hash would.
        let held = Arc::clone(&passwords.slots).try_acquire_owned().unwrap();
        let refused = passwords.verify(SecretString::from("x"), None).await;
        assert!(
            matches!(refused, Err(Error::ResourceExhausted(_))),
            "{refused:?}"
        );
        drop(held);
        assert!(
            passwords
                .verify(SecretString::from("x"), None)
                .await
                .is_ok()
        );
    }
}
