//! What dynagate's retry layer costs when nothing goes wrong: the same
//! unthrottled workload through the plain `aws_sdk_dynamodb::Client` (the
//! SDK's default, standard retry mode), through the same SDK client with its
//! retries off (what dynagate wraps), and through `dynagate::ResilientClient`
//! (dynagate's policy around every call), against DynamoDB Local directly (no
//! fault proxy), in one run.
//!
//! The workload: `BENCH_CONCURRENCY` tasks (default 16) in a closed loop, each
//! operation a strongly consistent GetItem or an unconditional PutItem (half
//! and half; `BENCH_WRITE_PERCENT` changes the share of PutItem) of one of
//! 1,000 items of about 200 bytes. The three variants run
//! in rotating rounds of `BENCH_ROUND_SECONDS` (default 2): `BENCH_ROUNDS`
//! passes (default 10) in the orders A B C, B C A, C A B, ..., so drift of a
//! shared, noisy machine falls on all alike. All clients are built from one
//! `SdkConfig`.
//!
//! Two readings, because throughput alone is noisy on a shared machine
//! (DynamoDB Local's JVM, the client and everything else share its cores, and
//! one variant's throughput moves between runs by more than the gap measured):
//! - throughput: the aggregate, and the median over passes of the ratio of
//!   two variants measured minutes apart at most (with the range), which
//!   cancels slow drift;
//! - client CPU per operation: this process's CPU time
//!   (`CLOCK_PROCESS_CPUTIME_ID`) over each round divided by its operations.
//!   DynamoDB Local runs in another process, so this is what each client
//!   itself costs, the figure a retry layer adds, and it varies far less.
//!
//! Third, with no server at all: dynagate's loop around an attempt that
//! succeeds at once (`RetryPolicy::run`, deadline timer, metrics, budget
//! deposit), timed over 1,000,000 calls: the cost the loop itself adds to each
//! call, next to the client CPU an SDK call costs.
//!
//! Run with the stack up: `cargo bench --bench overhead`. Besides printing
//! its table, it writes it to `benches/results/overhead.md` (the client CPU
//! per operation is in the table). The last line, `OVERHEAD_JSON {...}`, is
//! for `benches/compare/compare.sh` and stays out of the result file.

mod common;

use common::results::{Results, say};
use common::{create_table, endpoint, env_number, local_config, seed_items};

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use dynagate::retry::RetryPolicy;
use dynagate::{Operation, ResilientClient};
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
    cpu: Duration,
    latencies: Vec<u32>,
    /// Operations per second of each round, in pass order.
    round_rates: Vec<f64>,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.busy.as_secs_f64()
    }

    /// This process's CPU time per operation, in microseconds.
    fn cpu_us_per_op(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.ops.max(1) as f64
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
    write_share: f64,
    tally: &mut Tally,
) {
    let (started, cpu_started) = (Instant::now(), process_cpu_time());
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
                let ok = if !rng.random_bool(write_share) {
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
    let mut round_ops = 0;
    while let Some(done) = tasks.join_next().await {
        let (ops, errors, latencies) = done.expect("bench task");
        round_ops += ops;
        tally.errors += errors;
        tally.latencies.extend(latencies);
    }
    let elapsed = started.elapsed();
    tally.cpu += process_cpu_time().saturating_sub(cpu_started);
    tally.ops += round_ops;
    tally.busy += elapsed;
    tally
        .round_rates
        .push(round_ops as f64 / elapsed.as_secs_f64());
}

/// CPU time this process (all its threads) has used so far.
fn process_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec and the clock id is a
    // constant the kernel knows; clock_gettime writes nothing else.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Nanoseconds `RetryPolicy::run` adds around an attempt that succeeds at
/// once (best of 3 passes of `calls`): no network, only dynagate's own work.
async fn loop_alone_ns(calls: u32) -> f64 {
    let policy = RetryPolicy::default();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..calls {
            let outcome = policy
                .run(&Operation::read("GetItem", "bench"), || async move {
                    Ok::<u32, SdkError<GetItemError, HttpResponse>>(i)
                })
                .await;
            std::hint::black_box(outcome.is_ok());
        }
        best = best.min(started.elapsed().as_nanos() as f64 / f64::from(calls));
    }
    best
}

/// Median, minimum and maximum over passes of `(a / b - 1) * 100`: how much
/// slower `b` was than `a`, in percent, each pass compared within itself.
fn paired_overhead(a: &Tally, b: &Tally) -> (f64, f64, f64) {
    let mut ratios: Vec<f64> = a
        .round_rates
        .iter()
        .zip(&b.round_rates)
        .map(|(a, b)| (a / b - 1.0) * 100.0)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    (median, ratios[0], ratios[n - 1])
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
    let writes = env_number("BENCH_WRITE_PERCENT", 50).min(100);
    let write_share = writes as f64 / 100.0;
    let mut results = Results::start("overhead");
    let endpoint = endpoint();
    let config = local_config(&endpoint);
    let sdk = Client::new(&config);
    let table: Arc<str> = format!("dynagate-overhead-{}", std::process::id()).into();
    create_table(&sdk, &table).await;

    seed_items(&sdk, &table, ITEMS).await;

    let variants = [
        Variant::Sdk(
            sdk.clone(),
            "plain aws_sdk_dynamodb::Client (SDK default: standard retry mode)",
        ),
        Variant::Sdk(
            dynagate::sdk_client(&config),
            "the same SDK client with its retries off (what dynagate wraps)",
        ),
        Variant::Dynagate(ResilientClient::new(&config, RetryPolicy::default())),
    ];
    // Warm-up: connections, the runtime, DynamoDB Local's JIT.
    for variant in &variants {
        round(
            variant,
            &table,
            concurrency,
            1,
            0,
            write_share,
            &mut Tally::default(),
        )
        .await;
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
                write_share,
                &mut tallies[which],
            )
            .await;
        }
    }
    let _ = sdk.delete_table().table_name(&*table).send().await;

    let mut rows = Vec::new();
    for (variant, tally) in variants.iter().zip(tallies.iter_mut()) {
        let (p50, p99) = (tally.percentile_ms(50.0), tally.percentile_ms(99.0));
        let (rate, cpu) = (tally.rate(), tally.cpu_us_per_op());
        rows.push((variant.name(), rate, p50, p99, cpu, tally.errors));
    }
    let overhead = (rows[0].1 / rows[2].1 - 1.0) * 100.0;
    let overhead_bare = (rows[1].1 / rows[2].1 - 1.0) * 100.0;
    let (paired, paired_min, paired_max) = paired_overhead(&tallies[0], &tallies[2]);
    let (paired_bare, paired_bare_min, paired_bare_max) = paired_overhead(&tallies[1], &tallies[2]);
    let loop_ns = loop_alone_ns(1_000_000).await;
    let loop_share = loop_ns / 1000.0 / rows[0].4 * 100.0;
    let cpu_overhead = (rows[2].4 / rows[0].4 - 1.0) * 100.0;
    let cpu_overhead_bare = (rows[2].4 / rows[1].4 - 1.0) * 100.0;

    say!(results);
    say!(
        results,
        "Unthrottled GetItem/PutItem ({}/{writes}, 1,000 items of ~200 B) against {endpoint}, {concurrency} tasks, {rounds} rotating rounds of {seconds} s per variant",
        100 - writes
    );
    say!(results);
    say!(
        results,
        "| client | ops/s | p50 | p99 | client CPU / op | errors |"
    );
    say!(results, "|---|---:|---:|---:|---:|---:|");
    for (name, rate, p50, p99, cpu, errors) in &rows {
        say!(
            results,
            "| {name} | {rate:.0} | {p50:.3} ms | {p99:.3} ms | {cpu:.1} us | {errors} |"
        );
    }
    say!(results);
    say!(
        results,
        "dynagate's overhead (positive: dynagate is slower or costs more):"
    );
    say!(
        results,
        "  throughput, whole run:        {overhead:+.2}% vs the plain SDK, {overhead_bare:+.2}% vs the SDK with retries off"
    );
    say!(
        results,
        "  throughput, median of passes: {paired:+.2}% (range {paired_min:+.1}..{paired_max:+.1}) vs the plain SDK, {paired_bare:+.2}% (range {paired_bare_min:+.1}..{paired_bare_max:+.1}) vs retries off"
    );
    say!(
        results,
        "  client CPU per operation:     {cpu_overhead:+.2}% vs the plain SDK, {cpu_overhead_bare:+.2}% vs retries off"
    );
    say!(
        results,
        "  the retry loop alone (no server, an attempt that succeeds at once): {loop_ns:.0} ns per call, {loop_share:.2}% of the plain SDK's client CPU per operation"
    );
    results.save();
    let json = |(_, rate, p50, p99, cpu, errors): &(&str, f64, f64, f64, f64, u64)| {
        format!(
            "{{\"ops_per_s\":{rate:.1},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"cpu_us_per_op\":{cpu:.2},\"errors\":{errors}}}"
        )
    };
    println!(
        "OVERHEAD_JSON {{\"concurrency\":{concurrency},\"round_seconds\":{seconds},\"rounds\":{rounds},\"sdk\":{},\"sdk_no_retries\":{},\"dynagate\":{},\"overhead_percent\":{overhead:.2},\"overhead_vs_no_retries_percent\":{overhead_bare:.2},\"paired_overhead_percent\":{paired:.2},\"paired_overhead_min_percent\":{paired_min:.2},\"paired_overhead_max_percent\":{paired_max:.2},\"cpu_overhead_percent\":{cpu_overhead:.2},\"cpu_overhead_vs_no_retries_percent\":{cpu_overhead_bare:.2},\"loop_ns_per_call\":{loop_ns:.0},\"loop_percent_of_sdk_cpu\":{loop_share:.3}}}",
        json(&rows[0]),
        json(&rows[1]),
        json(&rows[2])
    );
}
