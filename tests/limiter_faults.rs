//! The Redis limiter when Redis misbehaves: scripts flushed, the server
//! stopped, hung and restarted. Each test runs a throwaway `redis-server` of
//! its own on a free loopback port (the shared one on 6379 is never touched),
//! killed and its directory removed when the test ends, pass or fail.

mod common;

use std::time::{Duration, Instant};

use common::ThrowawayRedis;
use dynagate::limiter::{
    DecidedBy, Decision, FailurePolicy, Limits, Outcome, Quota, RateLimiter, RedisLimiter,
};
use dynagate::{BreakerSettings, CircuitState};

fn daily(capacity: u64) -> Limits {
    Limits::single(
        "faults",
        "day",
        Quota::per_day(capacity).burst(capacity).unwrap(),
    )
    .unwrap()
}

fn limiter(
    connection: redis::aio::ConnectionManager,
    policy: FailurePolicy,
    deadline: Duration,
) -> RedisLimiter {
    RedisLimiter::builder(connection)
        .deadline(deadline)
        .on_failure(policy)
        .breaker(
            BreakerSettings::new(3, Duration::from_millis(300))
                .unwrap()
                .failing_for(Duration::ZERO),
        )
        .build()
        .unwrap()
}

/// A check with a generous outer bound: no test asserts tight timings, but a
/// decision that waited for a dead Redis far past its deadline fails.
async fn bounded(limiter: &RedisLimiter, limits: &Limits, subject: &str, cost: u64) -> Decision {
    tokio::time::timeout(Duration::from_secs(3), limiter.check(limits, subject, cost))
        .await
        .expect("a decision long past the deadline")
}

/// Polls until Redis decides again, for at most 20 s.
async fn until_redis_decides(limiter: &RedisLimiter, limits: &Limits, subject: &str) -> Decision {
    for _ in 0..200 {
        let d = bounded(limiter, limits, subject, 1).await;
        if d.decided_by() == DecidedBy::Redis {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Redis never decided again");
}

#[tokio::test]
async fn script_flush_between_calls_is_never_seen_by_callers() {
    let redis = ThrowawayRedis::start().await;
    let mut admin = redis.manager().await;
    // Fail closed: any error that reached the policy would show as a denial.
    let limiter = limiter(
        redis.manager().await,
        FailurePolicy::FailClosed,
        Duration::from_secs(2),
    );
    let limits = daily(100);
    for call in 0..5u64 {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut admin)
            .await
            .unwrap();
        let d = limiter.check(&limits, "flushed", 1).await;
        assert_eq!(d.decided_by(), DecidedBy::Redis, "call {call}");
        assert_eq!(d.remaining(), 99 - call, "call {call}");
        let exists: Vec<bool> = redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(RedisLimiter::script_sha1())
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(
            exists,
            [true],
            "the script is cached again after call {call}"
        );
    }
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut admin)
        .await
        .unwrap();
    let raw = limiter.try_check(&limits, "flushed", 1).await.unwrap();
    assert_eq!(raw.remaining(), 94);
}

#[tokio::test]
async fn a_stopped_redis_gets_each_policys_answer_and_a_restart_is_recovered() {
    let mut redis = ThrowawayRedis::start().await;
    let policies = [
        FailurePolicy::FailOpen,
        FailurePolicy::FailClosed,
        FailurePolicy::fallback(2).unwrap(),
    ];
    let mut limiters = Vec::new();
    for policy in policies {
        limiters.push(limiter(
            redis.manager().await,
            policy,
            Duration::from_millis(50),
        ));
    }
    let limits = daily(10);
    for limiter in &limiters {
        let d = bounded(limiter, &limits, "down", 1).await;
        assert_eq!(d.decided_by(), DecidedBy::Redis);
    }

    redis.kill();
    for limiter in &limiters {
        let mut decisions = Vec::new();
        for _ in 0..12 {
            decisions.push(bounded(limiter, &limits, "down", 1).await);
        }
        assert!(
            matches!(limiter.circuit_state(), CircuitState::Open { .. }),
            "{:?}: {:?}",
            limiter.policy(),
            limiter.circuit_state()
        );
        match limiter.policy() {
            FailurePolicy::FailOpen => assert!(
                decisions
                    .iter()
                    .all(|d| d.allowed() && d.decided_by() == DecidedBy::FailOpen),
                "{decisions:?}"
            ),
            FailurePolicy::FailClosed => assert!(
                decisions.iter().all(|d| {
                    d.decided_by() == DecidedBy::FailClosed
                        && d.retry_after() == Some(Duration::from_millis(300))
                }),
                "{decisions:?}"
            ),
            _ => {
                // Half of the 10 a day is this instance's share.
                assert!(
                    decisions
                        .iter()
                        .all(|d| d.decided_by() == DecidedBy::Fallback)
                );
                let admitted = decisions.iter().filter(|d| d.allowed()).count();
                assert_eq!(admitted, 5, "{decisions:?}");
                let d = bounded(limiter, &limits, "down", 7).await;
                assert!(
                    matches!(d.outcome(), Outcome::Denied { .. }),
                    "7 fits the quota, not the share: a wait, not never: {d:?}"
                );
                let d = bounded(limiter, &limits, "down", 11).await;
                assert_eq!(d.outcome(), Outcome::Never);
            }
        }
    }

    redis.restart().await;
    for limiter in &limiters {
        let d = until_redis_decides(limiter, &limits, "restarted").await;
        assert!(d.allowed());
        assert_eq!(limiter.circuit_state(), CircuitState::Closed);
    }
}

#[tokio::test]
async fn a_hung_redis_costs_a_deadline_until_the_circuit_opens() {
    let mut redis = ThrowawayRedis::start().await;
    let limiter = limiter(
        redis.manager().await,
        FailurePolicy::FailClosed,
        Duration::from_millis(100),
    );
    let limits = daily(10);
    assert_eq!(
        bounded(&limiter, &limits, "hung", 1).await.decided_by(),
        DecidedBy::Redis
    );

    redis.pause();
    for call in 0..3 {
        let d = bounded(&limiter, &limits, "hung", 1).await;
        assert_eq!(d.decided_by(), DecidedBy::FailClosed, "call {call}");
    }
    assert!(matches!(limiter.circuit_state(), CircuitState::Open { .. }));
    // While the circuit is open nobody waits for Redis: a thousand checks
    // finish although every one of them would otherwise cost 100 ms.
    let started = Instant::now();
    for _ in 0..1000 {
        let d = bounded(&limiter, &limits, "hung", 1).await;
        if !matches!(limiter.circuit_state(), CircuitState::Open { .. }) {
            break; // a slow machine reached the probe time
        }
        assert_eq!(d.decided_by(), DecidedBy::FailClosed);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the open circuit answered without waiting for Redis"
    );

    redis.resume();
    let d = until_redis_decides(&limiter, &limits, "hung").await;
    assert!(d.allowed(), "{d:?}");
}
