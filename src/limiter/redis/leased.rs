//! A request's checks with local leases on (see [`Leases`]): what the leases
//! hold is spent here, the rest goes to Redis in one call, asking a lease for
//! each busy subject; a lease that asked more than its buckets held is asked
//! again at the request's own costs.
//!
//! [`Leases`]: crate::limiter::Leases

use crate::limiter::checks::{Check, Decisions};
use crate::limiter::decision::{DecidedBy, Decision};
use crate::limiter::lease::LeaseBook;
use crate::limiter::redis::RedisLimiter;

impl RedisLimiter {
    pub(super) async fn decide_leased(
        &self,
        book: &LeaseBook,
        checks: &[Check<'_>],
        subject_keys: &[String],
    ) -> Decisions {
        // A check in shadow mode is never leased: it is counted on its own
        // in Redis, and must not be refused for a lease it asked.
        let local: Vec<Option<Decision>> = checks
            .iter()
            .zip(subject_keys)
            .map(|(c, key)| {
                if c.independent {
                    return None;
                }
                book.take(key, c.cost)
                    .map(|v| Decision::new(v, DecidedBy::Lease))
            })
            .collect();
        let remote: Vec<usize> = (0..checks.len()).filter(|&i| local[i].is_none()).collect();
        if remote.is_empty() {
            return Decisions {
                each: local.into_iter().flatten().collect(),
                admitted: true,
            };
        }
        let asked: Vec<Check<'_>> = remote
            .iter()
            .map(|&i| {
                let check = checks[i];
                if check.independent {
                    return check;
                }
                Check {
                    cost: book.ask(&subject_keys[i], check.limits, check.cost),
                    ..check
                }
            })
            .collect();
        let asked_keys: Vec<&str> = remote.iter().map(|&i| subject_keys[i].as_str()).collect();
        let answered = self.decide_remote(&asked, &asked_keys).await;

        let over_asked = remote
            .iter()
            .zip(&asked)
            .zip(&answered.each)
            .any(|((&i, a), d)| a.cost > checks[i].cost && !d.allowed());
        if over_asked {
            // Nothing of the leases was kept (a refusal takes nothing); the
            // buckets may still hold the request's own costs.
            give_back(book, checks, subject_keys, &local);
            let keys: Vec<&str> = subject_keys.iter().map(String::as_str).collect();
            let exact = self.decide_remote(checks, &keys).await;
            for ((check, key), decision) in checks.iter().zip(&keys).zip(&exact.each) {
                if !check.independent && decision.decided_by() == DecidedBy::Redis {
                    let verdict = decision.verdict();
                    book.record(key, check.cost, check.cost, &verdict, exact.admitted);
                }
            }
            return exact;
        }

        let mut each = local;
        for ((&i, a), decision) in remote.iter().zip(&asked).zip(answered.each) {
            let check = checks[i];
            let mut verdict = decision.verdict();
            if !check.independent && decision.decided_by() == DecidedBy::Redis {
                book.record(
                    &subject_keys[i],
                    a.cost,
                    check.cost,
                    &verdict,
                    answered.admitted,
                );
                if decision.allowed() {
                    // Remaining after the request's own cost: the lease's
                    // tokens are the subject's too.
                    verdict.remaining += a.cost - check.cost;
                }
            }
            each[i] = Some(Decision::new(verdict, decision.decided_by()));
        }
        if !answered.admitted {
            give_back(book, checks, subject_keys, &each_local(&each, &remote));
        }
        Decisions {
            each: each.into_iter().flatten().collect(),
            admitted: answered.admitted,
        }
    }
}

/// The decisions spent from leases, with the others blanked.
fn each_local(each: &[Option<Decision>], remote: &[usize]) -> Vec<Option<Decision>> {
    each.iter()
        .enumerate()
        .map(|(i, d)| if remote.contains(&i) { None } else { *d })
        .collect()
}

/// Returns to their leases the costs a refused request spent from them.
fn give_back(
    book: &LeaseBook,
    checks: &[Check<'_>],
    subject_keys: &[String],
    local: &[Option<Decision>],
) {
    for ((check, key), spent) in checks.iter().zip(subject_keys).zip(local) {
        if spent.is_some() {
            book.give_back(key, check.cost);
        }
    }
}
