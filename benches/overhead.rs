//! What dynagate's retry layer costs when nothing goes wrong: the same
//! unthrottled workload through the plain `aws_sdk_dynamodb::Client` (the
//! SDK's default, standard retry mode), through the same SDK client with its
//! retries off (what dynagate wraps), and through `dynagate::ResilientClient`
//! (dynagate's policy around every call), against DynamoDB Local directly (no
//! fault proxy), in one run.
//!
//! The workload: `BENCH_CONCURRENCY` tasks (default 16) in a closed loop, each
//! operation a strongly consistent GetItem or an unconditional PutItem (half
//! and half) of one of 1,000 items of about 200 bytes. The three variants run
//! in rotating rounds of `BENCH_ROUND_SECONDS` (default 3): `BENCH_ROUNDS`
//! passes (default 6) in the orders A B C, B C A, C A B, ..., so drift of a
//! shared, noisy machine falls on all alike. All clients are built from one
//! `SdkConfig`.
//!
//! Run with the stack up: `cargo bench --bench overhead`. The last line,
//! `OVERHEAD_JSON {...}`, is for `bench/compare.sh`.

mod common;

use common::{create_table, endpoint, env_number, local_config};

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use dynagate::{Operation, ResilientClient, RetryPolicy};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ITEMS: u64 = 1_000;

/// One of the two clients under test.
#[derive(Clone)]
enum Variant {
    Sdk(Client, &'static str),
    Dynagate(ResilientClient),
}

impl Variant {
    fn name(&self) -> &'static str {
        match self {
            Variant::Sdk(_, name) => name,
            Variant::Dynagate(_) => "dynagate ResilientClient (default RetryPolicy)",
        }
    }

    async fn get(&self, table: &str, key: String) -> bool {
        let key = AttributeValue::S(key);
        match self {
            Variant::Sdk(sdk, _) => sdk
                .get_item()
                .table_name(table)
                .key("pk", key)
                .consistent_read(true)
                .send()
                .await
                .is_ok(),
            Variant::Dynagate(client) => client
                .call(Operation::read("GetItem", table), |sdk| {
                    sdk.get_item()
                        .table_name(table)
                        .key("pk", key.clone())
                        .consistent_read(true)
                        .send()
                })
                .await
                .is_ok(),
        }
    }

    async fn put(&self, table: &str, key: String, payload: &AttributeValue) -> bool {
        let key = AttributeValue::S(key);
        match self {
            Variant::Sdk(sdk, _) => sdk
                .put_item()
                .table_name(table)
                .item("pk", key)
                .item("payload", payload.clone())
                .send()
                .await
                .is_ok(),
            Variant::Dynagate(client) => client
                .call(Operation::write("PutItem", table).idempotent(), |sdk| {
                    sdk.put_item()
                        .table_name(table)
                        .item("pk", key.clone())
                        .item("payload", payload.clone())
                        .send()
                })
                .await
                .is_ok(),
        }
    }
}

/// What one variant did over all its rounds.
#[derive(Default)]
struct Tally {
    ops: u64,
    errors: u64,
    busy: Duration,
    latencies: Vec<u32>,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.busy.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort_unstable();
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        f64::from(self.latencies[rank.clamp(1, self.latencies.len()) - 1]) / 1000.0
    }
}

/// One round of the closed-loop workload; adds to `tally`.
async fn round(
    variant: &Variant,
    table: &Arc<str>,
    concurrency: u64,
    seconds: u64,
    seed: u64,
    tally: &mut Tally,
) {
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (variant, table) = (variant.clone(), Arc::clone(table));
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed * 1_000 + task);
            let payload = AttributeValue::S("x".repeat(200));
            let (mut ops, mut errors) = (0u64, 0u64);
            let mut latencies = Vec::with_capacity(50_000);
            while Instant::now() < until {
                let key = format!("item-{}", rng.random_range(0..ITEMS));
                let t = Instant::now();
                let ok = if rng.random_bool(0.5) {
                    variant.get(&table, key).await
                } else {
                    variant.put(&table, key, &payload).await
                };
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                ops += 1;
                errors += u64::from(!ok);
            }
            (ops, errors, latencies)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (ops, errors, latencies) = done.expect("bench task");
        tally.ops += ops;
        tally.errors += errors;
        tally.latencies.extend(latencies);
    }
    tally.busy += started.elapsed();
}

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let concurrency = env_number("BENCH_CONCURRENCY", 16).max(1);
    let seconds = env_number("BENCH_ROUND_SECONDS", 3).max(1);
    let rounds = env_number("BENCH_ROUNDS", 6).max(1);
    let endpoint = endpoint();
    let config = local_config(&endpoint);
    let sdk = Client::new(&config);
    let table: Arc<str> = format!("dynagate-overhead-{}", std::process::id()).into();
    create_table(&sdk, &table).await;

    let payload = AttributeValue::S("x".repeat(200));
    for i in 0..ITEMS {
        sdk.put_item()
            .table_name(&*table)
            .item("pk", AttributeValue::S(format!("item-{i}")))
            .item("payload", payload.clone())
            .send()
            .await
            .expect("seeding the table");
    }

    let variants = [
        Variant::Sdk(
            sdk.clone(),
            "plain aws_sdk_dynamodb::Client (SDK default: standard retry mode)",
        ),
        Variant::Sdk(
            dynagate::client::sdk_client(&config),
            "the same SDK client with its retries off (what dynagate wraps)",
        ),
        Variant::Dynagate(ResilientClient::new(&config, RetryPolicy::default())),
    ];
    // Warm-up: connections, the runtime, DynamoDB Local's JIT.
    for variant in &variants {
        round(variant, &table, concurrency, 1, 0, &mut Tally::default()).await;
    }
    let mut tallies: [Tally; 3] = Default::default();
    for pass in 0..rounds {
        // Rotate the order (0 1 2, 1 2 0, 2 0 1, ...): each variant runs in
        // each position equally often.
        for slot in 0..3 {
            let which = (pass as usize + slot) % 3;
            let seed = pass * 3 + which as u64 + 1;
            round(
                &variants[which],
                &table,
                concurrency,
                seconds,
                seed,
                &mut tallies[which],
            )
            .await;
        }
    }
    let _ = sdk.delete_table().table_name(&*table).send().await;

    let mut rows = Vec::new();
    for (variant, tally) in variants.iter().zip(tallies.iter_mut()) {
        let (p50, p99) = (tally.percentile_ms(50.0), tally.percentile_ms(99.0));
        rows.push((variant.name(), tally.rate(), p50, p99, tally.errors));
    }
    let overhead = (rows[0].1 / rows[2].1 - 1.0) * 100.0;
    let overhead_bare = (rows[1].1 / rows[2].1 - 1.0) * 100.0;

    println!();
    println!(
        "Unthrottled GetItem/PutItem (50/50, 1,000 items of ~200 B) against {endpoint}, {concurrency} tasks, {rounds} rotating rounds of {seconds} s per variant"
    );
    println!();
    println!("| client | ops/s | p50 | p99 | errors |");
    println!("|---|---:|---:|---:|---:|");
    for (name, rate, p50, p99, errors) in &rows {
        println!("| {name} | {rate:.0} | {p50:.3} ms | {p99:.3} ms | {errors} |");
    }
    println!();
    println!(
        "overhead of dynagate in throughput: {overhead:+.2}% vs the plain SDK, {overhead_bare:+.2}% vs the SDK with retries off (positive: dynagate is slower)"
    );
    let json = |(_, rate, p50, p99, errors): &(&str, f64, f64, f64, u64)| {
        format!(
            "{{\"ops_per_s\":{rate:.1},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"errors\":{errors}}}"
        )
    };
    println!(
        "OVERHEAD_JSON {{\"concurrency\":{concurrency},\"round_seconds\":{seconds},\"rounds\":{rounds},\"sdk\":{},\"sdk_no_retries\":{},\"dynagate\":{},\"overhead_percent\":{overhead:.2},\"overhead_vs_no_retries_percent\":{overhead_bare:.2}}}",
        json(&rows[0]),
        json(&rows[1]),
        json(&rows[2])
    );
}
