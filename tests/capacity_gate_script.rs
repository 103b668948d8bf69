//! The fleet capacity gate's Lua script run directly on a real Redis: pacing,
//! refusals that reserve nothing, and AIMD cuts once per epoch.

mod common;

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Runs the gate's script directly: `(command, max_rate)` plus its own args.
async fn script(redis: &mut ConnectionManager, keys: &[&str], args: &[&str]) -> Vec<i64> {
    let mut call = redis::cmd("EVAL");
    call.arg(dynagate::test_util::CAPACITY_SCRIPT)
        .arg(keys.len())
        .arg(keys);
    call.arg(args);
    call.query_async(redis).await.expect("script answers")
}

/// max 10/s, floor 1/s, +1/s per second, 1 s burst, key bounds 10 and 1;
/// no shedding (a 1000 s target), a 100 ms interval.
const COMMON: [&str; 8] = ["10", "1", "1", "1000000", "10", "1", "1000000000", "100000"];

fn args<'a>(command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![command];
    all.extend_from_slice(&COMMON);
    all.extend_from_slice(rest);
    all
}

#[tokio::test]
async fn script_paces_refuses_without_writing_and_cuts_once_per_epoch() {
    let (mut redis, keys) = common::redis().await;
    let bucket = keys.key("{t:write}");
    let bucket = bucket.as_str();

    // A 1 s burst at 10/s: ten 1-unit reservations go at once, the 11th waits
    // about 100 ms, and one that would wait over max_wait is refused.
    for i in 0..10 {
        let r = script(&mut redis, &[bucket], &args("reserve", &["1", "0"])).await;
        assert_eq!(r[0], 1, "reservation {i} admitted at once: {r:?}");
        assert_eq!(r[1], 0, "no wait within the burst: {r:?}");
    }
    let r = script(&mut redis, &[bucket], &args("reserve", &["1", "5000000"])).await;
    assert_eq!(r[0], 1);
    assert!(
        r[1] > 0 && r[1] <= 100_000,
        "the 11th waits up to 100 ms: {r:?}"
    );
    let before = script(&mut redis, &[bucket], &args("state", &[])).await;
    let refused = script(&mut redis, &[bucket], &args("reserve", &["5", "1000"])).await;
    assert_eq!(refused[0], 0, "5 more units cannot fit 1 ms: {refused:?}");
    assert!(
        refused[1] > 400_000,
        "it says how long it would wait: {refused:?}"
    );
    let after = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(
        after[2] <= before[2],
        "a refusal reserves nothing: backlog {} -> {}",
        before[2],
        after[2]
    );

    // An idle bucket lets one call through at once, even one larger than
    // the burst.
    let idle = keys.key("{idle:write}");
    let big = script(&mut redis, &[idle.as_str()], &args("reserve", &["50", "0"])).await;
    assert_eq!(&big[..2], &[1, 0], "{big:?}");

    // Three throttles of calls admitted in epoch 0 cut the rate once.
    let cut = script(
        &mut redis,
        &[bucket],
        &args("throttle", &["0", "0.5", "table"]),
    )
    .await;
    assert_eq!(cut, vec![1, 5000]);
    for _ in 0..2 {
        let again = script(
            &mut redis,
            &[bucket],
            &args("throttle", &["0", "0.5", "table"]),
        )
        .await;
        assert_eq!(again[0], 0, "same epoch, no second cut: {again:?}");
    }
    let state = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert_eq!(state[1], 1, "one cut");
    assert!(
        (5000..6000).contains(&state[0]),
        "rate 5/s, climbing: {state:?}"
    );
    // A call admitted after the cut, throttled, cuts again; never below the floor.
    for epoch in 1..10 {
        let e = epoch.to_string();
        script(
            &mut redis,
            &[bucket],
            &args("throttle", &[&e, "0.5", "table"]),
        )
        .await;
    }
    let state = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(
        (1000..1500).contains(&state[0]),
        "floored at 1/s: {state:?}"
    );
    // It climbs back by 1/s per second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let climbed = script(&mut redis, &[bucket], &args("state", &[])).await;
    assert!(climbed[0] > state[0], "{climbed:?} after {state:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(bucket)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(ttl > 0, "the bucket expires once full and recovered: {ttl}");
    keys.cleanup().await;
}
