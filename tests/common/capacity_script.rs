//! The capacity script driven on a test clock, and the model it is checked
//! against: what `tests/capacity_model.rs` runs.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use dynagate::test_util::CAPACITY_SCRIPT;
use dynagate::test_util::capacity_model::{self as model, Bounds, Cut, Hash, Scope, Spell};
use proptest::prelude::*;

pub const CLOCK: &str = "redis.call('TIME')";
pub const EXPIRY: &str = "redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(keep)))";

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
pub fn driven_clock_script() -> redis::Script {
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

/// The bounds the gate sends for a table of `capacity` (`bucket.rs`), with
/// the gate's default queue (10 ms target, 100 ms interval), and their
/// arguments, formatted as the gate formats them.
pub fn bounds(capacity: f64, floor: f64, increase: f64, burst_us: u64, write: bool) -> Bounds {
    let key_max = if write { 1000.0f64 } else { 3000.0 }.min(capacity);
    Bounds {
        max_rate: capacity,
        min_rate: capacity * floor,
        increase: capacity * increase,
        burst_us: burst_us as f64,
        key_max,
        key_min: 1.0f64.min(key_max),
        target_us: 10_000.0,
        interval_us: 100_000.0,
    }
}

pub fn args(b: &Bounds) -> Vec<String> {
    [
        b.max_rate,
        b.min_rate,
        b.increase,
        b.burst_us,
        b.key_max,
        b.key_min,
        b.target_us,
        b.interval_us,
    ]
    .iter()
    .map(f64::to_string)
    .collect()
}

pub fn bounds_strategy() -> impl Strategy<Value = Bounds> {
    let capacity = prop_oneof![Just(100.0), Just(50.0), 0.5f64..40.0, 1.0f64..5000.0];
    let floor = prop_oneof![Just(0.05), 0.01f64..=1.0];
    let increase = prop_oneof![Just(0.05), 0.001f64..1.0];
    let burst = prop_oneof![Just(0u64), Just(1_000_000), 0u64..3_000_000];
    // Whole µs, as the gate sends them (`as_micros`).
    let target = prop_oneof![
        2 => Just(10_000u64),
        1 => Just(0),
        2 => 0u64..50_000,
        1 => 0u64..2_000_000
    ];
    let interval = prop_oneof![
        2 => Just(100_000u64),
        1 => Just(0),
        3 => 0u64..300_000,
        1 => 0u64..3_000_000
    ];
    (
        capacity,
        floor,
        increase,
        burst,
        any::<bool>(),
        target,
        interval,
    )
        .prop_map(|(c, f, i, b, write, target, interval)| Bounds {
            target_us: target as f64,
            interval_us: interval as f64,
            ..bounds(c, f, i, b, write)
        })
}

/// The epoch a throttle says it saw.
#[derive(Debug, Clone, Copy)]
pub enum Seen {
    /// The one the last `reserve` of that scope replied: the gate's case.
    Last,
    /// Any: a call admitted long ago, or on another instance.
    Given(i64),
}

#[derive(Debug, Clone)]
pub enum Command {
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

pub fn command_strategy() -> impl Strategy<Value = Command> {
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
pub fn step_strategy() -> impl Strategy<Value = (i64, Command, Option<usize>)> {
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

/// A case: bounds and steps. One case in four is an overload: a run of
/// one-unit reservations at about twice the rate (the burst cut to a few
/// units so that the queue builds), then random steps; one in four a mixed
/// overload, the same with one reservation in four a large one (it alone
/// takes longer than the target); the others are random throughout. Random steps alone seldom keep a queue standing long
/// enough to admit within the target while it stands.
pub fn case_strategy() -> impl Strategy<Value = (Bounds, Vec<(i64, Command, Option<usize>)>)> {
    bounds_strategy().prop_flat_map(|b| {
        let random = prop::collection::vec(step_strategy(), 1..40);
        let cost = 1_000_000.0 / b.max_rate;
        let every = (cost * 0.3) as i64..=(cost * 0.7) as i64 + 1;
        let max_wait = prop_oneof![Just(1_000_000u64), 0u64..2_000_000];
        // Its cost is above the target at the full rate.
        let large = (b.target_us / cost).floor() + 2.0;
        let overload_of = |units: BoxedStrategy<f64>| {
            let reserve = (
                every.clone(),
                max_wait.clone(),
                prop::option::weighted(0.3, 0usize..2),
                units,
            )
                .prop_map(|(dt, max_wait_us, key, units)| {
                    (dt, Command::Reserve { units, max_wait_us }, key)
                });
            (
                prop::collection::vec(reserve, 20..120),
                prop::collection::vec(step_strategy(), 0..20),
            )
                .prop_map(|(mut run, rest)| {
                    run.extend(rest);
                    run
                })
        };
        let overload = overload_of(Just(1.0).boxed());
        let mixed = overload_of(prop_oneof![3 => Just(1.0), 1 => Just(large)].boxed());
        let small_burst = Bounds {
            burst_us: b.burst_us.min((3.0 * cost).floor()),
            ..b
        };
        prop_oneof![
            2 => (Just(b), random),
            1 => (Just(small_burst), overload),
            1 => (Just(small_burst), mixed),
        ]
    })
}

/// A hash as Redis holds it, in the model's terms.
pub type Stored = (
    f64,
    Option<Cut>,
    Option<Spell>,
    Option<f64>,
    Option<f64>,
    u64,
);

/// A hash as Redis holds it, in the model's terms (`tat`, the cut fields,
/// the spell, the TTL); `None` for no key. A field the script does not
/// write, or a group of fields written in part, fails.
pub fn stored(fields: HashMap<String, String>) -> Result<Option<Stored>, String> {
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
    let has = |names: &[&str]| names.iter().filter(|n| fields.contains_key(**n)).count();
    let cut = match has(&["rate", "at", "epoch"]) {
        0 => None,
        3 => Some(Cut {
            rate: number("rate")?,
            at: number("at")?,
            epoch: field("epoch")?.parse().map_err(|e| format!("epoch: {e}"))?,
        }),
        _ => return Err(format!("part of a cut: {fields:?}")),
    };
    let spell = match has(&["above", "last"]) {
        0 => None,
        2 => Some(Spell {
            above: number("above")?,
            last: number("last")?,
        }),
        _ => return Err(format!("part of a spell: {fields:?}")),
    };
    let optional = |name: &str| -> Result<Option<f64>, String> {
        fields
            .get(name)
            .map(|v| v.parse().map_err(|e| format!("{name}: {e}")))
            .transpose()
    };
    let (large, small) = (optional("large")?, optional("small")?);
    let expected = 2
        + 3 * usize::from(cut.is_some())
        + 2 * usize::from(spell.is_some())
        + usize::from(large.is_some())
        + usize::from(small.is_some());
    if fields.len() != expected {
        return Err(format!("unexpected fields {fields:?}"));
    }
    let ttl = field("ttl")?.parse().map_err(|e| format!("ttl: {e}"))?;
    Ok(Some((number("tat")?, cut, spell, large, small, ttl)))
}

pub fn modelled(hash: &Option<Hash>) -> Option<Stored> {
    hash.map(|h| (h.tat, h.cut, h.spell, h.large, h.small, h.ttl_ms))
}

/// How often each branch was reached, so that a strategy that stops
/// reaching one fails the test instead of passing vacuously.
pub type Reached = BTreeMap<&'static str, usize>;

pub const BRANCHES: [&str; 14] = [
    "admitted",
    "refused",
    "shed",
    "admitted standing",
    "small admitted behind large",
    "large refused before standing",
    "spell started",
    "spell ended",
    "table cut",
    "key cut",
    "not cut",
    "adjust",
    "state",
    "expired",
];

/// One case's model side: the hashes, and the epochs the last admissions
/// replied (what the gate sends back with a throttle).
pub struct Modelled {
    pub b: Bounds,
    pub table: Option<Hash>,
    pub hot: [Option<Hash>; 2],
    pub last_epoch: i64,
    pub last_key_epoch: [i64; 2],
}

impl Modelled {
    /// Runs `command` (naming hot key `key`) on the model at `now`: the
    /// script's ARGV (without the clock) and the reply the model expects.
    pub fn run(
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
                let before = table.and_then(|h| h.spell);
                let r = model::reserve(now, b, table, hash, units, max_wait_us as f64);
                let after = table.and_then(|h| h.spell);
                match (before, after) {
                    (Some(_), None) => *reached.entry("spell ended").or_default() += 1,
                    (was, Some(a)) if was.is_none_or(|w| w.above != a.above) => {
                        *reached.entry("spell started").or_default() += 1
                    }
                    _ => {}
                }
                if r.standing && r.admitted {
                    *reached.entry("admitted standing").or_default() += 1;
                }
                // Before large calls had a rule of their own, a call admitted
                // in a standing queue waited within the target, and one
                // refused before it stood waited longer than max_wait.
                if r.standing && r.admitted && r.wait_us as f64 > b.target_us {
                    *reached.entry("small admitted behind large").or_default() += 1;
                }
                if !r.standing && !r.admitted && r.wait_us as f64 <= max_wait_us as f64 {
                    *reached.entry("large refused before standing").or_default() += 1;
                }
                if r.standing && !r.admitted && r.wait_us as f64 <= max_wait_us as f64 {
                    *reached.entry("shed").or_default() += 1;
                }
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
