//! The scripts' identity, the strict parsing of replies, and settles that
//! Redis cannot apply.

use super::*;
use crate::limiter::{Outcome, Quota};

#[test]
fn the_script_hash_is_the_sha1_of_its_text() {
    assert_eq!(RedisLimiter::script_sha1().len(), 40);
    assert!(
        SCRIPT_SOURCE.contains("redis.call('TIME')"),
        "server time, never ours"
    );
    assert_eq!(RedisLimiter::settle_script_sha1().len(), 40);
    assert_ne!(
        RedisLimiter::settle_script_sha1(),
        RedisLimiter::script_sha1()
    );
    assert!(settle::SETTLE_SOURCE.contains("redis.call('TIME')"));
}

#[test]
fn replies_are_parsed_strictly() {
    let v = parse_reply(&[0, 2, 1500, 9000, 2, 0], 2).unwrap();
    assert_eq!(
        v.outcome,
        Outcome::Denied {
            retry_after: Duration::from_micros(1500)
        }
    );
    assert_eq!((v.remaining, v.limit), (2, 1));
    assert_eq!(
        parse_reply(&[-1, 0, 0, 0, 1, 0], 1).unwrap().outcome,
        Outcome::Never
    );
    for bad in [
        &[1, 0, 0, 0, 3, 0][..],
        &[1, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 1, 0],
        &[1, 0],
    ] {
        assert!(parse_reply(bad, 2).is_none(), "{bad:?}");
    }
}

/// A limiter on a port nothing listens on: every call is refused (or, if
/// the connection's own retries outlast it, cut by the deadline).
fn unreachable(policy: FailurePolicy, deadline: Duration) -> RedisLimiter {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // the listener is dropped here: the port is closed
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1);
    let manager = redis::aio::ConnectionManager::new_lazy_with_config(client, config).unwrap();
    RedisLimiter::builder(manager)
        .deadline(deadline)
        .on_failure(policy)
        .breaker(BreakerSettings::new(2, Duration::from_secs(60)).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_settle_redis_cannot_apply_is_skipped_within_the_deadline_and_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The recorder is this thread's; the test's runtime runs on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let deadline = Duration::from_millis(300);
    let limiter = unreachable(FailurePolicy::FailClosed, deadline);
    let limits = Limits::single("settle", "day", Quota::per_day(5).burst(5).unwrap()).unwrap();
    // A loaded machine may be late to wake the timer, never a second late.
    let bound = deadline + Duration::from_secs(1);
    for tokens in [-3, 4, -1, 2] {
        let started = tokio::time::Instant::now();
        tokio::time::timeout(bound, limiter.settle(&limits, "ada", tokens))
            .await
            .expect("a settle waits for Redis at most its deadline");
        assert!(started.elapsed() < bound);
    }
    limiter.settle(&limits, "ada", 0).await;
    assert!(
        matches!(limiter.circuit_state(), CircuitState::Open { .. }),
        "two failures opened the breaker; the last settles skipped Redis"
    );
    let rendered = handle.render();
    assert!(
        rendered.contains("dynagate_limiter_settle_failures_total{namespace=\"settle\"} 4"),
        "four skipped, none for 0 tokens: {rendered}"
    );
}

#[tokio::test]
async fn under_the_fallback_policy_a_settle_moves_the_fallback_buckets() {
    let limiter = unreachable(
        FailurePolicy::fallback(1).unwrap(),
        Duration::from_millis(300),
    );
    let limits = Limits::single("settle", "day", Quota::per_day(5).burst(5).unwrap()).unwrap();
    let reserved = limiter.check(&limits, "ada", 5).await;
    assert_eq!(
        (reserved.allowed(), reserved.decided_by()),
        (true, DecidedBy::Fallback)
    );
    assert!(!limiter.check(&limits, "ada", 1).await.allowed(), "spent");
    limiter.settle(&limits, "ada", -2).await;
    let d = limiter.check(&limits, "ada", 0).await;
    assert_eq!(
        (d.remaining(), d.decided_by()),
        (2, DecidedBy::Fallback),
        "the refund reached the buckets that decide"
    );
    limiter.settle(&limits, "ada", 1).await;
    assert_eq!(
        limiter.check(&limits, "ada", 0).await.remaining(),
        1,
        "the debit did too"
    );
}

#[test]
fn replies_of_several_checks_are_parsed_strictly() {
    let one = Limits::single("a", "s", Quota::per_second(1).burst(1).unwrap()).unwrap();
    let two = Limits::builder("b")
        .limit("s", Quota::per_second(1).burst(1).unwrap())
        .limit("d", Quota::per_day(1).burst(1).unwrap())
        .build()
        .unwrap();
    let checks = [
        Check::new(&one, "x", 1),
        Check::new(&two, "y", 1).independent(),
    ];
    let reply = [1, 7, 1, 0, 0, 5, 1, 0, 3, 2, 9, 2];
    let verdicts = call::parse_all_reply(&reply, &checks).unwrap();
    assert_eq!(verdicts[0].outcome, Outcome::Allowed);
    assert_eq!(
        (verdicts[1].outcome, verdicts[1].limit),
        (
            Outcome::Denied {
                retry_after: Duration::from_micros(2)
            },
            1
        ),
        "a denied shadow check leaves the request admitted"
    );
    let mut refused = reply;
    refused[0] = 0;
    assert!(
        call::parse_all_reply(&refused, &checks).is_none(),
        "an admission the verdicts do not imply"
    );
    assert!(
        call::parse_all_reply(&reply[..7], &checks).is_none(),
        "short"
    );
    let mut bad_limit = reply;
    bad_limit[6] = 2;
    assert!(
        call::parse_all_reply(&bad_limit, &checks).is_none(),
        "limit 2 of 1"
    );
}

#[tokio::test]
async fn check_all_under_a_dead_redis_gets_each_policys_answer_within_the_deadline() {
    let deadline = Duration::from_millis(300);
    let wide = Limits::single("wide", "day", Quota::per_day(2).burst(2).unwrap()).unwrap();
    let narrow = Limits::single("narrow", "day", Quota::per_day(1).burst(1).unwrap()).unwrap();
    let checks = [Check::new(&wide, "ada", 1), Check::new(&narrow, "ada", 1)];
    let bound = deadline + Duration::from_secs(1);

    let open = unreachable(FailurePolicy::FailOpen, deadline);
    let d = tokio::time::timeout(bound, open.check_all(&checks))
        .await
        .unwrap();
    assert!(d.admitted);
    assert!(d.each.iter().all(|d| d.decided_by() == DecidedBy::FailOpen));

    let closed = unreachable(FailurePolicy::FailClosed, deadline);
    let d = tokio::time::timeout(bound, closed.check_all(&checks))
        .await
        .unwrap();
    assert!(!d.admitted);
    assert!(
        d.each
            .iter()
            .all(|d| d.decided_by() == DecidedBy::FailClosed)
    );

    let fallback = unreachable(FailurePolicy::fallback(1).unwrap(), deadline);
    let d = tokio::time::timeout(bound, fallback.check_all(&checks))
        .await
        .unwrap();
    assert!(d.admitted, "{d:?}");
    assert!(d.each.iter().all(|d| d.decided_by() == DecidedBy::Fallback));
    let d = fallback.check_all(&checks).await;
    assert!(!d.admitted, "the narrow bucket is spent");
    assert!(d.each[0].allowed(), "the wide one held its token");
    let look = fallback.check(&wide, "ada", 0).await;
    assert_eq!(
        (look.remaining(), look.decided_by()),
        (1, DecidedBy::Fallback),
        "all or nothing in the fallback: the refused request took nothing"
    );
}
