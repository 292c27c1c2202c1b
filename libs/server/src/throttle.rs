//! A log line that a caller cannot turn into a flood: [`Throttle::admit`] lets one event
//! through per interval and counts the rest, so the next line says how many were left out.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one admitted event per interval.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// When an event was last admitted, and how many were suppressed since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// One event per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when this event should be logged (with the number of events left
    /// out since the last logged one), `None` when it is only counted.
    pub fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.interval => {
                state.1 = state.1.saturating_add(1);
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_interval_is_admitted_and_the_rest_are_counted() {
        let throttle = Throttle::new(Duration::from_millis(200));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..150 {
            assert_eq!(throttle.admit(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.admit(), Some(150));
        assert_eq!(throttle.admit(), None);
    }
}
