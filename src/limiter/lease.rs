//! Local leases of busy subjects' tokens: the settings ([`Leases`], where
//! the contract is) and the book of the leases an instance holds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::limiter::decision::{Outcome, Verdict};
use crate::limiter::limits::Limits;

/// Local leases: tokens a busy subject's buckets give this instance ahead of
/// use, so that most of its requests are decided without a round trip.
///
/// Off by default ([`RedisLimiterBuilder::leases`]). When on, a check whose
/// subject is busy asks Redis for more than its cost: the script takes the
/// whole lease from the subject's buckets, exactly as it would take a bigger
/// cost (all or nothing with the request's other checks), and this instance
/// keeps the tokens beyond the request's cost. The subject's next requests
/// here spend them locally until they run out or the lease lasts no longer.
///
/// What that keeps and what it gives up:
/// - Never more admitted than the buckets hold: every leased token was taken
///   in Redis before it is spent. Leased tokens are spent later than they
///   were taken, so a bucket looks emptier to other instances meanwhile.
/// - Fewer admitted, at most by the tokens of leases that expire unspent:
///   they are not given back. The size adapts to what the subject spends
///   here in one lease's lifetime, so tokens outlive their lease only when
///   the subject slows down.
/// - Near its limit a subject is judged exactly: a lease never asks for more
///   than half of what its buckets held at the last answer (nor an eighth of
///   the smallest capacity, nor the configured maximum), so it shrinks to the
///   request's own cost as the buckets empty. A lease that asked more than the
///   buckets held is asked again at the request's own cost (one more round
///   trip), so a lease never refuses a request its buckets would admit.
/// - A subject whose requests come slower than one per lifetime is never
///   leased: its size is what it spent in the last lifetime.
/// - A check in shadow mode is never leased, and the in-memory fallback
///   (Redis down) knows nothing of leases: tokens already leased are still
///   spent.
///
/// Decisions spent from a lease say [`DecidedBy::Lease`]; their remaining
/// tokens count what Redis last said plus the lease's unspent tokens.
///
/// ```
/// use std::time::Duration;
/// use dynagate::limiter::Leases;
///
/// let leases = Leases::up_to(32)?.lasting(Duration::from_millis(500))?;
/// assert_eq!(leases.max_tokens(), 32);
/// # Ok::<(), dynagate::ConfigError>(())
/// ```
///
/// [`DecidedBy::Lease`]: crate::limiter::DecidedBy::Lease
/// [`RedisLimiterBuilder::leases`]: crate::limiter::RedisLimiterBuilder::leases
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leases {
    max_tokens: u64,
    lifetime: Duration,
}

impl Leases {
    /// Leases of at most `max_tokens` (at least 2), lasting 1 s.
    pub fn up_to(max_tokens: u64) -> Result<Leases, ConfigError> {
        if max_tokens < 2 {
            return Err(ConfigError::invalid(
                "leases.max_tokens",
                "must be at least 2 (a lease of 1 is a plain call; leave leases off instead)",
            ));
        }
        Ok(Leases {
            max_tokens,
            lifetime: Duration::from_secs(1),
        })
    }

    /// How long leased tokens may be spent (default 1 s; between 10 ms and
    /// 60 s). Longer leases save more calls for subjects with slower traffic
    /// and keep tokens away from other instances longer.
    pub fn lasting(self, lifetime: Duration) -> Result<Leases, ConfigError> {
        if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&lifetime) {
            return Err(ConfigError::invalid(
                "leases.lifetime",
                "must be between 10 ms and 60 s",
            ));
        }
        Ok(Leases { lifetime, ..self })
    }

    /// The largest lease.
    pub fn max_tokens(&self) -> u64 {
        self.max_tokens
    }

    /// How long a lease lasts.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

/// The leases this instance holds, one per subject key, bounded in number.
#[derive(Debug)]
pub(crate) struct LeaseBook {
    settings: Leases,
    max_entries: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Leased and not yet spent.
    tokens: u64,
    /// When the leased tokens stop being spendable.
    expires: Instant,
    /// Spent from the current lease.
    spent: u64,
    /// The next lease's size, before the caps of [`LeaseBook::ask`].
    size: u64,
    /// Redis's last answer for the subject, and when it came.
    verdict: Verdict,
    at: Instant,
}

impl LeaseBook {
    pub(crate) fn new(settings: Leases, max_entries: usize) -> LeaseBook {
        LeaseBook {
            settings,
            max_entries,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spends `cost` from the subject's lease: its verdict (what Redis said
    /// last, with the lease's tokens counted as remaining), or `None` when
    /// the lease is gone or too small, and the request must ask Redis.
    pub(crate) fn take(&self, subject_key: &str, cost: u64) -> Option<Verdict> {
        let now = Instant::now();
        let mut entries = self.lock();
        let entry = entries.get_mut(subject_key)?;
        if now >= entry.expires {
            // A lifetime has passed: size the next lease by what was spent
            // in it; the tokens left are given up (see the module doc).
            entry.size = entry.spent;
            entry.spent = 0;
            entry.tokens = 0;
            entry.expires = now + self.settings.lifetime;
            return None;
        }
        if cost == 0 || entry.tokens < cost {
            if entry.tokens < cost {
                // Ran out within its lifetime: the subject is busier.
                entry.size = entry.size.max(1).saturating_mul(2);
            }
            return None;
        }
        entry.tokens -= cost;
        entry.spent += cost;
        let verdict = Verdict {
            outcome: Outcome::Allowed,
            remaining: entry.verdict.remaining.saturating_add(entry.tokens),
            reset_after: entry
                .verdict
                .reset_after
                .saturating_sub(now.duration_since(entry.at)),
            limit: entry.verdict.limit,
        };
        Some(verdict)
    }

    /// Returns `cost` to the subject's lease: a request that spent it was
    /// refused by another check.
    pub(crate) fn give_back(&self, subject_key: &str, cost: u64) {
        if let Some(entry) = self.lock().get_mut(subject_key) {
            entry.tokens += cost;
            entry.spent = entry.spent.saturating_sub(cost);
        }
    }

    /// What to ask Redis for, for a request of `cost`: the cost, or a lease
    /// when the subject is busy here and far from its limit.
    pub(crate) fn ask(&self, subject_key: &str, limits: &Limits, cost: u64) -> u64 {
        if cost == 0 {
            return 0;
        }
        let entries = self.lock();
        let Some(entry) = entries.get(subject_key) else {
            return cost;
        };
        let smallest = limits
            .iter()
            .map(|l| l.quota().capacity())
            .min()
            .unwrap_or(0);
        let size = entry
            .size
            .min(self.settings.max_tokens)
            .min(smallest / 8)
            .min(entry.verdict.remaining / 2);
        if size < 2 {
            return cost;
        }
        // Tokens still held count towards the lease.
        cost.saturating_add(size.saturating_sub(entry.tokens))
    }

    /// Records Redis's answer for a check that asked `asked` for a request
    /// of `cost`: with `kept` (the request was admitted), the tokens beyond
    /// the cost join the lease. `verdict` is the one for `asked`.
    pub(crate) fn record(
        &self,
        subject_key: &str,
        asked: u64,
        cost: u64,
        verdict: &Verdict,
        kept: bool,
    ) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.max_entries && !entries.contains_key(subject_key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= self.max_entries {
                // Not remembered: this subject's calls stay exact.
                return;
            }
        }
        let entry = entries.entry(subject_key.to_owned()).or_insert(Entry {
            tokens: 0,
            expires: now + self.settings.lifetime,
            spent: 0,
            size: 1,
            verdict: *verdict,
            at: now,
        });
        entry.verdict = *verdict;
        entry.at = now;
        if verdict.outcome != Outcome::Allowed {
            // Near or at its limit: exact calls until it is far again.
            entry.size = 1;
            return;
        }
        if kept {
            if entry.tokens == 0 {
                // A new lease: it lasts a lifetime from now.
                entry.expires = now + self.settings.lifetime;
            }
            entry.tokens += asked.saturating_sub(cost);
            entry.spent += cost;
        }
    }
}

#[cfg(test)]
#[path = "lease/tests.rs"]
mod tests;
