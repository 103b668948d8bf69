//! Every check of one request through Redis: the deny cache first, then one
//! script call per slot (one call on a single Redis), all sent at once, each
//! through the breaker and, when Redis cannot decide, the failure policy; a
//! group that took its tokens for a request another group refused gives
//! them back. The exactness this gives is stated on
//! [`RateLimiter::check_all`](crate::limiter::RateLimiter::check_all).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use redis::cluster_routing::Slot;

use crate::limiter::checks::{Check, Decisions};
use crate::limiter::decision::{DecidedBy, Decision, Outcome, Verdict};
use crate::limiter::failure::FailurePolicy;
use crate::limiter::limits::Limits;
use crate::limiter::redis::RedisLimiter;
use crate::redis_support::RedisConnection;

/// Where a group's tokens were taken, to give them back from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakenIn {
    Redis,
    Fallback,
    /// Failing open or closed takes nothing.
    Nowhere,
}

/// What one group of checks (one slot) was answered.
#[derive(Debug)]
struct Group {
    /// Indices into the request's checks.
    members: Vec<usize>,
    decisions: Vec<Decision>,
    taken_in: TakenIn,
}

/// The same verdict with nothing known: what the policy answers without
/// Redis, and a check that was not asked.
fn unknown(outcome: Outcome) -> Verdict {
    Verdict {
        outcome,
        remaining: 0,
        reset_after: Duration::ZERO,
        limit: 0,
    }
}

impl RedisLimiter {
    pub(super) async fn decide_all(&self, checks: &[Check<'_>]) -> Decisions {
        if checks.is_empty() {
            return Decisions {
                each: Vec::new(),
                admitted: true,
            };
        }
        // Each subject's key, made once: the deny cache, the slots and the
        // script call all name the buckets by it.
        let subject_keys: Vec<String> = checks
            .iter()
            .map(|c| c.limits.subject_key(&self.inner.prefix, c.subject))
            .collect();
        if let Some(refused) = self.refused_locally(checks, &subject_keys) {
            return refused;
        }
        match &self.inner.leases {
            Some(book) => self.decide_leased(book, checks, &subject_keys).await,
            None => {
                let keys: Vec<&str> = subject_keys.iter().map(String::as_str).collect();
                self.decide_remote(checks, &keys).await
            }
        }
    }

    /// Every check decided by Redis (or the failure policy), named by its
    /// subject key; the tokens of a refused request given back.
    pub(super) async fn decide_remote(
        &self,
        checks: &[Check<'_>],
        subject_keys: &[&str],
    ) -> Decisions {
        let groups = self.groups(subject_keys);
        let groups = join_all(
            groups
                .into_iter()
                .map(|members| self.decide_group(checks, subject_keys, members)),
        )
        .await;
        let mut each =
            vec![Decision::new(unknown(Outcome::Allowed), DecidedBy::NotAsked); checks.len()];
        for group in &groups {
            for (&i, decision) in group.members.iter().zip(&group.decisions) {
                each[i] = *decision;
            }
        }
        let admitted = checks
            .iter()
            .zip(&each)
            .all(|(c, d)| c.independent || d.allowed());
        if !admitted {
            self.refund(checks, &groups).await;
        }
        Decisions { each, admitted }
    }

    /// The request refused by the deny cache without a round trip, when a
    /// non-independent check is known to be refused at its cost.
    fn refused_locally(&self, checks: &[Check<'_>], subject_keys: &[String]) -> Option<Decisions> {
        let cache = self.inner.deny_cache.as_ref()?;
        let (refusing, verdict) = checks.iter().enumerate().find_map(|(i, c)| {
            if c.independent {
                return None;
            }
            cache
                .lookup(&subject_keys[i], c.cost)
                .map(|verdict| (i, verdict))
        })?;
        let mut each =
            vec![Decision::new(unknown(Outcome::Allowed), DecidedBy::NotAsked); checks.len()];
        each[refusing] = Decision::new(verdict, DecidedBy::DenyCache);
        Some(Decisions {
            each,
            admitted: false,
        })
    }

    /// The checks by slot, in order of first appearance: one group on a
    /// single Redis (it does not enforce slots), one per slot on a cluster.
    fn groups(&self, subject_keys: &[&str]) -> Vec<Vec<usize>> {
        if !matches!(self.inner.connection, RedisConnection::Cluster(_)) {
            return vec![(0..subject_keys.len()).collect()];
        }
        let mut slots: Vec<(Slot, Vec<usize>)> = Vec::new();
        for (i, subject_key) in subject_keys.iter().enumerate() {
            let slot = Slot::for_key(subject_key);
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, members)) => members.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        slots.into_iter().map(|(_, members)| members).collect()
    }

    async fn decide_group(
        &self,
        checks: &[Check<'_>],
        subject_keys: &[&str],
        members: Vec<usize>,
    ) -> Group {
        let group: Vec<Check<'_>> = members.iter().map(|&i| checks[i]).collect();
        let keys: Vec<&str> = members.iter().map(|&i| subject_keys[i]).collect();
        let Some(attempt) = self.inner.breaker.attempt() else {
            return self.on_failure(&group, members, "circuit_open");
        };
        match self.try_group(&group, &keys).await {
            Ok(verdicts) => {
                attempt.succeeded();
                let decisions: Vec<Decision> = verdicts
                    .into_iter()
                    .map(|v| Decision::new(v, DecidedBy::Redis))
                    .collect();
                if let Some(cache) = &self.inner.deny_cache {
                    for ((check, decision), key) in group.iter().zip(&decisions).zip(&keys) {
                        cache.remember(key, check.cost, &decision.verdict());
                    }
                }
                Group {
                    members,
                    decisions,
                    taken_in: TakenIn::Redis,
                }
            }
            Err(error) => {
                let probe = attempt.is_probe();
                attempt.failed();
                tracing::debug!(
                    namespace = group[0].limits.namespace(),
                    checks = group.len(),
                    probe,
                    error = %error,
                    "rate-limit call to Redis failed"
                );
                self.on_failure(&group, members, "error")
            }
        }
    }

    /// The failure policy's answer for a group Redis could not decide.
    fn on_failure(&self, group: &[Check<'_>], members: Vec<usize>, reason: &'static str) -> Group {
        let policy = self.inner.policy;
        for check in group {
            metrics::counter!(
                "dynagate_limiter_fallbacks_total",
                "namespace" => check.limits.namespace().to_owned(),
                "policy" => policy.label(),
                "reason" => reason,
            )
            .increment(1);
        }
        let wait = self.inner.breaker.settings().open_for();
        let every = |verdict, decided_by| vec![Decision::new(verdict, decided_by); group.len()];
        let (decisions, taken_in) = match policy {
            FailurePolicy::FailOpen => (
                every(unknown(Outcome::Allowed), DecidedBy::FailOpen),
                TakenIn::Nowhere,
            ),
            FailurePolicy::FailClosed => (
                every(
                    unknown(Outcome::Denied { retry_after: wait }),
                    DecidedBy::FailClosed,
                ),
                TakenIn::Nowhere,
            ),
            FailurePolicy::Fallback { instances } => {
                let shares: Vec<Limits> = group
                    .iter()
                    .map(|c| c.limits.shared_by(instances))
                    .collect();
                let shared: Vec<Check<'_>> = group
                    .iter()
                    .zip(&shares)
                    .map(|(c, share)| Check {
                        limits: share,
                        ..*c
                    })
                    .collect();
                let mut decided = self.inner.fallback.check_all_now(&shared);
                for (check, decision) in group.iter().zip(&mut decided.each) {
                    let fits_whole = check
                        .limits
                        .iter()
                        .all(|l| check.cost <= l.quota().capacity());
                    if decision.outcome() == Outcome::Never && fits_whole {
                        // Above this instance's share, not above the quota:
                        // Redis may admit it once it is back.
                        let mut verdict = decision.verdict();
                        verdict.outcome = Outcome::Denied { retry_after: wait };
                        *decision = Decision::new(verdict, DecidedBy::Fallback);
                    }
                }
                (decided.each, TakenIn::Fallback)
            }
        };
        Group {
            members,
            decisions,
            taken_in,
        }
    }

    /// Gives back the tokens of every group that kept them (its own checks
    /// all allowed) for a request another group refused. Spawned, so that a
    /// caller that stops waiting does not keep the tokens taken.
    async fn refund(&self, checks: &[Check<'_>], groups: &[Group]) {
        let mut refunds = Vec::new();
        for group in groups {
            let kept = group
                .members
                .iter()
                .zip(&group.decisions)
                .all(|(&i, d)| checks[i].independent || d.allowed());
            if !kept || group.taken_in == TakenIn::Nowhere {
                continue;
            }
            for &i in &group.members {
                let check = checks[i];
                if check.independent || check.cost == 0 {
                    continue;
                }
                let tokens = -i64::try_from(check.cost).unwrap_or(i64::MAX);
                match (group.taken_in, self.inner.policy) {
                    (TakenIn::Fallback, FailurePolicy::Fallback { instances }) => {
                        let share = check.limits.shared_by(instances);
                        self.inner
                            .fallback
                            .settle_now(&share, check.subject, tokens);
                    }
                    _ => refunds.push((check.limits.clone(), check.subject.to_owned(), tokens)),
                }
            }
        }
        if refunds.is_empty() {
            return;
        }
        let limiter = self.clone();
        let task = tokio::spawn(async move {
            let settles = refunds.iter().map(|(limits, subject, tokens)| {
                limiter.settle_or_fall_back(limits, subject, *tokens)
            });
            join_all(settles).await;
        });
        // A refund that panicked is a refund not made: the tokens stay taken,
        // on the strict side; nothing to answer the caller differently.
        let _ = task.await;
    }
}

/// Runs the futures concurrently and returns their outputs in order (a few
/// per request: no task per future, no dependency on an allocating join).
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
