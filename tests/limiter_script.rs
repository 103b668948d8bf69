//! The Redis scripts (decide and settle) against the Rust models, and the
//! scripts' storage contract (one integer key, written only on admission or
//! settle, expiring when full), on the shared Redis (`REDIS_URL`) and Cluster
//! (`REDIS_CLUSTER_URLS`).

mod common;

use std::time::Duration;

use dynagate::limiter::{DecidedBy, Limits, Outcome, Quota, RateLimiter, RedisLimiter, Verdict};
use dynagate::test_util::LIMITER_SCRIPT as SCRIPT;
use dynagate::test_util::LIMITER_SETTLE_SCRIPT as SETTLE_SCRIPT;
use dynagate::test_util::gcra;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use redis::AsyncCommands;

/// A production script with the server clock replaced by the last two
/// ARGV (seconds, microseconds), and expiries pushed an hour out so that real
/// time passing during the test never expires a key the injected clock still
/// needs. Everything else is the production text.
fn fixed_clock_script(script: &str) -> redis::Script {
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

/// Both scripts' ARGV: the cost or tokens, then each quota's interval and
/// capacity.
fn args(quotas: &[Quota], tokens: i64) -> Vec<i64> {
    let mut args = vec![tokens];
    for q in quotas {
        args.push(q.interval_micros().try_into().unwrap());
        args.push(q.capacity().try_into().unwrap());
    }
    args
}

/// One step of a sequence: a check of a cost, or a settle of tokens.
#[derive(Debug, Clone, Copy)]
enum Step {
    Check(u64),
    Settle(i64),
}

/// The script's reply in the model's terms: `(verdict, now)`.
fn verdict_of(reply: &[i64]) -> (Verdict, u64) {
    assert_eq!(reply.len(), 6, "{reply:?}");
    let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap());
    let outcome = match reply[0] {
        1 => Outcome::Allowed,
        0 => Outcome::Denied {
            retry_after: us(reply[2]),
        },
        -1 => Outcome::Never,
        other => panic!("outcome {other}"),
    };
    let verdict = Verdict {
        outcome,
        remaining: u64::try_from(reply[1]).unwrap(),
        reset_after: us(reply[3]),
        limit: usize::try_from(reply[4] - 1).unwrap(),
    };
    (verdict, u64::try_from(reply[5]).unwrap())
}

fn quota_strategy() -> impl Strategy<Value = Quota> {
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

/// Random quotas and random interleavings of checks and settles, at random
/// time steps: the scripts on a real Redis and the models give the same
/// replies and store the same TATs. Time steps are per mille of the largest
/// refill time, one in ten backwards (a server clock stepping back).
#[tokio::test]
async fn the_scripts_and_the_models_agree_on_random_sequences() {
    let (_manager, keys) = common::redis().await;
    // The runner takes an `Fn`: the connection and the case number are cells.
    let connection = std::cell::RefCell::new(
        redis::Client::open(common::redis_url())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let case = std::cell::Cell::new(0u32);
    // Allowed, denied, never; then settles that moved a bucket, and did not.
    let seen = std::cell::RefCell::new([0usize; 5]);
    let script = fixed_clock_script(SCRIPT);
    let settle_script = fixed_clock_script(SETTLE_SCRIPT);
    let step = prop_oneof![
        6 => (0u64..4).prop_map(Step::Check),
        1 => (0u64..110).prop_map(Step::Check),
        3 => (-120i64..120).prop_map(Step::Settle),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX)].prop_map(Step::Settle),
    ];
    let strategy = (
        prop::collection::vec(quota_strategy(), 1..=3),
        prop::collection::vec((prop_oneof![9 => 0i64..300, 1 => -400i64..0], step), 1..40),
        0u64..1_000_000_000_000,
    );
    let mut runner = TestRunner::new(Config {
        cases: 100,
        rng_seed: RngSeed::Fixed(0x006c_696d_6974_6572),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(quotas, steps, offset)| {
        case.set(case.get() + 1);
        let case = case.get();
        let mut connection = connection.borrow_mut();
        let bucket_keys: Vec<String> = (0..quotas.len())
            .map(|i| keys.key(&format!("{{case-{case}}}:{i}")))
            .collect();
        let longest = quotas.iter().map(Quota::refill_micros).max().unwrap();
        let mut now: u64 = 1_780_000_000_000_000 + offset;
        let mut tats = vec![None; quotas.len()];
        for (i, (per_mille, step)) in steps.into_iter().enumerate() {
            let delta = (longest as i128 * per_mille as i128 / 1000) as i64;
            now = now.checked_add_signed(delta).unwrap();
            let (script, tokens) = match step {
                Step::Check(cost) => (&script, i64::try_from(cost).unwrap()),
                Step::Settle(tokens) => (&settle_script, tokens),
            };
            let mut invocation = script.prepare_invoke();
            for key in &bucket_keys {
                invocation.key(key);
            }
            invocation
                .arg(args(&quotas, tokens))
                .arg(now / 1_000_000)
                .arg(now % 1_000_000);
            let fail = |e: redis::RedisError| TestCaseError::fail(format!("step {i}: {e}"));
            let before = tats.clone();
            let seen_as = match step {
                Step::Check(cost) => {
                    let reply: Vec<i64> = invocation.invoke(&mut *connection).map_err(fail)?;
                    let (from_script, script_now) = verdict_of(&reply);
                    let from_model = gcra::decide(now, &quotas, &mut tats, cost);
                    prop_assert_eq!(script_now, now);
                    prop_assert_eq!(
                        from_script,
                        from_model,
                        "step {} {:?} {:?}",
                        i,
                        step,
                        quotas
                    );
                    match from_script.outcome {
                        Outcome::Allowed => 0,
                        Outcome::Denied { .. } => 1,
                        Outcome::Never => 2,
                    }
                }
                Step::Settle(tokens) => {
                    let reply: i64 = invocation.invoke(&mut *connection).map_err(fail)?;
                    prop_assert_eq!(u64::try_from(reply).unwrap(), now);
                    gcra::settle(now, &quotas, &mut tats, tokens);
                    if tats == before { 4 } else { 3 }
                }
            };
            seen.borrow_mut()[seen_as] += 1;
            for (key, tat) in bucket_keys.iter().zip(&tats) {
                let stored: Option<u64> =
                    redis::cmd("GET").arg(key).query(&mut *connection).unwrap();
                prop_assert_eq!(
                    stored,
                    *tat,
                    "stored TAT of {} at step {} {:?}",
                    key,
                    i,
                    step
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    println!("allowed, denied, never, settles that moved a bucket, that did not: {seen:?}");
    assert!(
        seen.iter().all(|&n| n > 20),
        "every outcome is exercised: {seen:?}"
    );
    keys.cleanup().await;
}

/// The production script on the server's own clock: the model, fed the time
/// the script reports, gives the same replies.
#[tokio::test]
async fn the_production_script_on_server_time_matches_the_model() {
    let (mut manager, keys) = common::redis().await;
    let script = redis::Script::new(SCRIPT);
    let quotas = [
        Quota::per_period(1, Duration::from_millis(1))
            .burst(20)
            .unwrap(),
        Quota::per_second(400).burst(60).unwrap(),
    ];
    let bucket_keys = [keys.key("{real}:ms"), keys.key("{real}:s")];
    let mut tats = [None, None];
    let mut outcomes = [0usize; 3];
    let mut last_now = 0;
    for i in 0..300u64 {
        let cost = [1, 1, 2, 5, 0, 30, 70][(i % 7) as usize];
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&bucket_keys[..])
            .arg(args(&quotas, cost.try_into().unwrap()));
        let reply: Vec<i64> = invocation.invoke_async(&mut manager).await.unwrap();
        let (from_script, now) = verdict_of(&reply);
        assert!(now >= last_now, "server time went back");
        last_now = now;
        let from_model = gcra::decide(now, &quotas, &mut tats, cost);
        assert_eq!(from_script, from_model, "call {i} cost {cost}");
        outcomes[match from_script.outcome {
            Outcome::Allowed => 0,
            Outcome::Denied { .. } => 1,
            Outcome::Never => 2,
        }] += 1;
    }
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    keys.cleanup().await;
}

fn per_day(capacity: u64) -> Limits {
    Limits::single(
        "test",
        "day",
        Quota::per_day(capacity).burst(capacity).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bucket_is_one_small_integer_key_written_only_on_admission() {
    let (mut manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(10);
    let key = limiter.keys(&limits, "ada").remove(0);
    assert_eq!(key, format!("{}test:{{ada}}:day", keys.prefix()));

    let never = limiter.try_check(&limits, "ada", 11).await.unwrap();
    assert_eq!(never.outcome(), Outcome::Never);
    assert_eq!(never.retry_after(), None);
    assert_eq!(never.remaining(), 10);
    let exists: bool = manager.exists(&key).await.unwrap();
    assert!(!exists, "a never-answer writes nothing");

    let allowed = limiter.try_check(&limits, "ada", 3).await.unwrap();
    assert!(allowed.allowed());
    assert_eq!(allowed.remaining(), 7);
    assert_eq!(allowed.reset_after(), Duration::from_secs(3 * 8640));
    let stored: String = manager.get(&key).await.unwrap();
    assert!(stored.parse::<u64>().is_ok(), "an integer TAT: {stored}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut manager)
        .await
        .unwrap();
    let full_in_ms = 3 * 8_640_000;
    assert!(
        pttl <= full_in_ms && pttl > full_in_ms - 60_000,
        "expires when full again: PTTL {pttl} ms, full in {full_in_ms} ms"
    );
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query_async(&mut manager)
        .await
        .unwrap();
    println!(
        "MEMORY USAGE of a bucket key ({} bytes long): {usage} bytes",
        key.len()
    );
    assert!(usage < 200, "{usage} bytes");

    let denied = limiter.try_check(&limits, "ada", 8).await.unwrap();
    let Outcome::Denied { retry_after } = denied.outcome() else {
        panic!("{denied:?}");
    };
    assert!(
        retry_after <= Duration::from_secs(8640) && retry_after > Duration::from_secs(8580),
        "one token's wait, less the time since the admission: {retry_after:?}"
    );
    let after: String = manager.get(&key).await.unwrap();
    assert_eq!(after, stored, "a denial writes nothing");
    keys.cleanup().await;
}

#[tokio::test]
async fn a_tat_left_by_a_clock_that_stepped_back_is_clamped_to_one_refill() {
    let (mut manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = Limits::single("test", "s", Quota::per_second(1).burst(2).unwrap()).unwrap();
    let key = limiter.keys(&limits, "clock").remove(0);
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut manager).await.unwrap();
    let an_hour_ahead = (seconds + 3600) * 1_000_000 + micros;
    let _: () = manager.set(&key, an_hour_ahead).await.unwrap();
    let d = limiter.try_check(&limits, "clock", 1).await.unwrap();
    let Outcome::Denied { retry_after } = d.outcome() else {
        panic!("{d:?}");
    };
    assert!(
        retry_after <= Duration::from_secs(1),
        "at most one token's wait, not an hour: {retry_after:?}"
    );
    assert!(d.reset_after() <= Duration::from_secs(2));
    let stored: u64 = manager.get(&key).await.unwrap();
    assert!(stored < an_hour_ahead, "the clamp is stored");
    keys.cleanup().await;
}

#[tokio::test]
async fn a_denied_subject_is_answered_locally_until_its_retry_after() {
    let (manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager)
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(2);
    assert!(limiter.check(&limits, "eve", 2).await.allowed());
    let first = limiter.check(&limits, "eve", 1).await;
    assert_eq!(first.decided_by(), DecidedBy::Redis);
    assert!(!first.allowed());
    let again = limiter.check(&limits, "eve", 1).await;
    assert_eq!(again.decided_by(), DecidedBy::DenyCache);
    assert!(!again.allowed());
    let look = limiter.check(&limits, "eve", 0).await;
    assert_eq!(
        look.decided_by(),
        DecidedBy::Redis,
        "a smaller cost asks Redis"
    );
    assert!(look.allowed());
    keys.cleanup().await;
}

/// A reservation, a refund of what was not used, a debit beyond what is
/// left: on the cluster, both buckets of one caller move in one call.
#[tokio::test]
async fn settles_of_several_limits_run_in_one_cluster_slot() {
    let (mut connection, keys) = common::redis_cluster().await;
    let limiter = RedisLimiter::builder(connection.clone())
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = Limits::builder("settle")
        .limit("burst", Quota::per_hour(1).burst(10).unwrap())
        .limit("day", Quota::per_day(20).burst(20).unwrap())
        .build()
        .unwrap();
    assert!(
        limiter
            .try_check(&limits, "bob", 8)
            .await
            .unwrap()
            .allowed()
    );
    limiter.try_settle(&limits, "bob", -5).await.unwrap();
    let d = limiter.try_check(&limits, "bob", 0).await.unwrap();
    assert_eq!(
        (d.remaining(), d.limit()),
        (7, 0),
        "3 used: 7 of 10, 17 of 20"
    );
    limiter.try_settle(&limits, "bob", 12).await.unwrap();
    let d = limiter.try_check(&limits, "bob", 1).await.unwrap();
    assert_eq!(d.limit(), 0, "the burst is empty, not 5 in debt");
    assert!(!d.allowed());
    assert!(
        d.retry_after().unwrap() <= Duration::from_secs(3600),
        "one token's wait: {d:?}"
    );
    // The same day bucket, looked at alone.
    let day = Limits::single("settle", "day", limits.as_slice()[1].quota()).unwrap();
    let d = limiter.try_check(&day, "bob", 0).await.unwrap();
    assert_eq!(
        d.remaining(),
        5,
        "the day limit took the 12 too: 20 - 3 - 12"
    );
    limiter.try_settle(&limits, "bob", i64::MIN).await.unwrap();
    for key in limiter.keys(&limits, "bob") {
        let exists: bool = connection.exists(&key).await.unwrap();
        assert!(!exists, "refunded to full: {key} deleted");
    }
    keys.cleanup().await;
}

#[tokio::test]
async fn a_refund_ends_a_cached_denial() {
    let (manager, keys) = common::redis().await;
    let limiter = RedisLimiter::builder(manager)
        .prefix(keys.prefix())
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let limits = per_day(4);
    assert!(limiter.check(&limits, "kim", 4).await.allowed());
    assert!(!limiter.check(&limits, "kim", 2).await.allowed());
    let cached = limiter.check(&limits, "kim", 2).await;
    assert_eq!(cached.decided_by(), DecidedBy::DenyCache);
    limiter.settle(&limits, "kim", -3).await;
    let d = limiter.check(&limits, "kim", 2).await;
    assert_eq!((d.allowed(), d.decided_by()), (true, DecidedBy::Redis));
    assert_eq!(d.remaining(), 1, "4 reserved, 3 refunded, 2 taken");
    keys.cleanup().await;
}
