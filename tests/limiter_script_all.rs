//! The script deciding several checks at once (`gcra_all.lua`) against its
//! model (`decide_all`), on the shared Redis (`REDIS_URL`).

mod common;

use common::limiter_script::{fixed_clock_script, quota_strategy, verdict_in};
use dynagate::limiter::{Outcome, Quota};
use dynagate::test_util::LIMITER_ALL_SCRIPT as ALL_SCRIPT;
use dynagate::test_util::gcra;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

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
    let connection = std::cell::RefCell::new(common::blocking_redis());
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
