//! Key records in memory, so the data plane (Encrypt, Decrypt, GenerateDataKey, ...) reads a
//! key's state and policy without a database round trip.
//!
//! Staleness bound: a change made through this process is seen by its next call at once (the
//! entry is evicted when the change commits); a change made by another replica is seen within
//! the TTL (one second by default and at most), and on PostgreSQL at once in practice, since
//! every change is announced with NOTIFY and every replica evicts on it. Retiring a version,
//! disabling, scheduling deletion and destroying therefore take effect everywhere within a
//! second. A read that raced an eviction (it started before a change committed) does not put
//! its stale answer back: inserts are refused once anything was evicted after the read began.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::KeyRecord;
use crate::names::KeyName;

/// The longest a record may be served from memory: the replica staleness bound.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(1);

/// Cached key records (see the module docs).
#[derive(Debug)]
pub(crate) struct Records {
    entries: Mutex<LruCache<KeyName, (KeyRecord, Instant)>>,
    ttl: Duration,
    /// Bumped on every eviction, so a read that began before one does not insert.
    epoch: AtomicU64,
}

impl Records {
    /// At most `capacity` records, each served for `ttl` (zero: nothing is cached).
    pub(crate) fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached record of `name`, if fresh.
    pub(crate) fn get(&self, name: &KeyName) -> Option<KeyRecord> {
        let mut entries = self.lock();
        match entries.get(name) {
            Some((record, at)) if at.elapsed() < self.ttl => Some(record.clone()),
            Some(_) => {
                entries.pop(name);
                None
            }
            None => None,
        }
    }

    /// The epoch to pass to [`Records::insert`] for a read that starts now.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `record`, read from the database after [`Records::epoch`] returned `epoch`,
    /// unless something was evicted since (the read may predate that change).
    pub(crate) fn insert(&self, epoch: u64, record: KeyRecord) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        // Checked under the lock: evictions bump the epoch under it too.
        if self.epoch.load(Ordering::SeqCst) == epoch {
            entries.put(record.name.clone(), (record, Instant::now()));
        }
    }

    /// Forgets `name` (it changed).
    pub(crate) fn evict(&self, name: &KeyName) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.pop(name);
    }

    /// Forgets everything (changes may have been missed).
    pub(crate) fn clear(&self) {
        let mut entries = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<KeyName, (KeyRecord, Instant)>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters: the worst case is a missing entry, which is a cache miss.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str) -> KeyRecord {
        KeyRecord::new(
            crate::names::stored_key_name("acme", key).unwrap(),
            false,
            0,
        )
    }

    #[test]
    fn fresh_records_are_served_and_evictions_win_over_racing_reads() {
        let records = Records::new(NonZeroUsize::new(8).unwrap(), Duration::from_secs(60));
        let name = record("k").name;
        let epoch = records.epoch();
        records.insert(epoch, record("k"));
        assert_eq!(records.get(&name), Some(record("k")));

        // A read that began before a change must not put its answer back.
        let before = records.epoch();
        records.evict(&name);
        records.insert(before, record("k"));
        assert_eq!(records.get(&name), None);

        records.insert(records.epoch(), record("k"));
        records.clear();
        assert_eq!(records.get(&name), None);
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_caches_nothing() {
        let records = Records::new(NonZeroUsize::new(8).unwrap(), Duration::from_millis(1));
        let name = record("k").name;
        records.insert(records.epoch(), record("k"));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(records.get(&name), None);
        let off = Records::new(NonZeroUsize::new(8).unwrap(), Duration::ZERO);
        off.insert(off.epoch(), record("k"));
        assert_eq!(off.get(&name), None);
    }
}
