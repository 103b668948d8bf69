//! The abuse arena's load generator: a legitimate population and seven
//! attacks at once against the instances of a users API, bounded in time,
//! writing one JSON summary per run. `benches/arena/arena.sh` starts the
//! services and the fault proxy, runs this once per side and writes the
//! result files.
//!
//! Phases: the population creates a few users of its own (not counted);
//! then invalid keys alone, to count the key lookups they cause; then
//! everything at once, measured.

mod attacks;
mod client;
mod config;
mod legit;
mod outcome;
mod pacing;
mod probe;
mod slowloris;
mod tally;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::attacks::Attack;
use crate::client::Targets;
use crate::config::Settings;
use crate::legit::{Mix, Profile, User};
use crate::probe::{CLK_TCK, ProxyStats, TableCounters, Timeline, tree_ticks};
use crate::slowloris::SlowTally;
use crate::tally::{AttackTally, LegitTally, server_errors};

/// Users each legitimate key creates before the measured phases.
const SEEDED_USERS: usize = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", config::usage());
        return ExitCode::SUCCESS;
    }
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("arena: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn read_keys(settings: &Settings, flag: &str) -> Result<Vec<String>, String> {
    let path = settings.required(flag)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("--{flag} {path}: {e}"))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(format!("--{flag} {path}: no key in it (one a line)"));
    }
    Ok(keys)
}

fn log(message: &str) {
    eprintln!("[arena] {message}");
}

async fn run(args: &[String]) -> Result<(), String> {
    let settings = Settings::parse(args, |name| std::env::var(name).ok())?;
    let side = settings.text("side").to_owned();
    let bases = settings.list("targets");
    if bases.is_empty() {
        return Err("--targets is required: the base URLs of the instances".into());
    }
    let legit_keys = read_keys(&settings, "keys-file")?;
    let attack_keys = read_keys(&settings, "attack-keys-file")?;
    let stolen = read_keys(&settings, "stolen-key-file")?.remove(0);
    let stats = ProxyStats::new(settings.required("proxy")?);
    let users_table = settings.required("users-table")?.to_owned();
    let keys_table = settings.required("keys-table")?.to_owned();
    let out = settings.required("out")?.to_owned();
    let pids: Vec<u32> = settings
        .list("service-pids")
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|_| format!("--service-pids: `{p}` is not a pid"))
        })
        .collect::<Result<_, _>>()?;
    let run_id = settings.text("run-id").to_owned();
    let profile = Arc::new(Profile {
        rate: settings.number("legit-rate")?,
        mix: Mix::parse(settings.text("mix"))?,
        missing_share: settings.number("missing-share")?,
        run_id: run_id.clone(),
    });
    let seconds = settings.seconds("seconds")?;
    let invalid_seconds = settings.seconds("invalid-only-seconds")?;
    let targets = Arc::new(Targets::new(bases));
    stats.fetch().await?;

    let population = legit_keys.len();
    log(&format!(
        "{side}: {population} keys create {SEEDED_USERS} users each"
    ));
    let mut seeding = Vec::new();
    for (index, key) in legit_keys.into_iter().enumerate() {
        let (targets, profile) = (Arc::clone(&targets), Arc::clone(&profile));
        seeding.push(tokio::spawn(async move {
            let mut user = User::new(index, key);
            user.seed(&targets, &profile, SEEDED_USERS).await;
            user
        }));
    }
    let mut users = Vec::new();
    for task in seeding {
        users.push(task.await.map_err(|e| format!("seeding: {e}"))?);
    }

    // Invalid keys alone: every key-table read in this window is theirs.
    let invalid_rate = settings.number("rate-invalid-keys")?;
    let invalid_addresses = settings.count("invalid-key-addresses")?;
    log(&format!(
        "{side}: invalid keys alone for {} s",
        invalid_seconds.as_secs_f64()
    ));
    let before = TableCounters::from_stats(&stats.fetch().await?, &keys_table);
    let invalid_alone = Arc::new(Mutex::new(AttackTally::default()));
    Attack::invalid_keys(invalid_rate, invalid_addresses, &run_id)
        .run(
            Arc::clone(&targets),
            Arc::clone(&invalid_alone),
            Instant::now(),
            Duration::ZERO,
            invalid_seconds,
        )
        .await;
    let lookups = TableCounters::from_stats(&stats.fetch().await?, &keys_table).since(&before);
    let invalid_sent = lookup(&invalid_alone).sent();
    let invalid_phase = json!({
        "seconds": invalid_seconds.as_secs_f64(),
        "requests": invalid_sent,
        "key_lookups": lookups.get_items,
        "lookups_per_100_requests": (invalid_sent > 0)
            .then(|| lookups.get_items as f64 * 100.0 / invalid_sent as f64),
        "answers": lookup(&invalid_alone).to_json(),
    });

    log(&format!(
        "{side}: everything at once for {} s",
        seconds.as_secs_f64()
    ));
    let first = stats.fetch().await?;
    let me = std::process::id();
    let (service0, me0) = (
        pids.iter().map(|p| tree_ticks(*p)).sum::<u64>(),
        tree_ticks(me),
    );
    let start = Instant::now();
    let legit = Arc::new(Mutex::new(LegitTally::default()));
    let mut tasks = Vec::new();
    for user in users {
        let (t, p, l) = (
            Arc::clone(&targets),
            Arc::clone(&profile),
            Arc::clone(&legit),
        );
        tasks.push(tokio::spawn(user.run(t, p, l, start, seconds)));
    }
    let third = attack_keys.len().div_ceil(3);
    let keys_for = |i: usize| {
        attack_keys
            .chunks(third)
            .nth(i)
            .unwrap_or(&attack_keys)
            .to_vec()
    };
    let attacks = vec![
        Attack::invalid_keys(invalid_rate, invalid_addresses, &run_id),
        Attack::stolen_key(
            settings.number("rate-stolen-key")?,
            stolen,
            settings.count("stolen-key-addresses")?,
            &run_id,
        ),
        Attack::anonymous(
            settings.number("rate-anonymous")?,
            settings.count("anonymous-addresses")?,
            &run_id,
        ),
        Attack::list_flood(settings.number("rate-list-flood")?, keys_for(0)),
        Attack::create_flood(settings.number("rate-create-flood")?, keys_for(1), &run_id),
        Attack::replay_storm(settings.number("rate-replay-storm")?, keys_for(2), &run_id),
    ];
    let mut attack_tallies = BTreeMap::new();
    for attack in attacks {
        let tally = Arc::new(Mutex::new(AttackTally::default()));
        attack_tallies.insert(attack.name, Arc::clone(&tally));
        tasks.push(tokio::spawn(attack.run(
            Arc::clone(&targets),
            tally,
            start,
            Duration::ZERO,
            seconds,
        )));
    }
    let slow = Arc::new(SlowTally::default());
    for index in 0..settings.count("slowloris")? {
        let base = &targets.bases()[index % targets.bases().len()];
        let address = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        tasks.push(tokio::spawn(slowloris::run(
            index,
            address,
            Arc::clone(&slow),
            start + seconds,
        )));
    }
    let timeline = sample(&stats, &users_table, start, seconds).await?;
    for task in tasks {
        task.await.map_err(|e| format!("a load task failed: {e}"))?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (service1, me1) = (
        pids.iter().map(|p| tree_ticks(*p)).sum::<u64>(),
        tree_ticks(me),
    );
    let last = stats.fetch().await?;
    let legit = lookup(&legit);
    let users_delta = TableCounters::from_stats(&last, &users_table)
        .since(&TableCounters::from_stats(&first, &users_table));
    let keys_delta = TableCounters::from_stats(&last, &keys_table)
        .since(&TableCounters::from_stats(&first, &keys_table));
    let attacks_json: BTreeMap<&str, Value> = attack_tallies
        .iter()
        .map(|(name, t)| (*name, lookup(t).to_json()))
        .collect();
    let legit_json = legit.to_json();
    let legit_5xx = legit_json["by_status"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .map_or(0, |m: BTreeMap<String, u64>| server_errors(&m));
    let attack_sent: u64 = attack_tallies.values().map(|t| lookup(t).sent()).sum();
    let attack_5xx: u64 = attack_tallies
        .values()
        .map(|t| lookup(t).server_errors())
        .sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let service_seconds = (service1 - service0) as f64 / CLK_TCK;
    let me_seconds = (me1 - me0) as f64 / CLK_TCK;
    let summary = json!({
        "side": side,
        "instances": targets.bases().len(),
        "seconds": elapsed,
        "legit": legit_json,
        // What the population would have sent had every answer been instant:
        // a key sends its next request only after the answer to the last.
        "legit_scheduled": population as f64 * profile.rate * seconds.as_secs_f64(),
        "phase_seconds": seconds.as_secs_f64(),
        "attacks": attacks_json,
        "slowloris": slow.to_json(),
        "server_errors": {"legit": legit_5xx, "attacks": attack_5xx, "total": legit_5xx + attack_5xx},
        "users_table": {"read_units": users_delta.read_units, "write_units": users_delta.write_units,
                        "throttled": users_delta.throttled,
                        "timeline": timeline},
        "keys_table": {"read_units": keys_delta.read_units, "throttled": keys_delta.throttled,
                       "lookups": keys_delta.get_items},
        "invalid_phase": invalid_phase,
        "cpu": {
            "service_seconds": service_seconds,
            "service_us_per_legit_request": (legit.requests() > 0)
                .then(|| service_seconds * 1e6 / legit.requests() as f64),
            "service_us_per_request": (legit.requests() + attack_sent > 0)
                .then(|| service_seconds * 1e6 / (legit.requests() + attack_sent) as f64),
            "generator_seconds": me_seconds,
            "generator_share_of_machine": me_seconds / (elapsed * cores),
            "cores": cores,
        },
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&out, text).map_err(|e| format!("--out {out}: {e}"))?;
    log(&format!(
        "{side}: legitimate {}/{} succeeded; summary in {out}",
        legit.successes(),
        legit.requests()
    ));
    Ok(())
}

fn lookup<T>(tally: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    tally.lock().unwrap_or_else(|p| p.into_inner())
}

/// Samples the users table's counters every second until `seconds` after
/// `start`: the capacity timeline.
async fn sample(
    stats: &ProxyStats,
    table: &str,
    start: Instant,
    seconds: Duration,
) -> Result<Value, String> {
    let mut timeline = Timeline::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() <= seconds {
        tick.tick().await;
        let document = stats.fetch().await?;
        timeline.sample(
            Instant::now(),
            start.elapsed(),
            TableCounters::from_stats(&document, table),
        );
    }
    Ok(timeline.to_json())
}
