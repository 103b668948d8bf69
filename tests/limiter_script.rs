//! The Redis scripts (decide, decide several checks, settle) against the Rust
//! models, on the shared Redis (`REDIS_URL`). The storage contract is in
//! `limiter_storage.rs`; the script deciding several checks, in
//! `limiter_script_all.rs`.

mod common;

use std::time::Duration;

use common::limiter_script::{fixed_clock_script, quota_strategy, verdict_in};
use dynagate::limiter::{Outcome, Quota, Verdict};
use dynagate::test_util::LIMITER_SCRIPT as SCRIPT;
use dynagate::test_util::LIMITER_SETTLE_SCRIPT as SETTLE_SCRIPT;
use dynagate::test_util::gcra;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

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
    (verdict_in(&reply[..5]), u64::try_from(reply[5]).unwrap())
}

/// Random quotas and random interleavings of checks and settles, at random
/// time steps: the scripts on a real Redis and the models give the same
/// replies and store the same TATs. Time steps are per mille of the largest
/// refill time, one in ten backwards (a server clock stepping back).
#[tokio::test]
async fn the_scripts_and_the_models_agree_on_random_sequences() {
    let (_manager, keys) = common::redis().await;
    // The runner takes an `Fn`: the connection and the case number are cells.
    let connection = std::cell::RefCell::new(common::blocking_redis());
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
