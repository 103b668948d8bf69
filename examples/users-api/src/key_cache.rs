//! The key store's memory of recent lookups: valid keys and invalid keys in
//! two bounded maps, so a flood of random keys can only push out other
//! random keys, never the valid ones the API's callers use.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dynagate::http::Caller;

/// Entries of one kind, evicted oldest first when full.
#[derive(Debug)]
struct Bounded<V> {
    entries: HashMap<String, (Instant, V)>,
    order: VecDeque<String>,
    max: usize,
}

impl<V: Clone> Bounded<V> {
    fn new(max: usize) -> Bounded<V> {
        Bounded {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max,
        }
    }

    fn get(&self, key: &str, fresh_for: Duration) -> Option<V> {
        let (at, value) = self.entries.get(key)?;
        (at.elapsed() < fresh_for).then(|| value.clone())
    }

    fn insert(&mut self, key: String, value: V) {
        if self
            .entries
            .insert(key.clone(), (Instant::now(), value))
            .is_none()
        {
            self.order.push_back(key);
        }
        while self.entries.len() > self.max {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }
}

/// Recent lookups by key hash.
#[derive(Debug)]
pub(crate) struct KeyCache {
    valid: Mutex<Bounded<Caller>>,
    invalid: Mutex<Bounded<()>>,
    fresh_for: Duration,
}

/// What the cache knows of a key.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    Valid(Caller),
    Invalid,
}

impl KeyCache {
    pub(crate) fn new(max_valid: usize, max_invalid: usize, fresh_for: Duration) -> KeyCache {
        KeyCache {
            valid: Mutex::new(Bounded::new(max_valid)),
            invalid: Mutex::new(Bounded::new(max_invalid)),
            fresh_for,
        }
    }

    pub(crate) fn get(&self, key_hash: &str) -> Option<Known> {
        let valid = self.valid.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(caller) = valid.get(key_hash, self.fresh_for) {
            return Some(Known::Valid(caller));
        }
        drop(valid);
        let invalid = self.invalid.lock().unwrap_or_else(|p| p.into_inner());
        invalid
            .get(key_hash, self.fresh_for)
            .map(|()| Known::Invalid)
    }

    pub(crate) fn remember(&self, key_hash: String, caller: Option<Caller>) {
        match caller {
            Some(caller) => self
                .valid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key_hash, caller),
            None => self
                .invalid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key_hash, ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str) -> Caller {
        Caller {
            id: id.into(),
            limits: None,
        }
    }

    /// Issue 14, point 2: above 10,000 entries the whole cache used to be
    /// cleared, so a flood of random keys evicted every valid one.
    #[test]
    fn a_flood_of_invalid_keys_never_evicts_a_valid_one() {
        let cache = KeyCache::new(10, 100, Duration::from_secs(30));
        cache.remember("good".into(), Some(caller("k1")));
        for n in 0..10_000 {
            cache.remember(format!("random-{n}"), None);
        }
        assert!(matches!(cache.get("good"), Some(Known::Valid(c)) if c.id == "k1"));
        assert!(matches!(cache.get("random-9999"), Some(Known::Invalid)));
        assert!(
            cache.get("random-0").is_none(),
            "the oldest invalid ones went"
        );
    }

    #[test]
    fn each_kind_is_bounded_and_entries_go_stale() {
        let cache = KeyCache::new(2, 2, Duration::from_secs(30));
        for id in ["a", "b", "c"] {
            cache.remember(id.into(), Some(caller(id)));
        }
        assert!(cache.get("a").is_none());
        assert!(cache.get("c").is_some());
        let stale = KeyCache::new(2, 2, Duration::ZERO);
        stale.remember("a".into(), Some(caller("a")));
        assert!(stale.get("a").is_none());
    }
}
