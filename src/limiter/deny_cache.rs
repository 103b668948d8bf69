//! Local memory of recent denials, to spare Redis the round trips of a
//! caller that keeps knocking while it is denied.
//!
//! When Redis denies a subject a cost of `n` with a retry-after of `r`, no
//! request of cost `n` or more can be admitted for that subject before `r`
//! has passed: its buckets only refill with time, and other instances can only
//! take tokens away. So the cache answers "denied" for such requests until
//! then, and sends everything else (a smaller cost, a later request) to Redis.
//! It only ever denies what Redis would deny: it cannot over-admit.
//!
//! A refund (a settle giving tokens back) breaks that premise: it makes a
//! bucket fuller than time alone would. So a refund forgets the subject's
//! denial (one map removal), and the next request asks Redis. A check that
//! was already on its way to Redis when the refund ran may still remember a
//! denial Redis gave before the refund; that one is too strict until its own
//! retry-after at the latest (never too lenient). A debit only takes tokens
//! away, like another instance would, so it leaves the cache alone.
//!
//! The cache is bounded: when it is full, expired entries are dropped, and if
//! it is still full the new denial is not remembered (Redis keeps deciding).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::limiter::decision::{Outcome, Verdict};

#[derive(Debug)]
pub(crate) struct DenyCache {
    max_entries: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    until: Instant,
    cost: u64,
    remaining: u64,
    full_at: Instant,
    limit: usize,
}

impl DenyCache {
    pub(crate) fn new(max_entries: usize) -> DenyCache {
        DenyCache {
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached denial of `subject_key` for a request of `cost`, if one
    /// still holds.
    pub(crate) fn lookup(&self, subject_key: &str, cost: u64) -> Option<Verdict> {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = *entries.get(subject_key)?;
        if now >= entry.until {
            entries.remove(subject_key);
            return None;
        }
        if cost < entry.cost {
            return None;
        }
        Some(Verdict {
            outcome: Outcome::Denied {
                retry_after: entry.until - now,
            },
            remaining: entry.remaining,
            reset_after: entry.full_at.saturating_duration_since(now),
            limit: entry.limit,
        })
    }

    /// Remembers a denial Redis just gave.
    pub(crate) fn remember(&self, subject_key: &str, cost: u64, verdict: &Verdict) {
        let Outcome::Denied { retry_after } = verdict.outcome else {
            return;
        };
        if retry_after < Duration::from_millis(1) {
            return;
        }
        let now = Instant::now();
        let entry = Entry {
            until: now + retry_after,
            cost,
            remaining: verdict.remaining,
            full_at: now + verdict.reset_after,
            limit: verdict.limit,
        };
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(subject_key) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.max_entries {
                return;
            }
        }
        entries
            .entry(subject_key.to_owned())
            .and_modify(|e| {
                // Keep the denial that holds for the smallest cost.
                if cost <= e.cost || e.until <= now {
                    *e = entry;
                }
            })
            .or_insert(entry);
    }

    /// Forgets `subject_key`'s denial: its buckets were refunded.
    pub(crate) fn forget(&self, subject_key: &str) {
        self.lock().remove(subject_key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(retry_after_ms: u64) -> Verdict {
        Verdict {
            outcome: Outcome::Denied {
                retry_after: Duration::from_millis(retry_after_ms),
            },
            remaining: 0,
            reset_after: Duration::from_secs(2),
            limit: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_denial_holds_for_equal_or_larger_costs_until_its_retry_after() {
        let cache = DenyCache::new(10);
        cache.remember("k", 3, &denied(500));
        assert!(cache.lookup("k", 2).is_none(), "a smaller cost may fit");
        let v = cache.lookup("k", 3).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Denied {
                retry_after: Duration::from_millis(500)
            }
        );
        tokio::time::advance(Duration::from_millis(400)).await;
        let v = cache.lookup("k", 9).unwrap();
        assert_eq!(
            v.outcome,
            Outcome::Denied {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(v.reset_after, Duration::from_millis(1600));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(cache.lookup("k", 3).is_none());
        assert_eq!(cache.len(), 0, "expired entries are dropped on sight");
    }

    #[tokio::test(start_paused = true)]
    async fn only_denials_are_cached_and_the_size_is_bounded() {
        let cache = DenyCache::new(2);
        let mut allowed = denied(1);
        allowed.outcome = Outcome::Allowed;
        cache.remember("a", 1, &allowed);
        let mut never = denied(1);
        never.outcome = Outcome::Never;
        cache.remember("a", 1, &never);
        assert_eq!(cache.len(), 0);
        cache.remember("a", 1, &denied(100));
        cache.remember("b", 1, &denied(200));
        cache.remember("c", 1, &denied(300));
        assert!(cache.lookup("c", 1).is_none(), "full: not remembered");
        tokio::time::advance(Duration::from_millis(150)).await;
        cache.remember("c", 1, &denied(300));
        assert!(cache.lookup("c", 1).is_some(), "room after expiry");
        cache.forget("c");
        assert!(cache.lookup("c", 1).is_none(), "forgotten after a refund");
    }
}
