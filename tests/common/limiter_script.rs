//! What the limiter's script tests share: a production script on an injected
//! clock, a reply's verdict in the model's terms, and random quotas.

use std::time::Duration;

use dynagate::limiter::{Outcome, Quota, Verdict};
use proptest::prelude::*;

/// A production script with the server clock replaced by the last two
/// ARGV (seconds, microseconds), and expiries pushed an hour out so that real
/// time passing during the test never expires a key the injected clock still
/// needs. Everything else is the production text.
pub fn fixed_clock_script(script: &str) -> redis::Script {
    const CLOCK: &str = "redis.call('TIME')";
    const TTL: &str = "local ttl = idiv(tat - now + 999, 1000)";
    assert!(
        script.contains(CLOCK) && script.contains(TTL),
        "script changed"
    );
    let source = script
        .replace(CLOCK, "{ARGV[#ARGV - 1], ARGV[#ARGV]}")
        .replace(TTL, &format!("{TTL} + 3600000"));
    redis::Script::new(&source)
}

/// `{outcome, remaining, retry_after_us, reset_after_us, limit (1-based)}`.
pub fn verdict_in(reply: &[i64]) -> Verdict {
    assert_eq!(reply.len(), 5, "{reply:?}");
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap());
    let outcome = match reply[0] {
        1 => Outcome::Allowed,
        0 => Outcome::Denied {
            retry_after: us(reply[2]),
        },
        -1 => Outcome::Never,
        other => panic!("outcome {other}"),
    };
    Verdict {
        outcome,
        remaining: u64::try_from(reply[1]).unwrap(),
        reset_after: us(reply[3]),
        limit: usize::try_from(reply[4] - 1).unwrap(),
    }
}

/// Random quotas: capacities 1 to 100, periods from 1 ms to a day.
pub fn quota_strategy() -> impl Strategy<Value = Quota> {
    let period_ms = prop_oneof![
        Just(1u64),
        Just(7),
        Just(1000),
        Just(60_000),
        Just(86_400_000),
        1u64..100_000,
    ];
    (1u64..=100, 1u64..=50, period_ms).prop_map(|(capacity, tokens, period)| {
        Quota::per_period(tokens, Duration::from_millis(period))
            .burst(capacity)
            .unwrap()
    })
}
