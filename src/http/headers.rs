//! `Retry-After` and the IETF `RateLimit` / `RateLimit-Policy` fields
//! (draft-ietf-httpapi-ratelimit-headers-11, structured fields):
//!
//! ```text
//! RateLimit-Policy: "second";q=10;w=1, "day";q=10000;w=86400
//! RateLimit: "second";r=3;t=1
//! ```
//!
//! `q` is a quota's capacity, `w` the seconds a drained bucket needs to be
//! full again, `r` the tokens left and `t` the seconds until the bucket the
//! field names is full again (that bucket's own time, never another limit's).
//! Seconds are rounded up, so a client that waits `Retry-After` seconds is
//! never early; a quota's interval is kept rounded up to a whole microsecond
//! (see `Quota`), and that sub-microsecond rounding is taken back out before
//! the seconds are rounded, so a 2 s refill is advertised as `w=2`, not 3.
//!
//! A policy is named `<namespace>.<limit>` (`"key.second"`, `"ip.second"`):
//! the per-IP ceiling and a key's quota may both have a limit named
//! `second`, and a client must be able to tell them apart.

use std::time::Duration;

use http::HeaderValue;

use crate::limiter::{Decision, Limit, Limits, Quota};

/// Whole seconds, rounded up, at least `min`.
pub(crate) fn ceil_seconds(d: Duration, min: u64) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(min)
}

/// `Retry-After` for a denied request: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(ceil_seconds(wait, 1))
}

/// The time `tokens` tokens of `quota` take to refill, without the up to
/// 1 µs per token that rounding the interval up added.
fn refill_time(quota: &Quota, tokens: u64) -> Duration {
    let rounded = tokens.saturating_mul(quota.interval_micros());
    Duration::from_micros(rounded.saturating_sub(tokens.saturating_sub(1)))
}

/// The policy's name in the fields (and in a problem's `violated-policies`):
/// `<namespace>.<limit>`.
pub(crate) fn policy_name(limits: &Limits, limit: &Limit) -> String {
    sanitize(&format!("{}.{}", limits.namespace(), limit.name()))
}

/// `RateLimit-Policy` for every limit of `limits`: made once per `Limits`
/// (it depends on nothing else), then copied into each response.
pub(crate) fn rate_limit_policy(limits: &Limits) -> HeaderValue {
    let value = limits
        .handles()
        .policy_field
        .get_or_init(|| policy_field(limits));
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn policy_field(limits: &Limits) -> Box<str> {
    limits
        .iter()
        .map(|limit| {
            let quota = limit.quota();
            format!(
                "\"{}\";q={};w={}",
                policy_name(limits, limit),
                quota.capacity(),
                ceil_seconds(refill_time(&quota, quota.capacity()), 1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
        .into()
}

/// `RateLimit` for the limit that decided: its tokens left and the time until
/// that bucket is full again (an upper bound within one token's interval).
pub(crate) fn rate_limit(limits: &Limits, decision: &Decision) -> HeaderValue {
    let Some(limit) = limits.as_slice().get(decision.limit()) else {
        return HeaderValue::from_static("");
    };
    let quota = limit.quota();
    let remaining = decision.remaining().min(quota.capacity());
    let value = format!(
        "\"{}\";r={};t={}",
        policy_name(limits, limit),
        remaining,
        ceil_seconds(refill_time(&quota, quota.capacity() - remaining), 0)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Policy names become structured-field strings: printable ASCII without `"` or `\`.
fn sanitize(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{DecidedBy, Outcome, Verdict};

    fn limits() -> Limits {
        Limits::builder("ip")
            .limit("second", Quota::per_second(10).burst(10).unwrap())
            .limit("day", Quota::per_day(1000).burst(1000).unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after(Duration::from_millis(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1001)), "2");
        assert_eq!(retry_after(Duration::from_secs(7)), "7");
        assert_eq!(retry_after(Duration::ZERO), "1");
    }

    #[test]
    fn the_policy_lists_every_limit_with_its_window() {
        assert_eq!(
            rate_limit_policy(&limits()),
            "\"ip.second\";q=10;w=1, \"ip.day\";q=1000;w=86400"
        );
    }

    /// 3 tokens a second are kept as a 333,334 µs interval; a burst of 6
    /// refills in 2 s, which used to be advertised as `w=3`.
    #[test]
    fn the_window_is_not_rounded_up_twice() {
        let limits = Limits::builder("key")
            .limit("second", Quota::per_second(3).burst(6).unwrap())
            .build()
            .unwrap();
        assert_eq!(rate_limit_policy(&limits), "\"key.second\";q=6;w=2");
    }

    #[test]
    fn the_rate_limit_field_reports_the_limit_that_decided() {
        let decision = Decision::new(
            Verdict {
                outcome: Outcome::Denied {
                    retry_after: Duration::from_millis(300),
                },
                remaining: 0,
                reset_after: Duration::from_millis(2500),
                limit: 1,
            },
            DecidedBy::Redis,
        );
        // The day bucket decided: its own refill, not the second's.
        assert_eq!(rate_limit(&limits(), &decision), "\"ip.day\";r=0;t=86400");
    }

    /// A client read `"second";r=0;t=9` beside `Retry-After: 1` while the
    /// named limit was full again after 2 s: `t` was the time until every
    /// bucket (the day's) was full.
    #[test]
    fn t_is_the_named_limits_own_time() {
        let limits = Limits::builder("key")
            .limit("second", Quota::per_second(10).burst(20).unwrap())
            .limit("day", Quota::per_day(100_000).burst(100_000).unwrap())
            .build()
            .unwrap();
        let decision = Decision::new(
            Verdict {
                outcome: Outcome::Denied {
                    retry_after: Duration::from_millis(100),
                },
                remaining: 0,
                reset_after: Duration::from_secs(9),
                limit: 0,
            },
            DecidedBy::Redis,
        );
        assert_eq!(rate_limit(&limits, &decision), "\"key.second\";r=0;t=2");
    }
}
