//! What `ResilientClient::with_direct_get` saves per GetItem: the same client
//! with and without the direct path, side by side in one run, against
//! DynamoDB Local directly (no fault proxy). `BENCH_CONCURRENCY` tasks
//! (default 16) in a closed loop read one of 1,000 items of about 200 bytes
//! (eventually consistent GetItem, as the users API reads); the two variants
//! alternate in rounds of `BENCH_ROUND_SECONDS` (default 2), `BENCH_ROUNDS`
//! passes (default 10), the order swapped every pass.
//!
//! The figure that holds still on a shared machine is the client's CPU per
//! GetItem (this process's user + system time from `/proc/self/stat`; DynamoDB
//! Local runs in another process), reported beside throughput, with the
//! ratio of the two per pass (median and range).
//!
//! Run with the stack up: `cargo bench --bench direct_get`. Writes
//! `benches/results/direct_get.md`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use common::cpu::{own_ticks, ticks_to_duration};
use common::results::{Results, say};
use common::{create_table, endpoint, env_number, local_config, seed_items};
use dynagate::retry::RetryPolicy;
use dynagate::{Operation, ResilientClient};

const ITEMS: u64 = 1_000;

/// One side's totals and its per-pass CPU per read.
#[derive(Default)]
struct Tally {
    reads: u64,
    errors: u64,
    busy: Duration,
    cpu: Duration,
    cpu_per_read_by_pass: Vec<f64>,
}

impl Tally {
    fn cpu_us_per_read(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.reads.max(1) as f64
    }
}

/// One round of `seconds`: `concurrency` tasks reading through `client`.
async fn round(
    client: &ResilientClient,
    table: &Arc<str>,
    concurrency: u64,
    seconds: u64,
    tally: &mut Tally,
) {
    let (started, ticks_started) = (Instant::now(), own_ticks());
    let until = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (client, table) = (client.clone(), Arc::clone(table));
        tasks.spawn(async move {
            let (mut reads, mut errors) = (0u64, 0u64);
            let mut n = task * 7919;
            while Instant::now() < until {
                n = (n + 104_729) % ITEMS;
                let input = GetItemInput::builder()
                    .table_name(&*table)
                    .key("pk", AttributeValue::S(format!("item-{n}")))
                    .build()
                    .expect("a GetItemInput builds");
                let outcome = client
                    .get_item(Operation::read("GetItem", &*table), input)
                    .await;
                reads += 1;
                errors += u64::from(!outcome.is_ok_and(|o| o.item().is_some()));
            }
            (reads, errors)
        });
    }
    let mut round_reads = 0;
    while let Some(done) = tasks.join_next().await {
        let (reads, errors) = done.expect("bench task");
        round_reads += reads;
        tally.errors += errors;
    }
    let cpu = ticks_to_duration(own_ticks().saturating_sub(ticks_started));
    tally.busy += started.elapsed();
    tally.cpu += cpu;
    tally.reads += round_reads;
    tally
        .cpu_per_read_by_pass
        .push(cpu.as_secs_f64() * 1e6 / round_reads.max(1) as f64);
}

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let concurrency = env_number("BENCH_CONCURRENCY", 16).max(1);
    let seconds = env_number("BENCH_ROUND_SECONDS", 2).max(1);
    let rounds = env_number("BENCH_ROUNDS", 10).max(1);
    let mut results = Results::start("direct_get");
    let endpoint = endpoint();
    let config = local_config(&endpoint);
    let sdk = Client::new(&config);
    let table: Arc<str> = format!("dynagate-direct-get-{}", std::process::id()).into();
    create_table(&sdk, &table).await;
    seed_items(&sdk, &table, ITEMS).await;

    let sides = [
        (
            "ResilientClient, GetItem through the SDK",
            ResilientClient::new(&config, RetryPolicy::default()),
        ),
        (
            "ResilientClient::with_direct_get",
            ResilientClient::new(&config, RetryPolicy::default()).with_direct_get(),
        ),
    ];
    // Warm-up: connections, the runtime, DynamoDB Local's JIT, and the
    // direct side's first read of the table (through the SDK).
    for (_, client) in &sides {
        round(client, &table, concurrency, 1, &mut Tally::default()).await;
    }
    let mut tallies: [Tally; 2] = Default::default();
    for pass in 0..rounds {
        for slot in 0..2 {
            let which = (pass as usize + slot) % 2;
            round(
                &sides[which].1,
                &table,
                concurrency,
                seconds,
                &mut tallies[which],
            )
            .await;
        }
    }
    let _ = sdk.delete_table().table_name(&*table).send().await;

    let mut ratios: Vec<f64> = tallies[0]
        .cpu_per_read_by_pass
        .iter()
        .zip(&tallies[1].cpu_per_read_by_pass)
        .map(|(sdk, direct)| sdk / direct)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];

    say!(results);
    say!(
        results,
        "Eventually consistent GetItem of 1,000 items of ~200 B against {endpoint}, {concurrency} tasks, {rounds} alternating rounds of {seconds} s per side"
    );
    say!(results);
    say!(
        results,
        "| client | reads/s | client CPU per read | errors |"
    );
    say!(results, "|---|---:|---:|---:|");
    for ((name, _), tally) in sides.iter().zip(&tallies) {
        say!(
            results,
            "| {name} | {:.0} | {:.1} us | {} |",
            tally.reads as f64 / tally.busy.as_secs_f64(),
            tally.cpu_us_per_read(),
            tally.errors
        );
    }
    say!(results);
    say!(
        results,
        "Client CPU per read, through the SDK / direct: {:.2} over the whole run; per pass median {median:.2} (range {:.2}..{:.2})",
        tallies[0].cpu_us_per_read() / tallies[1].cpu_us_per_read(),
        ratios[0],
        ratios[ratios.len() - 1]
    );
    results.save();
}
