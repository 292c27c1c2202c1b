//! Rate limiting: at most `limit` requests per client (an address, or an API key id) in each
//! window (a minute by default), then 429 with `Retry-After` until the window ends. Fixed
//! windows per client: predictable ("the 101st request in this minute is refused") and one map
//! entry per client.
//!
//! The map is bounded: past [`MAX_CLIENTS`] clients, expired windows are dropped first, and
//! if every entry is still live a new client is refused (429) rather than let a flood of
//! addresses or key ids grow the gateway's memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most client addresses tracked at once.
pub const MAX_CLIENTS: usize = 100_000;

/// The default: requests per minute per client address.
pub const DEFAULT_PER_MINUTE: u32 = 100;

/// The default: requests per minute per API key (one key may serve many addresses).
pub const DEFAULT_PER_KEY_PER_MINUTE: u32 = 1000;

/// A rate limiter keyed by client (by default its address).
#[derive(Debug)]
pub struct RateLimit<K = IpAddr> {
    limit: u32,
    window: Duration,
    max_clients: usize,
    clients: Mutex<HashMap<K, (Instant, u32)>>,
}

/// A refused request: how long until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Time until the client may send again.
    pub retry_after: Duration,
}

impl<K: Hash + Eq> RateLimit<K> {
    /// `limit` requests per `window` per client, for at most [`MAX_CLIENTS`] clients.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self::bounded(limit, window, MAX_CLIENTS)
    }

    /// `per_minute` requests per client per minute, shared; `None` for 0 (no limit).
    pub fn per_minute(per_minute: u32) -> Option<std::sync::Arc<Self>> {
        (per_minute > 0)
            .then(|| std::sync::Arc::new(Self::new(per_minute, Duration::from_secs(60))))
    }

    /// As [`RateLimit::new`], tracking at most `max_clients` clients.
    pub fn bounded(limit: u32, window: Duration, max_clients: usize) -> Self {
        Self {
            limit,
            window,
            max_clients,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `client` at `now`.
    ///
    /// # Errors
    /// [`Limited`] when the client has used its window's requests (or the map is full).
    pub fn check(&self, client: K, now: Instant) -> Result<(), Limited> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if !clients.contains_key(&client) && clients.len() >= self.max_clients {
            clients.retain(|_, (start, _)| now.saturating_duration_since(*start) < self.window);
            if clients.len() >= self.max_clients {
                return Err(Limited {
                    retry_after: self.window,
                });
            }
        }
        let (start, count) = clients.entry(client).or_insert((now, 0));
        if now.saturating_duration_since(*start) >= self.window {
            (*start, *count) = (now, 0);
        }
        if *count >= self.limit {
            return Err(Limited {
                retry_after: self
                    .window
                    .saturating_sub(now.saturating_duration_since(*start)),
            });
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_past_the_limit_waits_for_the_next_window() {
        let limit: RateLimit = RateLimit::new(100, Duration::from_secs(60));
        let (client, other): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(limit.check(client, start), Ok(()));
        }
        let later = start + Duration::from_secs(20);
        assert_eq!(
            limit.check(client, later),
            Err(Limited {
                retry_after: Duration::from_secs(40)
            })
        );
        assert_eq!(
            limit.check(other, later),
            Ok(()),
            "another client has its own count"
        );
        assert_eq!(limit.check(client, start + Duration::from_secs(60)), Ok(()));
    }

    #[test]
    fn a_full_map_refuses_new_addresses_until_windows_expire() {
        let limit: RateLimit = RateLimit::bounded(10, Duration::from_secs(60), 2);
        let start = Instant::now();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        assert_eq!(limit.check(ip(1), start), Ok(()));
        assert_eq!(limit.check(ip(2), start), Ok(()));
        assert!(
            limit.check(ip(3), start).is_err(),
            "no room for a third address"
        );
        assert_eq!(limit.check(ip(1), start), Ok(()), "known addresses go on");
        assert_eq!(
            limit.check(ip(3), start + Duration::from_secs(61)),
            Ok(()),
            "expired windows make room"
        );
    }
}
