//! The capacity gate's script (`capacity.lua`) against its Rust model
//! (`test_util::capacity_model`), on the shared Redis (`REDIS_URL`).

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use dynagate::test_util::CAPACITY_SCRIPT;
use dynagate::test_util::capacity_model::{self as model, Bounds, Cut, Hash, Scope};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

const CLOCK: &str = "redis.call('TIME')";
const EXPIRY: &str = "redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(keep)))";

/// The production script with two changes that make the comparison exact:
///
/// - The server clock becomes the last two ARGV (seconds, µs), as in
///   `tests/limiter_script.rs`. The script never replies with the `now` it
///   read, and reading `TIME` around the call would give the model a window,
///   not an instant; a float model a microsecond off gives other replies.
///   Driven, the clock can also leap a minute or step back without waiting.
/// - `PEXPIRE key ttl` becomes `HSET key ttl <ttl>`: an expiry would run on
///   the real clock, not the driven one. The hash keeps the TTL the script
///   computed, compared with the model's; the test expires keys on the driven
///   clock itself, deleting a key when the model (which mirrors Redis's
///   rule) says its hash is gone.
///
/// Everything else is the production text.
fn driven_clock_script() -> redis::Script {
    assert_eq!(CAPACITY_SCRIPT.matches(CLOCK).count(), 1, "script changed");
    assert_eq!(CAPACITY_SCRIPT.matches(EXPIRY).count(), 1, "script changed");
    let source = CAPACITY_SCRIPT
        .replace(CLOCK, "{ARGV[#ARGV - 1], ARGV[#ARGV]}")
        .replace(
            EXPIRY,
            "redis.call('HSET', key, 'ttl', string.format('%.0f', math.ceil(keep)))",
        );
    redis::Script::new(&source)
}

/// The bounds the gate sends for a table of `capacity` (`bucket.rs`), and
/// their arguments, formatted as the gate formats them.
fn bounds(capacity: f64, floor: f64, increase: f64, burst_us: u64, write: bool) -> Bounds {
    let key_max = if write { 1000.0f64 } else { 3000.0 }.min(capacity);
    Bounds {
        max_rate: capacity,
        min_rate: capacity * floor,
        increase: capacity * increase,
        burst_us: burst_us as f64,
        key_max,
        key_min: 1.0f64.min(key_max),
    }
}

fn args(b: &Bounds) -> Vec<String> {
    [
        b.max_rate, b.min_rate, b.increase, b.burst_us, b.key_max, b.key_min,
    ]
    .iter()
    .map(f64::to_string)
    .collect()
}

fn bounds_strategy() -> impl Strategy<Value = Bounds> {
    let capacity = prop_oneof![Just(100.0), Just(50.0), 0.5f64..40.0, 1.0f64..5000.0];
    let floor = prop_oneof![Just(0.05), 0.01f64..=1.0];
    let increase = prop_oneof![Just(0.05), 0.001f64..1.0];
    let burst = prop_oneof![Just(0u64), Just(1_000_000), 0u64..3_000_000];
    (capacity, floor, increase, burst, any::<bool>())
        .prop_map(|(c, f, i, b, write)| bounds(c, f, i, b, write))
}

/// The epoch a throttle says it saw.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// The one the last `reserve` of that scope replied: the gate's case.
    Last,
    /// Any: a call admitted long ago, or on another instance.
    Given(i64),
}

#[derive(Debug, Clone)]
enum Command {
    Reserve {
        units: f64,
        max_wait_us: u64,
    },
    Adjust {
        delta_milli: i64,
    },
    Throttle {
        seen: Seen,
        decrease: f64,
        key_scope: bool,
    },
    State,
}

fn command_strategy() -> impl Strategy<Value = Command> {
    let units = prop_oneof![
        (0u32..5).prop_map(f64::from),
        (0u32..400).prop_map(|u| f64::from(u) / 7.0)
    ];
    let max_wait = prop_oneof![Just(0u64), Just(1_000_000), 0u64..2_000_000];
    let seen = prop_oneof![3 => Just(Seen::Last), 1 => (-1i64..4).prop_map(Seen::Given)];
    let decrease = prop_oneof![Just(0.7), 0.05f64..0.99];
    prop_oneof![
        5 => (units, max_wait).prop_map(|(units, max_wait_us)| Command::Reserve { units, max_wait_us }),
        2 => (-5_000i64..5_000).prop_map(|delta_milli| Command::Adjust { delta_milli }),
        3 => (seen, decrease, any::<bool>())
            .prop_map(|(seen, decrease, key_scope)| Command::Throttle { seen, decrease, key_scope }),
        1 => Just(Command::State),
    ]
}

/// A step: how far the clock moves (µs; one in eleven steps back, a server
/// clock stepping back), the command, and the hot key it names, if any.
fn step_strategy() -> impl Strategy<Value = (i64, Command, Option<usize>)> {
    let dt = prop_oneof![
        4 => 0i64..2_000,
        3 => 0i64..300_000,
        2 => 0i64..5_000_000,
        1 => 0i64..120_000_000,
        1 => -500_000i64..0,
    ];
    (
        dt,
        command_strategy(),
        prop::option::weighted(0.6, 0usize..2),
    )
}

/// A hash as Redis holds it, in the model's terms (`tat`, the cut fields,
/// the TTL); `None` for no key. A field the script does not write fails.
fn stored(fields: HashMap<String, String>) -> Result<Option<(f64, Option<Cut>, u64)>, String> {
    if fields.is_empty() {
        return Ok(None);
    }
    let field = |name: &str| {
        fields
            .get(name)
            .ok_or_else(|| format!("no {name}: {fields:?}"))
    };
    let number = |name: &str| -> Result<f64, String> {
        field(name)?.parse().map_err(|e| format!("{name}: {e}"))
    };
    let cut = match fields.len() {
        2 => None,
        5 => Some(Cut {
            rate: number("rate")?,
            at: number("at")?,
            epoch: field("epoch")?.parse().map_err(|e| format!("epoch: {e}"))?,
        }),
        _ => return Err(format!("unexpected fields {fields:?}")),
    };
    let ttl = field("ttl")?.parse().map_err(|e| format!("ttl: {e}"))?;
    Ok(Some((number("tat")?, cut, ttl)))
}

fn modelled(hash: &Option<Hash>) -> Option<(f64, Option<Cut>, u64)> {
    hash.map(|h| (h.tat, h.cut, h.ttl_ms))
}

/// How often each branch was reached, so that a strategy that stops
/// reaching one fails the test instead of passing vacuously.
type Reached = BTreeMap<&'static str, usize>;

const BRANCHES: [&str; 8] = [
    "admitted",
    "refused",
    "table cut",
    "key cut",
    "not cut",
    "adjust",
    "state",
    "expired",
];

/// One case's model side: the hashes, and the epochs the last admissions
/// replied (what the gate sends back with a throttle).
struct Modelled {
    b: Bounds,
    table: Option<Hash>,
    hot: [Option<Hash>; 2],
    last_epoch: i64,
    last_key_epoch: [i64; 2],
}

impl Modelled {
    /// Runs `command` (naming hot key `key`) on the model at `now`: the
    /// script's ARGV (without the clock) and the reply the model expects.
    fn run(
        &mut self,
        now: u64,
        command: Command,
        key: Option<usize>,
        reached: &mut Reached,
    ) -> (Vec<String>, Vec<i64>) {
        let (b, table) = (&self.b, &mut self.table);
        let hash = key.map(|k| &mut self.hot[k]);
        let (name, own, reply): (&str, Vec<String>, _) = match command {
            Command::Reserve { units, max_wait_us } => {
                let r = model::reserve(now, b, table, hash, units, max_wait_us as f64);
                if r.admitted {
                    *reached.entry("admitted").or_default() += 1;
                    self.last_epoch = r.epoch;
                    if let Some(k) = key {
                        self.last_key_epoch[k] = r.key_epoch;
                    }
                } else {
                    *reached.entry("refused").or_default() += 1;
                }
                let own = vec![units.to_string(), max_wait_us.to_string()];
                ("reserve", own, r.reply())
            }
            Command::Adjust { delta_milli } => {
                *reached.entry("adjust").or_default() += 1;
                let rate = model::adjust(now, b, table, hash, delta_milli as f64);
                ("adjust", vec![delta_milli.to_string()], vec![rate])
            }
            Command::Throttle {
                seen,
                decrease,
                key_scope,
            } => {
                let (scope, label, last) = match key {
                    Some(k) if key_scope => (Scope::Key, "key", self.last_key_epoch[k]),
                    _ => (Scope::Table, "table", self.last_epoch),
                };
                let seen = match seen {
                    Seen::Given(epoch) => epoch,
                    Seen::Last => last,
                };
                let t = model::throttle(now, b, table, hash, seen, decrease, scope);
                match (t.cut, scope) {
                    (false, _) => *reached.entry("not cut").or_default() += 1,
                    (true, Scope::Table) => *reached.entry("table cut").or_default() += 1,
                    (true, Scope::Key) => *reached.entry("key cut").or_default() += 1,
                }
                let own = vec![seen.to_string(), decrease.to_string(), label.into()];
                ("throttle", own, t.reply())
            }
            Command::State => {
                *reached.entry("state").or_default() += 1;
                ("state", vec![], model::state(now, b, table).reply())
            }
        };
        let mut argv = vec![name.to_owned()];
        argv.extend(args(b));
        argv.extend(own);
        (argv, reply)
    }
}

/// Random bounds and random sequences of commands with random clock steps:
/// the script on a real Redis and the model give the same replies and leave
/// the same hashes (every field, and the TTL).
#[tokio::test]
async fn the_script_and_the_model_agree_on_random_sequences() {
    let (_manager, keys) = common::redis().await;
    // The runner takes an `Fn`: the connection, the case number and the
    // counts are cells.
    let connection = RefCell::new(
        redis::Client::open(common::redis_url())
            .unwrap()
            .get_connection()
            .unwrap(),
    );
    let case = Cell::new(0u32);
    let reached = RefCell::new(Reached::default());
    let script = driven_clock_script();
    let strategy = (
        bounds_strategy(),
        prop::collection::vec(step_strategy(), 1..40),
        0u64..1_000_000_000_000,
    );
    let mut runner = TestRunner::new(Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x6361_7061_6369_7479),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(b, steps, offset)| {
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
