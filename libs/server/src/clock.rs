//! The service's time, one per service, replaceable in tests so that expiry, grace and
//! waiting periods can be crossed by advancing the clock instead of sleeping.
//!
//! It reads two ways: wall-clock unix seconds ([`Clock::now`], for stored times and token
//! expiry) and a monotonic [`Instant`] ([`Clock::instant`], for "how long since", which must
//! not jump with the wall clock). A manual clock moves both together, only when advanced.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The service's clock: the system clock, or a manual one that tests advance.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// A manual clock: where it started, and how far it has been advanced.
#[derive(Debug)]
struct Manual {
    wall: i64,
    instant: Instant,
    advanced: AtomicI64,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that starts at the current time and moves only by [`Clock::advance`].
    pub fn manual() -> Self {
        Self(Some(Arc::new(Manual {
            wall: system_now(),
            instant: Instant::now(),
            advanced: AtomicI64::new(0),
        })))
    }

    /// Now, in seconds since the unix epoch.
    pub fn now(&self) -> i64 {
        match &self.0 {
            None => system_now(),
            Some(manual) => manual
                .wall
                .saturating_add(manual.advanced.load(Ordering::SeqCst)),
        }
    }

    /// Now, as a monotonic instant: compare two of these, never one with [`Instant::now`].
    pub fn instant(&self) -> Instant {
        match &self.0 {
            None => Instant::now(),
            Some(manual) => {
                let advanced = u64::try_from(manual.advanced.load(Ordering::SeqCst)).unwrap_or(0);
                manual.instant + Duration::from_secs(advanced)
            }
        }
    }

    /// Moves a manual clock forward (a negative `seconds` is ignored); does nothing to the
    /// system clock.
    pub fn advance(&self, seconds: i64) {
        if let Some(manual) = &self.0 {
            manual.advanced.fetch_add(seconds.max(0), Ordering::SeqCst);
        }
    }
}

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_both_readings_only_when_advanced() {
        let clock = Clock::manual();
        let (wall, instant) = (clock.now(), clock.instant());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!((clock.now(), clock.instant()), (wall, instant));
        clock.advance(3);
        assert_eq!(clock.now(), wall + 3);
        assert_eq!(clock.instant() - instant, Duration::from_secs(3));
        clock.advance(-10);
        assert_eq!(clock.now(), wall + 3, "a clock never goes back");
    }

    #[test]
    fn the_system_clock_ignores_advance() {
        let clock = Clock::system();
        let before = clock.now();
        clock.advance(1_000);
        assert!(clock.now() - before < 100);
    }
}
