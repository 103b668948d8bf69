//! The in-process limiter: the same decision function over a map in memory.
//!
//! For development and tests without Redis, and as the Redis limiter's
//! fallback while Redis is down. It limits one process only: a fleet of N
//! instances admits N times its quota, unless each uses a share
//! ([`crate::limiter::Quota::shared_by`]), as the fallback does.
//!
//! Time comes from a [`Clock`]: [`TokioClock`] (monotonic, follows tokio's
//! paused time in tests) by default, or [`ManualClock`] to drive it by hand.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::limiter::checks::{Check, Decisions};
use crate::limiter::decision::{DecidedBy, Decision};
use crate::limiter::gcra_all::{Part, decide_all};
use crate::limiter::limits::Limits;
use crate::limiter::quota::Quota;
use crate::limiter::settle::settle;
use crate::limiter::{CheckAllFuture, LimitFuture, RateLimiter, SettleFuture, count_decision};

/// A source of time in microseconds. Only differences matter; it should not
/// go backwards (if it does, buckets are clamped as for Redis's clock).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Microseconds since the clock's own epoch.
    fn now_micros(&self) -> u64;
}

/// tokio's monotonic clock: paused and advanced with tokio's test utilities.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock {
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_micros(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to. Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `micros`.
    pub fn new(micros: u64) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(micros)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock, possibly backwards.
    pub fn set(&self, micros: u64) {
        self.0.store(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A rate limiter in this process's memory. Cheap to clone; clones share the
/// buckets.
#[derive(Debug, Clone)]
pub struct MemoryLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: Box<dyn Clock>,
    buckets: Mutex<Buckets>,
    decided_by: DecidedBy,
}

#[derive(Debug, Default)]
struct Buckets {
    tats: HashMap<String, u64>,
    /// Size after the last sweep: the next sweep runs when the map has doubled.
    swept_at: usize,
}

/// Buckets below this count are never swept.
const MIN_SWEEP: usize = 1024;

impl Default for MemoryLimiter {
    fn default() -> Self {
        MemoryLimiter::new()
    }
}

impl MemoryLimiter {
    /// A limiter on tokio's clock.
    pub fn new() -> MemoryLimiter {
        MemoryLimiter::with_clock(TokioClock::default())
    }

    /// A limiter on the given clock.
    pub fn with_clock(clock: impl Clock + 'static) -> MemoryLimiter {
        MemoryLimiter::build(Box::new(clock), DecidedBy::Memory)
    }

    pub(crate) fn fallback() -> MemoryLimiter {
        MemoryLimiter::build(Box::new(TokioClock::default()), DecidedBy::Fallback)
    }

    fn build(clock: Box<dyn Clock>, decided_by: DecidedBy) -> MemoryLimiter {
        MemoryLimiter {
            inner: Arc::new(Inner {
                clock,
                buckets: Mutex::new(Buckets::default()),
                decided_by,
            }),
        }
    }

    /// Decides at once (the [`RateLimiter`] future does nothing else).
    pub fn check_now(&self, limits: &Limits, subject: &str, cost: u64) -> Decision {
        let mut decisions = self.check_all_now(&[Check::new(limits, subject, cost)]);
        decisions.each.remove(0)
    }

    /// Decides every check of one request at once, under one lock, as
    /// [`RateLimiter::check_all`] describes: exact, all or nothing across the
    /// checks that are not independent.
    pub fn check_all_now(&self, checks: &[Check<'_>]) -> Decisions {
        let (verdicts, admitted) = {
            let now = self.inner.clock.now_micros();
            let keys: Vec<Vec<String>> = checks
                .iter()
                .map(|c| c.limits.keys("", c.subject))
                .collect();
            let mut buckets = self.inner.buckets.lock().unwrap_or_else(|p| p.into_inner());
            let mut parts: Vec<Part> = checks
                .iter()
                .zip(&keys)
                .map(|(c, keys)| Part {
                    quotas: c.limits.iter().map(|l| l.quota()).collect(),
                    tats: keys.iter().map(|k| buckets.tats.get(k).copied()).collect(),
                    cost: c.cost,
                    independent: c.independent,
                })
                .collect();
            let before: Vec<Vec<Option<u64>>> = parts.iter().map(|p| p.tats.clone()).collect();
            let decided = decide_all(now, &mut parts);
            let mut wrote = false;
            for ((keys, part), before) in keys.into_iter().zip(parts).zip(before) {
                for ((key, tat), old) in keys.into_iter().zip(part.tats).zip(before) {
                    if let Some(tat) = tat.filter(|tat| Some(*tat) != old) {
                        buckets.tats.insert(key, tat);
                        wrote = true;
                    }
                }
            }
            if wrote {
                buckets.sweep(now);
            }
            decided
        };
        let each: Vec<Decision> = verdicts
            .into_iter()
            .map(|verdict| Decision::new(verdict, self.inner.decided_by))
            .collect();
        if self.inner.decided_by == DecidedBy::Memory {
            for (check, decision) in checks.iter().zip(&each) {
                count_decision(check.limits, decision);
            }
        }
        Decisions { each, admitted }
    }

    /// Settles at once (the [`RateLimiter`] future does nothing else): moves
    /// `tokens` into every bucket of `limits` for `subject`, as
    /// [`RateLimiter::settle`] describes.
    pub fn settle_now(&self, limits: &Limits, subject: &str, tokens: i64) {
        if tokens == 0 {
            return;
        }
        let now = self.inner.clock.now_micros();
        let keys = limits.keys("", subject);
        let quotas: Vec<Quota> = limits.iter().map(|l| l.quota()).collect();
        let mut buckets = self.inner.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let mut tats: Vec<Option<u64>> =
            keys.iter().map(|k| buckets.tats.get(k).copied()).collect();
        settle(now, &quotas, &mut tats, tokens);
        for (key, tat) in keys.into_iter().zip(tats) {
            match tat {
                Some(tat) => buckets.tats.insert(key, tat),
                None => buckets.tats.remove(&key),
            };
        }
        buckets.sweep(now);
    }

    /// How many buckets are held (full buckets may linger until a sweep).
    pub fn len(&self) -> usize {
        self.inner
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tats
            .len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Buckets {
    /// Drops full buckets (TAT passed: equal to no bucket) once the map has
    /// doubled since the last sweep, so memory follows the active subjects.
    fn sweep(&mut self, now: u64) {
        if self.tats.len() < MIN_SWEEP.max(self.swept_at * 2) {
            return;
        }
        self.tats.retain(|_, tat| *tat > now);
        self.swept_at = self.tats.len();
    }
}

impl RateLimiter for MemoryLimiter {
    fn check<'a>(&'a self, limits: &'a Limits, subject: &'a str, cost: u64) -> LimitFuture<'a> {
        let decision = self.check_now(limits, subject, cost);
        Box::pin(std::future::ready(decision))
    }

    fn check_all<'a>(&'a self, checks: &'a [Check<'a>]) -> CheckAllFuture<'a> {
        let decisions = self.check_all_now(checks);
        Box::pin(std::future::ready(decisions))
    }

    fn settle<'a>(&'a self, limits: &'a Limits, subject: &'a str, tokens: i64) -> SettleFuture<'a> {
        self.settle_now(limits, subject, tokens);
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Outcome;

    fn limits() -> Limits {
        Limits::builder("t")
            .limit("second", Quota::per_second(5).burst(5).unwrap())
            .limit("minute", Quota::per_minute(8).burst(8).unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn follows_the_model_on_an_injected_clock() {
        let clock = ManualClock::new(1_000_000);
        let limiter = MemoryLimiter::with_clock(clock.clone());
        let l = limits();
        let admitted = (0..10)
            .filter(|_| limiter.check_now(&l, "a", 1).allowed())
            .count();
        assert_eq!(admitted, 5, "the per-second burst");
        clock.advance(Duration::from_secs(1));
        let d = limiter.check_now(&l, "a", 4);
        assert_eq!(
            d.limit(),
            1,
            "the minute limit holds 3 tokens, the second 5"
        );
        let d = limiter.check_now(&l, "a", 3);
        assert!(d.allowed());
        assert_eq!(d.decided_by(), DecidedBy::Memory);
        let d = limiter.check_now(&l, "a", 1);
        assert_eq!(d.limit(), 1, "the minute limit is spent: 8 in 1 s");
        assert!(matches!(d.outcome(), Outcome::Denied { .. }));
        assert!(
            limiter.check_now(&l, "b", 1).allowed(),
            "subjects are apart"
        );
        assert_eq!(limiter.check_now(&l, "b", 6).outcome(), Outcome::Never);
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_clock_follows_paused_tokio_time() {
        let limiter = MemoryLimiter::new();
        let l = Limits::single("t", "s", Quota::per_second(1).burst(1).unwrap()).unwrap();
        assert!(limiter.check(&l, "a", 1).await.allowed());
        let d = limiter.check(&l, "a", 1).await;
        assert_eq!(d.retry_after(), Some(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(limiter.check(&l, "a", 1).await.allowed());
    }

    #[test]
    fn settles_follow_the_model_on_every_bucket() {
        let limiter = MemoryLimiter::with_clock(ManualClock::new(1_000_000));
        let l = limits();
        assert!(
            limiter.check_now(&l, "a", 5).allowed(),
            "a reservation of 5"
        );
        limiter.settle_now(&l, "a", -3);
        let d = limiter.check_now(&l, "a", 0);
        assert_eq!((d.remaining(), d.limit()), (3, 0), "2 used: 3 of 5, 6 of 8");
        limiter.settle_now(&l, "a", 0);
        assert_eq!(limiter.check_now(&l, "a", 0).remaining(), 3);
        limiter.settle_now(&l, "a", 7);
        let d = limiter.check_now(&l, "a", 1);
        assert_eq!(
            d.retry_after(),
            Some(Duration::from_millis(7500)),
            "both empty, not in debt: one token of the minute limit"
        );
        limiter.settle_now(&l, "a", -100);
        assert!(limiter.is_empty(), "refunded to full: no bucket left");
        limiter.settle_now(&l, "b", -1);
        assert!(
            limiter.is_empty(),
            "a refund to a full bucket writes nothing"
        );
    }

    #[test]
    fn full_buckets_are_swept_so_memory_follows_active_subjects() {
        let clock = ManualClock::new(0);
        let limiter = MemoryLimiter::with_clock(clock.clone());
        let l = Limits::single("t", "s", Quota::per_second(1).burst(1).unwrap()).unwrap();
        for i in 0..MIN_SWEEP {
            limiter.check_now(&l, &format!("old-{i}"), 1);
        }
        assert_eq!(
            limiter.len(),
            MIN_SWEEP,
            "a sweep found every bucket in use"
        );
        clock.advance(Duration::from_secs(2));
        for i in 0..MIN_SWEEP {
            limiter.check_now(&l, &format!("new-{i}"), 1);
        }
        assert_eq!(limiter.len(), MIN_SWEEP, "the old, full buckets were swept");
    }

    #[tokio::test(start_paused = true)]
    async fn check_all_is_all_or_nothing_and_shadow_checks_take_on_their_own() {
        let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryLimiter::new());
        let ip = Limits::single("ip", "s", Quota::per_second(1).burst(10).unwrap()).unwrap();
        let key = limits();
        let shadow = Limits::single("shadow", "s", Quota::per_second(1).burst(2).unwrap()).unwrap();
        let checks = [
            Check::new(&ip, "203.0.113.9", 1),
            Check::new(&key, "k", 3),
            Check::new(&shadow, "k", 1).independent(),
        ];
        let d = limiter.check_all(&checks).await;
        assert!(d.admitted);
        assert_eq!(d.each[1].remaining(), 2, "its own cost: 5 - 3");
        let d = limiter.check_all(&checks).await;
        assert!(!d.admitted, "the key holds 2 of 3");
        assert_eq!(d.refused_by(&checks), Some(1));
        assert!(d.each[0].allowed() && d.each[2].allowed());
        assert_eq!(d.each[2].remaining(), 0, "the shadow bucket took its token");
        let ip_left = limiter.check(&ip, "203.0.113.9", 0).await.remaining();
        assert_eq!(
            ip_left, 9,
            "the refused request took nothing from the ceiling"
        );
        let d = limiter.check_all(&checks[..1]).await;
        assert!(d.admitted);
        let d = limiter.check_all(&checks).await;
        assert!(
            !d.admitted && !d.each[2].allowed(),
            "the shadow bucket is spent"
        );
        assert_eq!(
            d.refused_by(&checks),
            Some(1),
            "a shadow denial refuses nothing"
        );
        let empty = limiter.check_all(&[]).await;
        assert!(empty.admitted && empty.each.is_empty());
    }
}
