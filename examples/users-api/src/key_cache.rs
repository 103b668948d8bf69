//! The key store's memory of recent lookups: valid keys and refused keys in
//! two bounded maps, so a flood of random keys can only push out other
//! refused keys, never the valid ones the API's callers use.
//!
//! Each entry is trusted until its own deadline, which the store chooses:
//! a few seconds for a valid key (so a revocation or a suspension made on
//! another instance is seen within that bound), longer for a refused one.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use dynagate::http::{Caller, Refusal};

use crate::bounded::Bounded;

/// Recent lookups by key hash.
#[derive(Debug)]
pub(crate) struct KeyCache {
    valid: Mutex<Bounded<(Instant, Caller)>>,
    refused: Mutex<Bounded<(Instant, Refusal)>>,
}

/// What the cache knows of a key.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    Valid(Caller),
    Refused(Refusal),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyCache {
    pub(crate) fn new(max_valid: usize, max_refused: usize) -> KeyCache {
        KeyCache {
            valid: Mutex::new(Bounded::new(max_valid)),
            refused: Mutex::new(Bounded::new(max_refused)),
        }
    }

    /// What is known of the key and still fresh.
    pub(crate) fn get(&self, key_hash: &str) -> Option<Known> {
        let now = Instant::now();
        if let Some((until, caller)) = lock(&self.valid).get(key_hash)
            && now < *until
        {
            return Some(Known::Valid(caller.clone()));
        }
        let refused = lock(&self.refused);
        let (until, refusal) = refused.get(key_hash)?;
        (now < *until).then(|| Known::Refused(refusal.clone()))
    }

    /// A valid key, trusted until `until`.
    pub(crate) fn remember_valid(&self, key_hash: String, caller: Caller, until: Instant) {
        lock(&self.refused).remove(&key_hash);
        lock(&self.valid).insert(key_hash, (until, caller));
    }

    /// A refused key, refused without a lookup until `until`; a valid entry
    /// of the same key goes at once (a local suspension or revocation).
    pub(crate) fn remember_refused(&self, key_hash: String, refusal: Refusal, until: Instant) {
        lock(&self.valid).remove(&key_hash);
        lock(&self.refused).insert(key_hash, (until, refusal));
    }

    /// Forgets the key: the next request reads it again.
    pub(crate) fn forget(&self, key_hash: &str) {
        lock(&self.valid).remove(key_hash);
        lock(&self.refused).remove(key_hash);
    }

    /// The full hash of a valid key known by its id (the hash's first
    /// characters). Walks the valid keys: only for a suspension, which is rare.
    pub(crate) fn hash_of(&self, key_id: &str) -> Option<String> {
        lock(&self.valid)
            .keys()
            .find(|hash| hash.starts_with(key_id))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn caller(id: &str) -> Caller {
        Caller {
            id: id.into(),
            limits: None,
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    /// Issue 14, point 2: above 10,000 entries the whole cache used to be
    /// cleared, so a flood of random keys evicted every valid one.
    #[test]
    fn a_flood_of_invalid_keys_never_evicts_a_valid_one() {
        let cache = KeyCache::new(10, 100);
        cache.remember_valid("good".into(), caller("k1"), later());
        for n in 0..10_000 {
            cache.remember_refused(format!("random-{n}"), Refusal::Unknown, later());
        }
        assert!(matches!(cache.get("good"), Some(Known::Valid(c)) if c.id == "k1"));
        assert!(matches!(
            cache.get("random-9999"),
            Some(Known::Refused(Refusal::Unknown))
        ));
        assert!(
            cache.get("random-0").is_none(),
            "the oldest invalid ones went"
        );
    }

    #[test]
    fn each_kind_is_bounded_and_entries_go_stale() {
        let cache = KeyCache::new(2, 2);
        for id in ["a", "b", "c"] {
            cache.remember_valid(id.into(), caller(id), later());
        }
        assert!(cache.get("a").is_none());
        assert!(cache.get("c").is_some());
        cache.remember_valid("stale".into(), caller("s"), Instant::now());
        assert!(cache.get("stale").is_none());
    }

    #[test]
    fn a_refusal_replaces_a_valid_entry_at_once_and_the_id_finds_the_hash() {
        let cache = KeyCache::new(10, 10);
        cache.remember_valid("abcdef0123".into(), caller("abcdef"), later());
        assert_eq!(cache.hash_of("abcdef").as_deref(), Some("abcdef0123"));
        let suspended = Refusal::Suspended {
            reason: "too many addresses".into(),
        };
        cache.remember_refused("abcdef0123".into(), suspended.clone(), later());
        assert!(matches!(cache.get("abcdef0123"), Some(Known::Refused(r)) if r == suspended));
        assert!(cache.hash_of("abcdef").is_none(), "no longer a valid key");
        cache.forget("abcdef0123");
        assert!(cache.get("abcdef0123").is_none());
    }
}
