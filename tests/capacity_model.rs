//! The capacity gate's script (`capacity.lua`) against its Rust model
//! (`test_util::capacity_model`), on the shared Redis (`REDIS_URL`).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use dynagate::test_util::CAPACITY_SCRIPT;
use dynagate::test_util::capacity_model::{self as model, Scope};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use common::capacity_script::*;

/// Random bounds and random sequences of commands with random clock steps:
/// the script on a real Redis and the model give the same replies and leave
/// the same hashes (every field, and the TTL).
#[tokio::test]
async fn the_script_and_the_model_agree_on_random_sequences() {
    let (_manager, keys) = common::redis().await;
    // The runner takes an `Fn`: the connection, the case number and the
    // counts are cells.
    let connection = RefCell::new(common::blocking_redis());
    let case = Cell::new(0u32);
    let reached = RefCell::new(Reached::default());
    let script = driven_clock_script();
    let strategy = (case_strategy(), 0u64..1_000_000_000_000);
    let mut runner = TestRunner::new(Config {
        cases: 128,
        rng_seed: RngSeed::Fixed(0x6361_7061_6369_7479),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |((b, steps), offset)| {
        case.set(case.get() + 1);
        let mut connection = connection.borrow_mut();
        let reached = &mut *reached.borrow_mut();
        let table_key = keys.key(&format!("{{case-{}}}:t", case.get()));
        let names = [
            table_key.clone(),
            format!("{table_key}:key:a"),
            format!("{table_key}:key:b"),
        ];
        let mut m = Modelled {
            b,
            table: None,
            hot: [None, None],
            last_epoch: 0,
            last_key_epoch: [-1; 2],
        };
        let mut now: u64 = 1_780_000_000_000_000 + offset;
        for (step, (dt, command, key)) in steps.into_iter().enumerate() {
            now = now.checked_add_signed(dt).unwrap();
            // Redis's expiry, on the driven clock.
            let [a, b] = &mut m.hot;
            for (name, hash) in names.iter().zip([&mut m.table, a, b]) {
                if model::expire(hash, now) {
                    *reached.entry("expired").or_default() += 1;
                    let _: () = redis::cmd("DEL").arg(name).query(&mut *connection).unwrap();
                }
            }
            let (argv, expected) = m.run(now, command, key, reached);
            let mut invocation = script.prepare_invoke();
            invocation.key(&names[0]);
            if let Some(k) = key {
                invocation.key(&names[1 + k]);
            }
            invocation
                .arg(&argv)
                .arg(now / 1_000_000)
                .arg(now % 1_000_000);
            let reply: Vec<i64> = invocation
                .invoke(&mut *connection)
                .map_err(|e| TestCaseError::fail(format!("script: {e}")))?;
            prop_assert_eq!(&reply, &expected, "step {}: {:?} on {:?}", step, argv, key);
            for (name, hash) in names.iter().zip([&m.table, &m.hot[0], &m.hot[1]]) {
                let fields: HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(name)
                    .query(&mut *connection)
                    .unwrap();
                let in_redis = stored(fields).map_err(TestCaseError::fail)?;
                prop_assert_eq!(
                    in_redis,
                    modelled(hash),
                    "{} after step {}: {:?} on {:?}",
                    name,
                    step,
                    argv,
                    key
                );
            }
        }
        Ok(())
    });
    keys.cleanup().await;
    if let Err(e) = result {
        panic!("{e}");
    }
    let reached = reached.into_inner();
    println!("{reached:?}");
    for branch in BRANCHES {
        let n = reached.get(branch).copied().unwrap_or(0);
        assert!(n >= 10, "{branch} reached {n} times: {reached:?}");
    }
}

/// The production text, on the server's clock: a cut stores the `now` it
/// used (`at`), so the model, fed that instant, must give the same reply and
/// fields, and the key's real expiry must be the TTL the model computes
/// (less the milliseconds since the call).
#[tokio::test]
async fn the_production_script_cuts_and_expires_as_the_model_says() {
    let (mut manager, keys) = common::redis().await;
    let script = redis::Script::new(CAPACITY_SCRIPT);
    let b = bounds(100.0, 0.05, 0.05, 1_000_000, true);
    let table_key = keys.key("{prod}:t");
    let hot_key = format!("{table_key}:key:a");
    let (mut table, mut hot) = (None, None);
    for (name, scope) in [(&table_key, "table"), (&hot_key, "key")] {
        let mut argv = vec!["throttle".to_owned()];
        argv.extend(args(&b));
        argv.extend(["0".into(), "0.7".into(), scope.into()]);
        let reply: Vec<i64> = script
            .key(&table_key)
            .key(&hot_key)
            .arg(argv)
            .invoke_async(&mut manager)
            .await
            .unwrap();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(name)
            .query_async(&mut manager)
            .await
            .unwrap();
        let pttl: u64 = redis::cmd("PTTL")
            .arg(name)
            .query_async(&mut manager)
            .await
            .unwrap();
        let now: u64 = fields["at"].parse().unwrap();
        let scope = if scope == "key" {
            Scope::Key
        } else {
            Scope::Table
        };
        let expected = model::throttle(now, &b, &mut table, Some(&mut hot), 0, 0.7, scope);
        assert_eq!(reply, expected.reply(), "{scope:?}");
        let hash = if scope == Scope::Key { hot } else { table }.unwrap();
        let cut = hash.cut.unwrap();
        assert_eq!(fields["tat"].parse::<f64>().unwrap(), hash.tat);
        assert_eq!(fields["rate"].parse::<f64>().unwrap(), cut.rate);
        assert_eq!(fields["epoch"], cut.epoch.to_string());
        assert!(
            pttl <= hash.ttl_ms && pttl + 1_000 > hash.ttl_ms,
            "{scope:?}: PTTL {pttl} ms, the model's TTL {} ms",
            hash.ttl_ms
        );
    }
    keys.cleanup().await;
}
