//! Rows in memory for at most a short TTL, evicted at once when they change: the cache of a
//! hot read path that must still see every change within a stated bound.
//!
//! Staleness bound: a change made through this process is seen by its next read at once (the
//! writer evicts the entry when the change commits); a change made by another replica is
//! seen within the TTL, and on PostgreSQL at once in practice when every change is announced
//! with NOTIFY and every replica evicts on it ([`crate::listen`]). A read that raced an
//! eviction (it began before a change committed) does not put its stale answer back: inserts
//! are refused once anything was evicted after the read began.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

/// The longest a row may be served from memory by default: the replica staleness bound.
pub const MAX_TTL: Duration = Duration::from_secs(1);

/// Cached rows (see the module docs). `Debug` shows the TTL and how many rows are held,
/// never the rows.
pub struct Fresh<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, (V, Instant)>>,
    ttl: Duration,
    /// Bumped on every eviction, so a read that began before one does not insert.
    epoch: AtomicU64,
}

impl<K: Hash + Eq, V> std::fmt::Debug for Fresh<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Fresh")
            .field("ttl", &self.ttl)
            .field("held", &held)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone> Fresh<K, V> {
    /// At most `capacity` rows, each served for `ttl` (zero: nothing is cached).
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached row of `key`, if fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((row, at)) if at.elapsed() < self.ttl => Some(row.clone()),
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// The epoch to pass to [`Fresh::insert`] for a read that starts now.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `row` as `key`, read from the database after [`Fresh::epoch`] returned `epoch`,
    /// unless something was evicted since (the read may predate that change).
    pub fn insert(&self, epoch: u64, key: K, row: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock: evictions bump the epoch under it too.
        if self.epoch.load(Ordering::SeqCst) == epoch {
            entries.put(key, (row, Instant::now()));
        }
    }

    /// Forgets `key` (it changed).
    pub fn evict(&self, key: &K) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.pop(key);
    }

    /// Forgets everything (changes may have been missed).
    pub fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<K, (V, Instant)>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters: the worst case is a missing entry, which is a cache miss.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_rows_are_served_and_evictions_win_over_racing_reads() {
        let rows = Fresh::new(NonZeroUsize::new(8).unwrap(), Duration::from_secs(60));
        let epoch = rows.epoch();
        rows.insert(epoch, "k", 1);
        assert_eq!(rows.get(&"k"), Some(1));

        // A read that began before a change must not put its answer back.
        let before = rows.epoch();
        rows.evict(&"k");
        rows.insert(before, "k", 1);
        assert_eq!(rows.get(&"k"), None);

        rows.insert(rows.epoch(), "k", 2);
        assert_eq!(rows.get(&"k"), Some(2));
        rows.clear();
        assert_eq!(rows.get(&"k"), None);
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_caches_nothing() {
        let rows = Fresh::new(NonZeroUsize::new(8).unwrap(), Duration::from_millis(1));
        rows.insert(rows.epoch(), "k", 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(rows.get(&"k"), None);
        let off = Fresh::new(NonZeroUsize::new(8).unwrap(), Duration::ZERO);
        off.insert(off.epoch(), "k", 1);
        assert_eq!(off.get(&"k"), None);
    }
}
