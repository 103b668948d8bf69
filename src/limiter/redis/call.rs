//! One script call for a group of checks whose buckets share a slot:
//! `gcra.lua` for a lone check (the shorter call of `check`), `gcra_all.lua`
//! for several. Both are the same decision (a lone check is admitted exactly
//! when it is allowed, and an independent one takes exactly then too), so
//! which one runs changes nothing but the size of the call.

use std::sync::LazyLock;
use std::time::Duration;

use crate::limiter::checks::Check;
use crate::limiter::decision::{Outcome, Verdict};
use crate::limiter::redis::{RedisLimiter, SCRIPT, count_error};
use crate::redis_support::{Script, ScriptError, run_script};

/// The Lua source of the script that decides several checks. Its contract
/// (`KEYS`, `ARGV`, the reply) is described at its top;
/// [`RedisLimiter::check_all_script_sha1`] is its hash.
pub(crate) const ALL_SCRIPT_SOURCE: &str = include_str!("../gcra_all.lua");

pub(super) static ALL_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ALL_SCRIPT_SOURCE));

/// Integers of a verdict in a reply.
const VERDICT_LEN: usize = 5;

impl RedisLimiter {
    /// The SHA1 that `EVALSHA` names the script deciding several checks by.
    pub fn check_all_script_sha1() -> &'static str {
        ALL_SCRIPT.hash()
    }

    /// One call deciding `checks` (whose buckets must share a slot on a
    /// cluster), within the deadline, without the failure policy, breaker or
    /// deny cache: one verdict per check, or the error (counted for every
    /// check). `subject_keys` are the checks' `Limits::subject_key`s, made
    /// once per request by the caller.
    pub(super) async fn try_group(
        &self,
        checks: &[Check<'_>],
        subject_keys: &[&str],
    ) -> Result<Vec<Verdict>, ScriptError> {
        let lone = checks.len() == 1;
        // Sized once: this runs on every request.
        let buckets: usize = checks.iter().map(|c| c.limits.len()).sum();
        let mut keys = Vec::with_capacity(buckets);
        let mut args: Vec<u64> = Vec::with_capacity(1 + 3 * checks.len() + 2 * buckets);
        if !lone {
            args.push(checks.len() as u64);
        }
        for (check, subject_key) in checks.iter().zip(subject_keys) {
            keys.extend(check.limits.bucket_keys(subject_key));
            args.push(check.cost);
            if !lone {
                args.push(u64::from(check.independent));
                args.push(check.limits.len() as u64);
            }
            for limit in check.limits.iter() {
                args.push(limit.quota().interval_micros());
                args.push(limit.quota().capacity());
            }
        }
        let namespace = checks.first().map_or("", |c| c.limits.namespace());
        let on_reload = || {
            metrics::counter!(
                "dynagate_limiter_script_reloads_total",
                "namespace" => namespace.to_owned(),
            )
            .increment(1);
            tracing::debug!(namespace, "NOSCRIPT: sending the rate-limit script again");
        };
        let script = if lone { &*SCRIPT } else { &*ALL_SCRIPT };
        let call = run_script::<_, Vec<i64>>(
            &self.inner.connection,
            script,
            &keys,
            &args,
            self.inner.deadline,
            on_reload,
        );
        let outcome = call.await.and_then(|reply| {
            let parsed = if lone {
                parse_reply(&reply, checks[0].limits.len()).map(|v| vec![v])
            } else {
                parse_all_reply(&reply, checks)
            };
            parsed.ok_or_else(|| ScriptError::UnexpectedReply {
                reply: format!("{reply:?}"),
            })
        });
        if let Err(error) = &outcome {
            for check in checks {
                count_error(check.limits, error.label());
            }
        }
        outcome
    }
}

/// `gcra.lua`'s reply: `{outcome, remaining, retry_after_us, reset_after_us,
/// limit (1-based), now_us}`.
pub(super) fn parse_reply(reply: &[i64], limits: usize) -> Option<Verdict> {
    let [verdict @ .., _now] = reply else {
        return None;
    };
    parse_verdict(verdict, limits)
}

/// `gcra_all.lua`'s reply: `{admitted, now_us}`, then a verdict per check;
/// the admission must be the one the verdicts imply.
pub(super) fn parse_all_reply(reply: &[i64], checks: &[Check<'_>]) -> Option<Vec<Verdict>> {
    let [admitted, _now, verdicts @ ..] = reply else {
        return None;
    };
    (verdicts.len() == VERDICT_LEN * checks.len()).then_some(())?;
    let verdicts = verdicts
        .chunks(VERDICT_LEN)
        .zip(checks)
        .map(|(verdict, check)| parse_verdict(verdict, check.limits.len()))
        .collect::<Option<Vec<Verdict>>>()?;
    let implied = checks
        .iter()
        .zip(&verdicts)
        .all(|(c, v)| c.independent || v.outcome == Outcome::Allowed);
    (*admitted == i64::from(implied)).then_some(verdicts)
}

/// `{outcome, remaining, retry_after_us, reset_after_us, limit (1-based)}`.
fn parse_verdict(verdict: &[i64], limits: usize) -> Option<Verdict> {
    let &[outcome, remaining, retry_after, reset_after, limit] = verdict else {
        return None;
    };
    let micros = |v: i64| u64::try_from(v).ok().map(Duration::from_micros);
    let outcome = match outcome {
        1 => Outcome::Allowed,
        0 => Outcome::Denied {
            retry_after: micros(retry_after)?,
        },
        -1 => Outcome::Never,
        _ => return None,
    };
    let limit = usize::try_from(limit).ok()?.checked_sub(1)?;
    (limit < limits).then_some(())?;
    Some(Verdict {
        outcome,
        remaining: u64::try_from(remaining).ok()?,
        reset_after: micros(reset_after)?,
        limit,
    })
}
