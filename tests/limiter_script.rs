//! The Redis scripts (decide, decide several checks, settle) against the Rust
//! models, on the shared Redis (`REDIS_URL`). The storage contract is in
//! `limiter_storage.rs`.

mod common;

use std::time::Duration;

use dynagate::limiter::{Outcome, Quota, Verdict};
use dynagate::test_util::LIMITER_ALL_SCRIPT as ALL_SCRIPT;
use dynagate::test_util::LIMITER_SCRIPT as SCRIPT;
use dynagate::test_util::LIMITER_SETTLE_SCRIPT as SETTLE_SCRIPT;
use dynagate::test_util::gcra;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

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
    (verdict_in(&reply[..5]), u64::try_from(reply[5]).unwrap())
}

/// `{outcome, remaining, retry_after_us, reset_after_us, limit (1-based)}`.
fn verdict_in(reply: &[i64]) -> Verdict {
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

/// `gcra_all.lua`'s ARGV for `parts` (their TATs are not arguments).
fn all_args(parts: &[gcra::Part]) -> Vec<u64> {
    let mut args = vec![parts.len() as u64];
    for part in parts {
        args.extend([
            part.cost,
            u64::from(part.independent),
            part.quotas.len() as u64,
        ]);
        for q in &part.quotas {
            args.extend([q.interval_micros(), q.capacity()]);
        }
    }
    args
}

/// Random mixes of checks (1 to 4, each with 1 to 3 quotas, a cost of its
/// own, independent or not) at random time steps, some backwards: the script
/// deciding several checks on a real Redis and `decide_all` give the same
/// admission and verdicts and store the same TATs.
#[tokio::test]
async fn the_script_of_several_checks_and_its_model_agree_on_random_mixes() {
    let (_manager, keys) = common::redis().await;
    let connection = std::cell::RefCell::new(
        redis::Client::open(common::redis_url())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let case = std::cell::Cell::new(0u32);
    // Admitted; refused while a dependent check was allowed (all or nothing
    // held its tokens back); an independent check taking in a refused
    // request; a never-answer; a clamp of a backward clock step.
    let seen = std::cell::RefCell::new([0usize; 5]);
    let script = fixed_clock_script(ALL_SCRIPT);
    let cost = prop_oneof![8 => 0u64..4, 1 => 0u64..110];
    let strategy = (
        prop::collection::vec(
            (
                prop::collection::vec(quota_strategy(), 1..=3),
                prop::bool::weighted(0.3),
            ),
            1..=4,
        ),
        prop::collection::vec(
            (
                prop_oneof![9 => 0i64..300, 1 => -400i64..0],
                prop::collection::vec(cost, 4),
            ),
            1..30,
        ),
        0u64..1_000_000_000_000,
    );
    let mut runner = TestRunner::new(Config {
        cases: 100,
        rng_seed: RngSeed::Fixed(0x0061_6c6c_6368_6b73),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(shapes, steps, offset)| {
        case.set(case.get() + 1);
        let case = case.get();
        let mut connection = connection.borrow_mut();
        let mut parts: Vec<gcra::Part> = shapes
            .into_iter()
            .map(|(quotas, independent)| gcra::Part {
                tats: vec![None; quotas.len()],
                quotas,
                cost: 0,
                independent,
            })
            .collect();
        // Each check its own subject, as a request's address, key and route.
        let keys = &keys;
        let bucket_keys: Vec<String> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, part)| {
                (0..part.quotas.len()).map(move |i| keys.key(&format!("{{all-{case}-{p}}}:{i}")))
            })
            .collect();
        let longest = parts
            .iter()
            .flat_map(|p| p.quotas.iter().map(Quota::refill_micros))
            .max()
            .unwrap();
        let mut now: u64 = 1_780_000_000_000_000 + offset;
        for (i, (per_mille, costs)) in steps.into_iter().enumerate() {
            let delta = (longest as i128 * per_mille as i128 / 1000) as i64;
            now = now.checked_add_signed(delta).unwrap();
            for (part, cost) in parts.iter_mut().zip(costs) {
                part.cost = cost;
            }
            let mut invocation = script.prepare_invoke();
            invocation
                .key(&bucket_keys[..])
                .arg(all_args(&parts))
                .arg(now / 1_000_000)
                .arg(now % 1_000_000);
            let reply: Vec<i64> = invocation
                .invoke(&mut *connection)
                .map_err(|e| TestCaseError::fail(format!("step {i}: {e}")))?;
            let before = parts.clone();
            let (verdicts, admitted) = gcra::decide_all(now, &mut parts);
            prop_assert_eq!(reply.len(), 2 + 5 * parts.len(), "{:?}", reply);
            prop_assert_eq!(reply[0] == 1, admitted, "step {} {:?}", i, before);
            prop_assert_eq!(u64::try_from(reply[1]).unwrap(), now);
            for (p, verdict) in verdicts.iter().enumerate() {
                let from_script = verdict_in(&reply[2 + 5 * p..7 + 5 * p]);
                prop_assert_eq!(&from_script, verdict, "step {} check {} {:?}", i, p, before);
            }
            let mut seen = seen.borrow_mut();
            let dependent_allowed = parts
                .iter()
                .zip(&verdicts)
                .any(|(p, v)| !p.independent && v.outcome == Outcome::Allowed);
            if admitted {
                seen[0] += 1;
            } else if dependent_allowed {
                seen[1] += 1;
            }
            let shadow_took = parts
                .iter()
                .zip(&before)
                .any(|(p, b)| p.independent && p.tats != b.tats);
            if !admitted && shadow_took {
                seen[2] += 1;
            }
            if verdicts.iter().any(|v| v.outcome == Outcome::Never) {
                seen[3] += 1;
            }
            if per_mille < 0 && parts.iter().zip(&before).any(|(p, b)| p.tats != b.tats) {
                seen[4] += 1;
            }
            let tats = parts.iter().flat_map(|p| p.tats.iter());
            for (key, tat) in bucket_keys.iter().zip(tats) {
                let stored: Option<u64> =
                    redis::cmd("GET").arg(key).query(&mut *connection).unwrap();
                prop_assert_eq!(stored, *tat, "stored TAT of {} at step {}", key, i);
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    println!(
        "admitted, refused with a dependent check allowed, shadow took in a refused request, \
         never, moved after a backward step: {seen:?}"
    );
    assert!(
        seen.iter().all(|&n| n > 10),
        "every case is exercised: {seen:?}"
    );
    keys.cleanup().await;
}
