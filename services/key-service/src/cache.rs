//! A bounded, short-lived cache of unwrapped tenant key versions.
//!
//! Unwrapping costs an HKDF and an AES-GCM open; the cache skips both on hot keys. Entries are
//! [`TenantKey`]s, which zeroize when the last reference is dropped: on eviction, expiry, or
//! [`KeyCache::evict_key`] when a key is destroyed. Key metadata (state, policy) is never cached,
//! so a retired version or a pending deletion takes effect at once on every replica.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use coffer_crypto::TenantKey;
use lru::LruCache;

use crate::names::KeyName;

/// The cache. Shared by all requests of one server.
pub(crate) struct KeyCache {
    entries: Mutex<LruCache<(KeyName, u32), Entry>>,
    ttl: Duration,
}

struct Entry {
    key: Arc<TenantKey>,
    loaded: Instant,
}

impl KeyCache {
    /// A cache of at most `capacity` versions, each kept at most `ttl`.
    pub(crate) fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    /// The cached material of `name` at `version`, unless absent or expired.
    pub(crate) fn get(&self, name: &KeyName, version: u32) -> Option<Arc<TenantKey>> {
        let mut entries = self.lock();
        let cache_key = (name.clone(), version);
        match entries.get(&cache_key) {
            Some(entry) if entry.loaded.elapsed() < self.ttl => Some(Arc::clone(&entry.key)),
            Some(_) => {
                entries.pop(&cache_key);
                None
            }
            None => None,
        }
    }

    /// Caches `key` as `name` at `version`, evicting the least recently used entry if full.
    pub(crate) fn insert(&self, name: &KeyName, version: u32, key: Arc<TenantKey>) {
        self.lock().put(
            (name.clone(), version),
            Entry {
                key,
                loaded: Instant::now(),
            },
        );
    }

    /// Drops every cached version of `name`.
    pub(crate) fn evict_key(&self, name: &KeyName) {
        let mut entries = self.lock();
        let stale: Vec<(KeyName, u32)> = entries
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(k, _)| k.clone())
            .collect();
        for cache_key in stale {
            entries.pop(&cache_key);
        }
    }

    /// Drops everything (after a root-key rotation).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// How many versions are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<(KeyName, u32), Entry>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters here: the worst case is a missing entry, which is a cache miss.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(key: &str) -> KeyName {
        crate::names::stored_key_name("acme", key).unwrap()
    }

    fn material() -> Arc<TenantKey> {
        Arc::new(TenantKey::generate().unwrap())
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let cache = KeyCache::new(NonZeroUsize::new(2).unwrap(), Duration::from_secs(60));
        for version in 1..=3 {
            cache.insert(&name("k"), version, material());
        }
        assert_eq!(cache.len(), 2);
        assert!(
            cache.get(&name("k"), 1).is_none(),
            "least recently used is evicted"
        );
        assert!(cache.get(&name("k"), 3).is_some());
    }

    #[test]
    fn expired_entries_are_dropped() {
        let cache = KeyCache::new(NonZeroUsize::new(4).unwrap(), Duration::ZERO);
        cache.insert(&name("k"), 1, material());
        assert!(cache.get(&name("k"), 1).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn evicting_a_key_drops_all_its_versions_only() {
        let cache = KeyCache::new(NonZeroUsize::new(8).unwrap(), Duration::from_secs(60));
        cache.insert(&name("a"), 1, material());
        cache.insert(&name("a"), 2, material());
        cache.insert(&name("b"), 1, material());
        cache.evict_key(&name("a"));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&name("b"), 1).is_some());
    }
}
