//! The same throttled write workload through the plain AWS SDK and through
//! dynagate, in one run, side by side.
//!
//! DynamoDB Local sits behind the fault proxy, which gives each variant's
//! table the same provisioned write capacity (DynamoDB's capacity model, empty
//! burst bank). Writes are offered open-loop at twice that capacity: a new
//! write starts every `1 / (2 * capacity)` seconds whatever happened to the
//! earlier ones, as requests arrive at a service. Each write is a 1-WCU
//! PutItem of its own key.
//!
//! Run with `./dev.sh bench` (starts DynamoDB Local), or with the stack up:
//! `cargo bench --bench throttled_writes`. Settings: `BENCH_CAPACITY` (WCU/s,
//! default 50), `BENCH_WRITES` (default 1000). Besides printing its table, it
//! writes it to `benches/results/throttled_writes.md`.

mod common;

use common::results::{Results, say};
use common::writer::Writer;
use common::{create_table, endpoint, env_number, local_config};

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use dynagate::ResilientClient;
use dynagate::retry::RetryPolicy;
use dynagate_fault_proxy::{
    Capacity, FaultProxy, ProxyConfig, Rule, RuleSet, RunningProxy, Upstream,
};

#[derive(Clone, Copy, Debug)]
enum Variant {
    SdkStandard,
    SdkAdaptive,
    Dynagate,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::SdkStandard => "AWS SDK, standard retry mode",
            Variant::SdkAdaptive => "AWS SDK, adaptive retry mode",
            Variant::Dynagate => "dynagate ResilientClient",
        }
    }
}

struct Outcome {
    variant: Variant,
    completed: usize,
    give_ups: std::collections::BTreeMap<String, usize>,
    attempts: u64,
    throttled: u64,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Outcome {
    fn give_ups(&self) -> usize {
        self.give_ups.values().sum()
    }
}

async fn run(
    variant: Variant,
    writer: Writer,
    table: &str,
    capacity: u32,
    writes: u32,
    proxy: &RunningProxy,
) -> Outcome {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / (2 * capacity));
    let table: Arc<str> = table.into();
    for i in 0..writes {
        tick.tick().await;
        let writer = writer.clone();
        let table = Arc::clone(&table);
        tasks.spawn(async move {
            let began = Instant::now();
            let outcome = writer.put(&table, format!("item-{i}")).await;
            (outcome, began.elapsed())
        });
    }
    let mut latencies = Vec::new();
    let mut give_ups = std::collections::BTreeMap::<String, usize>::new();
    while let Some(result) = tasks.join_next().await {
        let (outcome, latency) = result.expect("write task");
        match outcome {
            Ok(()) => latencies.push(latency),
            Err(reason) => *give_ups.entry(reason).or_default() += 1,
        }
    }
    let wall = started.elapsed();
    let stats = proxy.stats().operation(&table, "PutItem");
    latencies.sort();
    Outcome {
        variant,
        completed: latencies.len(),
        give_ups,
        attempts: stats.requests,
        throttled: stats.throttled_total(),
        wall,
        latencies,
    }
}

async fn start_proxy(upstream: &str, table: &str, capacity: u32) -> RunningProxy {
    let rules = vec![Rule::new(table, "*").with_capacity(Capacity::new(None, Some(capacity)))];
    FaultProxy::start(
        ProxyConfig::default()
            .with_listen("127.0.0.1:0".parse().unwrap())
            .with_upstream(Upstream::parse(upstream).expect("AWS_ENDPOINT_URL"))
            .with_seed(1)
            .with_rules(RuleSet::new(rules).expect("rules")),
    )
    .await
    .expect("fault proxy")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let capacity = env_number("BENCH_CAPACITY", 50) as u32;
    let writes = env_number("BENCH_WRITES", 1000) as u32;
    let upstream = endpoint();
    let admin = aws_sdk_dynamodb::Client::new(&local_config(&upstream));
    let run_id = std::process::id();
    let mut results = Results::start("throttled_writes");

    let variants = [
        Variant::SdkStandard,
        Variant::SdkAdaptive,
        Variant::Dynagate,
    ];
    let tables: Vec<String> = variants
        .iter()
        .map(|v| format!("bench-{v:?}-{run_id}").to_lowercase())
        .collect();
    for table in &tables {
        create_table(&admin, table).await;
    }
    say!(
        results,
        "throttled_writes: {writes} PutItem (1 WCU each) offered at {} writes/s against {capacity} WCU/s \
         provisioned (fault proxy capacity model, empty burst bank), DynamoDB Local behind it",
        2 * capacity
    );
    let mut outcomes = Vec::new();
    for (variant, table) in variants.iter().zip(&tables) {
        // A proxy per variant, started right before it runs: each table's burst
        // bank starts empty instead of filling while the other variants run.
        let proxy = start_proxy(&upstream, table, capacity).await;
        let through_proxy = local_config(&proxy.url());
        let writer = match variant {
            Variant::SdkStandard => Writer::sdk(&through_proxy, RetryConfig::standard()),
            Variant::SdkAdaptive => Writer::sdk(&through_proxy, RetryConfig::adaptive()),
            Variant::Dynagate => Writer::dynagate(ResilientClient::new(
                &through_proxy,
                RetryPolicy::builder().seed(1).build().expect("policy"),
            )),
        };
        outcomes.push(run(*variant, writer, table, capacity, writes, &proxy).await);
        proxy.shutdown().await;
    }

    say!(results);
    say!(
        results,
        "| variant | writes completed | give-ups | attempts | attempts / success | throttled | completion time | p50 | p99 | give-up reasons |"
    );
    say!(results, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for o in &outcomes {
        say!(
            results,
            "| {} | {} / {} | {} | {} | {:.2} | {} | {:.1} s | {:.0} ms | {:.0} ms | {} |",
            o.variant.name(),
            o.completed,
            writes,
            o.give_ups(),
            o.attempts,
            o.attempts as f64 / o.completed.max(1) as f64,
            o.throttled,
            o.wall.as_secs_f64(),
            percentile(&o.latencies, 50.0).as_secs_f64() * 1000.0,
            percentile(&o.latencies, 99.0).as_secs_f64() * 1000.0,
            o.give_ups
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let sdk = &outcomes[0];
    let ours = &outcomes[2];
    say!(results);
    say!(
        results,
        "dynagate vs SDK standard: {:.2}x writes completed, {:.2}x give-ups, {:.2}x attempts per success",
        ours.completed as f64 / sdk.completed.max(1) as f64,
        ours.give_ups() as f64 / sdk.give_ups().max(1) as f64,
        (ours.attempts as f64 / ours.completed.max(1) as f64)
            / (sdk.attempts as f64 / sdk.completed.max(1) as f64),
    );
    results.save();

    for table in &tables {
        let _ = admin.delete_table().table_name(table).send().await;
    }
}
