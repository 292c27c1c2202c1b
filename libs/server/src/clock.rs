//! Wall-clock time in unix seconds, one per service, replaceable in tests so that expiry,
//! grace and waiting periods can be crossed by advancing the clock instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The service's clock: the system clock, or a manual one that tests advance.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that starts at the current time and moves only by [`Clock::advance`].
    pub fn manual() -> Self {
        Self(Some(Arc::new(AtomicI64::new(system_now()))))
    }

    /// Now, in seconds since the unix epoch.
    pub fn now(&self) -> i64 {
        match &self.0 {
            None => system_now(),
            Some(manual) => manual.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, seconds: i64) {
        if let Some(manual) = &self.0 {
            manual.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
