//! `Retry-After` and the IETF `RateLimit` / `RateLimit-Policy` fields
//! (draft-ietf-httpapi-ratelimit-headers-11, structured fields):
//!
//! ```text
//! RateLimit-Policy: "second";q=10;w=1, "day";q=10000;w=86400
//! RateLimit: "second";r=3;t=1
//! ```
//!
//! `q` is a quota's capacity, `w` the seconds a drained bucket needs to be
//! full again, `r` the tokens left and `t` the seconds until the bucket that
//! decided is full again. Seconds are rounded up, so a client that waits
//! `Retry-After` seconds is never early.

use std::time::Duration;

use http::HeaderValue;

use crate::limiter::{Decision, Limits};

/// Whole seconds, rounded up, at least `min`.
pub(crate) fn ceil_seconds(d: Duration, min: u64) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(min)
}

/// `Retry-After` for a denied request: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after(wait: Duration) -> HeaderValue {
    HeaderValue::from(ceil_seconds(wait, 1))
}

/// `RateLimit-Policy` for every limit of `limits`.
pub(crate) fn rate_limit_policy(limits: &Limits) -> HeaderValue {
    let value = limits
        .iter()
        .map(|limit| {
            let quota = limit.quota();
            let window = quota
                .interval()
                .saturating_mul(u32::try_from(quota.capacity()).unwrap_or(u32::MAX));
            format!(
                "\"{}\";q={};w={}",
                sanitize(limit.name()),
                quota.capacity(),
                ceil_seconds(window, 1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `RateLimit` for the limit that decided.
pub(crate) fn rate_limit(limits: &Limits, decision: &Decision) -> HeaderValue {
    let name = limits
        .as_slice()
        .get(decision.limit())
        .map_or("default", |l| l.name());
    let value = format!(
        "\"{}\";r={};t={}",
        sanitize(name),
        decision.remaining(),
        ceil_seconds(decision.reset_after(), 0)
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
    use crate::limiter::{DecidedBy, Outcome, Quota, Verdict};

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
            "\"second\";q=10;w=1, \"day\";q=1000;w=86400"
        );
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
        assert_eq!(rate_limit(&limits(), &decision), "\"day\";r=0;t=3");
    }
}
