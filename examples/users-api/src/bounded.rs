//! A map of at most `max` entries that evicts the oldest inserted first: the
//! key cache and the abuse watch both keep per-key state that a flood of
//! keys must not grow without bound.

use std::collections::{HashMap, HashSet, VecDeque};

/// Entries by key, evicted in insertion order when more than `max`.
#[derive(Debug)]
pub(crate) struct Bounded<V> {
    entries: HashMap<String, V>,
    /// Insertion order. A removed key stays here until it reaches the front
    /// or the queue is compacted, so removal costs O(1).
    order: VecDeque<String>,
    max: usize,
}

impl<V> Bounded<V> {
    pub(crate) fn new(max: usize) -> Bounded<V> {
        Bounded {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.entries.get_mut(key)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.keys()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key)
    }

    /// Inserts or replaces; a new key may evict the oldest.
    pub(crate) fn insert(&mut self, key: String, value: V) {
        if self.entries.insert(key.clone(), value).is_none() {
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
        // Keys removed and inserted again leave stale places in the queue;
        // compacting at twice the bound keeps it O(max) in memory and O(1)
        // amortised per insert.
        if self.order.len() > 2 * self.max {
            let mut seen = HashSet::new();
            let mut kept: VecDeque<String> = VecDeque::with_capacity(self.entries.len());
            for key in self.order.drain(..).rev() {
                if self.entries.contains_key(&key) && seen.insert(key.clone()) {
                    kept.push_front(key);
                }
            }
            self.order = kept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_churn_keeps_the_queue_bounded() {
        let mut map = Bounded::new(3);
        for n in 0..4 {
            map.insert(format!("k{n}"), n);
        }
        assert_eq!(map.len(), 3);
        assert!(map.get("k0").is_none());
        assert_eq!(map.get("k3"), Some(&3));
        // Remove and insert the same keys many times: the entries stay at
        // most 3 and the queue stays within twice that.
        for round in 0..1000 {
            map.remove("k3");
            map.insert("k3".into(), round);
        }
        assert_eq!(map.len(), 3);
        assert!(map.order.len() <= 6, "queue of {}", map.order.len());
        assert_eq!(map.get("k3"), Some(&999));
        assert!(map.get("k1").is_some() && map.get("k2").is_some());
    }
}
