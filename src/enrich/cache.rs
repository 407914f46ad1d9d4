//! What the enricher remembers between jobs, and for how long: StockX answers that many jobs
//! share (a product's variants, its market data) and the per-key locks that let one job ask
//! while the others wait for its answer.
//!
//! Everything here is bounded in time and in size. A worker runs for months: variants cached
//! for the life of the process would keep a newly released size "not found" until a restart,
//! and maps that only grow are a slow leak. So entries expire ([`TtlCache`]), the least
//! recently used go first when a cache is full, and a key's lock disappears as soon as no job
//! holds or awaits it ([`KeyLocks`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How long the enricher trusts what StockX said, and how much it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// A product's variants are fetched again after this long.
    pub variants_ttl: Duration,
    /// A size missing from cached variants older than this fetches them once more before it
    /// is reported `stockx_variant_not_found` (StockX adds sizes to existing products).
    pub variant_recheck: Duration,
    /// A product's market data is fetched again after this long.
    pub market_data_ttl: Duration,
    /// Products kept in each cache; the least recently used go first beyond it.
    pub products: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            variants_ttl: Duration::from_secs(3600),
            variant_recheck: Duration::from_secs(300),
            market_data_ttl: Duration::from_secs(600),
            products: 1000,
        }
    }
}

/// A map whose entries expire after `ttl` and which never holds more than `capacity`.
#[derive(Debug)]
pub struct TtlCache<V> {
    ttl: Duration,
    capacity: usize,
    state: Mutex<CacheState<V>>,
}

#[derive(Debug)]
struct CacheState<V> {
    entries: HashMap<String, Entry<V>>,
    /// Use counter: the entry with the smallest `used` is the least recently used.
    clock: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    stored: Instant,
    used: u64,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, capacity: usize) -> TtlCache<V> {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            state: Mutex::new(CacheState {
                entries: HashMap::new(),
                clock: 0,
            }),
        }
    }

    /// The value stored for `key` and its age, unless it has expired.
    pub fn get(&self, key: &str, now: Instant) -> Option<(V, Duration)> {
        let mut state = self.state.lock().expect("lock");
        state.clock += 1;
        let clock = state.clock;
        let expired = match state.entries.get_mut(key) {
            None => return None,
            Some(entry) => {
                let age = now.saturating_duration_since(entry.stored);
                if age < self.ttl {
                    entry.used = clock;
                    return Some((entry.value.clone(), age));
                }
                true
            }
        };
        if expired {
            state.entries.remove(key);
        }
        None
    }

    /// Stores `value` for `key`, making room first when the cache is full: expired entries,
    /// then the least recently used.
    pub fn insert(&self, key: &str, value: V, now: Instant) {
        let mut state = self.state.lock().expect("lock");
        state.clock += 1;
        let clock = state.clock;
        if !state.entries.contains_key(key) && state.entries.len() >= self.capacity {
            let ttl = self.ttl;
            state
                .entries
                .retain(|_, e| now.saturating_duration_since(e.stored) < ttl);
            if state.entries.len() >= self.capacity {
                let oldest = state
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    state.entries.remove(&oldest);
                }
            }
        }
        state.entries.insert(
            key.to_string(),
            Entry {
                value,
                stored: now,
                used: clock,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One async lock per key (a SKU, a product ID): the first job looks the key up, the others
/// wait and reuse its answer. A key's lock lives only while some job holds or awaits it.
#[derive(Debug, Default)]
pub struct KeyLocks {
    state: Mutex<LockMap>,
}

#[derive(Debug, Default)]
struct LockMap {
    locks: HashMap<String, Weak<tokio::sync::Mutex<()>>>,
    /// Size after the last sweep; the next sweep comes when the map has doubled since.
    swept_at: usize,
}

/// Held while a job looks a key up.
pub type KeyGuard = tokio::sync::OwnedMutexGuard<()>;

impl KeyLocks {
    /// Waits for the lock of `key`.
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let lock = {
            let mut map = self.state.lock().expect("lock");
            let existing = map.locks.get(key).and_then(Weak::upgrade);
            let lock = existing.unwrap_or_else(|| {
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                map.locks.insert(key.to_string(), Arc::downgrade(&lock));
                lock
            });
            // Sweeping when the map has doubled keeps the cost per call constant on average.
            if map.locks.len() > 2 * map.swept_at.max(16) {
                map.locks.retain(|_, weak| weak.strong_count() > 0);
                map.swept_at = map.locks.len();
            }
            lock
        };
        lock.lock_owned().await
    }

    /// Keys with a lock entry (live or not yet swept).
    pub fn len(&self) -> usize {
        self.state.lock().expect("lock").locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn entries_expire_after_their_ttl() {
        let cache = TtlCache::new(MINUTE, 10);
        let t0 = Instant::now();
        cache.insert("p", 1, t0);
        assert_eq!(
            cache.get("p", t0 + Duration::from_secs(59)),
            Some((1, Duration::from_secs(59)))
        );
        assert_eq!(cache.get("p", t0 + MINUTE), None);
        assert!(cache.is_empty(), "an expired entry is dropped when seen");
        cache.insert("p", 2, t0 + MINUTE);
        assert_eq!(cache.get("p", t0 + MINUTE), Some((2, Duration::ZERO)));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_the_least_recently_used() {
        let cache = TtlCache::new(MINUTE, 3);
        let t0 = Instant::now();
        cache.insert("a", 1, t0);
        cache.insert("b", 2, t0);
        cache.insert("c", 3, t0);
        // "a" is used, so "b" is now the least recently used.
        assert!(cache.get("a", t0).is_some());
        cache.insert("d", 4, t0);
        assert_eq!(cache.len(), 3);
        assert!(cache.get("b", t0).is_none());
        assert!(cache.get("a", t0).is_some() && cache.get("d", t0).is_some());
        // Past the TTL everything old goes at once, and the new entry fits.
        let later = t0 + MINUTE;
        cache.insert("e", 5, later);
        assert_eq!(cache.len(), 1);
        // Replacing a key never evicts another.
        cache.insert("e", 6, later);
        assert_eq!(cache.get("e", later), Some((6, Duration::ZERO)));
    }

    #[test]
    fn a_cache_never_grows_past_its_capacity() {
        let cache = TtlCache::new(MINUTE, 50);
        let t0 = Instant::now();
        for i in 0..1000 {
            cache.insert(&format!("product-{i}"), i, t0);
        }
        assert_eq!(cache.len(), 50);
        assert!(cache.get("product-999", t0).is_some());
        assert!(cache.get("product-0", t0).is_none());
    }

    #[tokio::test]
    async fn one_holder_per_key_and_idle_locks_are_pruned() {
        let locks = Arc::new(KeyLocks::default());
        let guard = locks.lock("sku:A").await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move {
                let _g = locks.lock("sku:A").await;
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second caller waits");
        // Another key is not blocked.
        drop(locks.lock("sku:B").await);
        drop(guard);
        waiting.await.unwrap();
        for i in 0..10_000 {
            drop(locks.lock(&format!("sku:{i}")).await);
        }
        assert!(locks.len() <= 64, "{} lock entries kept", locks.len());
        let held = locks.lock("sku:held").await;
        for i in 0..1000 {
            drop(locks.lock(&format!("other:{i}")).await);
        }
        assert!(
            locks.state.lock().unwrap().locks.contains_key("sku:held"),
            "a held lock is never pruned"
        );
        drop(held);
    }
}
