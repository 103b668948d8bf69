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
//! The variants, one after the other, each on its own table and proxy: the
//! SDK's standard retry mode with dynagate's budget (its default policy's
//! maximum attempts, and its deadline as the operation timeout: the fair
//! fight, which the headline leads with), the SDK's standard mode with its
//! defaults, the SDK's opt-in Retry Behavior 2.1, its adaptive mode, and
//! dynagate's `ResilientClient` (`common::sdk_baseline` says which SDK
//! versions were checked for the newer retry behaviour, and where).
//!
//! Latency is given over the successful writes and over all writes (time to
//! outcome: success or give-up). CPU time is given per successful write, for
//! the client (this process's ticks, less those of the threads that run the
//! fault proxy, which gets a runtime of its own for that) and for DynamoDB
//! Local (the process listening on the endpoint's port; `-` if not found).
//! DynamoDB Local serves every client on the machine: its figure includes
//! whatever else ran against it meanwhile.
//!
//! Run with `./dev.sh bench` (starts DynamoDB Local), or with the stack up:
//! `cargo bench --bench throttled_writes`. Settings: `BENCH_CAPACITY` (WCU/s,
//! default 50), `BENCH_WRITES` (default 1000). Besides printing its table, it
//! writes it to `benches/results/throttled_writes.md`.

mod common;

use common::cpu::{listening_pid, local_port, own_thread_ticks, own_ticks, per_success};
use common::results::{Results, say};
use common::sdk_baseline::{RETRY_BEHAVIOR_NOTE, SdkBaseline, sdk_version};
use common::writer::Writer;
use common::{create_table, endpoint, env_number, local_config};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynagate::ResilientClient;
use dynagate::retry::RetryPolicy;
use dynagate_fault_proxy::{
    Capacity, FaultProxy, ProxyConfig, Rule, RuleSet, RunningProxy, Upstream,
};
use tokio::runtime::Handle;

/// The name of the fault proxy's runtime threads, whose CPU time is not the
/// client's.
const PROXY_THREADS: &str = "fault-proxy";

#[derive(Clone, Copy, Debug)]
enum Variant {
    Sdk(SdkBaseline),
    Dynagate,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Sdk(baseline) => baseline.name(),
            Variant::Dynagate => "dynagate ResilientClient",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Variant::Sdk(baseline) => baseline.slug(),
            Variant::Dynagate => "dynagate",
        }
    }
}

struct Outcome {
    variant: Variant,
    completed: usize,
    give_ups: BTreeMap<String, usize>,
    attempts: u64,
    throttled: u64,
    wall: Duration,
    /// Of the successful writes, sorted.
    latencies: Vec<Duration>,
    /// Time to outcome of every write (success or give-up), sorted.
    outcomes: Vec<Duration>,
    client_ticks: u64,
    server_ticks: Option<u64>,
}

impl Outcome {
    fn give_ups(&self) -> usize {
        self.give_ups.values().sum()
    }

    fn attempts_per_success(&self) -> f64 {
        self.attempts as f64 / self.completed.max(1) as f64
    }
}

/// The CPU counters read around a variant.
struct Ticks {
    process: u64,
    proxy: u64,
    server: Option<u64>,
}

impl Ticks {
    fn now(server_pid: Option<u32>) -> Ticks {
        Ticks {
            process: own_ticks(),
            proxy: own_thread_ticks(PROXY_THREADS),
            server: server_pid.and_then(common::cpu::process_ticks),
        }
    }

    /// The client's ticks since `self` (the process's, less the proxy's),
    /// and DynamoDB Local's.
    fn since(&self, server_pid: Option<u32>) -> (u64, Option<u64>) {
        let now = Ticks::now(server_pid);
        // Saturating: a proxy thread that exited took its ticks out of the sum.
        let proxy = now.proxy.saturating_sub(self.proxy);
        let client = now
            .process
            .saturating_sub(self.process)
            .saturating_sub(proxy);
        let server = self
            .server
            .zip(now.server)
            .map(|(a, b)| b.saturating_sub(a));
        (client, server)
    }
}

async fn run(
    variant: Variant,
    writer: Writer,
    table: &str,
    capacity: u32,
    writes: u32,
    proxy: &RunningProxy,
    server_pid: Option<u32>,
) -> Outcome {
    let ticks = Ticks::now(server_pid);
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
    let mut outcomes = Vec::new();
    let mut give_ups = BTreeMap::<String, usize>::new();
    while let Some(result) = tasks.join_next().await {
        let (outcome, latency) = result.expect("write task");
        outcomes.push(latency);
        match outcome {
            Ok(()) => latencies.push(latency),
            Err(reason) => *give_ups.entry(reason).or_default() += 1,
        }
    }
    let wall = started.elapsed();
    let (client_ticks, server_ticks) = ticks.since(server_pid);
    let stats = proxy.stats().operation(&table, "PutItem");
    latencies.sort();
    outcomes.sort();
    Outcome {
        variant,
        completed: latencies.len(),
        give_ups,
        attempts: stats.requests,
        throttled: stats.throttled_total(),
        wall,
        latencies,
        outcomes,
        client_ticks,
        server_ticks,
    }
}

/// Starts a proxy on the proxy's own runtime, so that its work is counted
/// apart from the client's.
async fn start_proxy(runtime: &Handle, upstream: &str, table: &str, capacity: u32) -> RunningProxy {
    let rules = vec![Rule::new(table, "*").with_capacity(Capacity::new(None, Some(capacity)))];
    let config = ProxyConfig::default()
        .with_listen("127.0.0.1:0".parse().unwrap())
        .with_upstream(Upstream::parse(upstream).expect("AWS_ENDPOINT_URL"))
        .with_seed(1)
        .with_rules(RuleSet::new(rules).expect("rules"));
    runtime
        .spawn(FaultProxy::start(config))
        .await
        .expect("the proxy's runtime")
        .expect("fault proxy")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

async fn bench(proxy_runtime: Handle) {
    let capacity = env_number("BENCH_CAPACITY", 50) as u32;
    let writes = env_number("BENCH_WRITES", 1000) as u32;
    let upstream = endpoint();
    let shared = local_config(&upstream);
    let admin = aws_sdk_dynamodb::Client::new(&shared);
    let run_id = std::process::id();
    let server_pid = local_port(&upstream).and_then(listening_pid);
    let mut results = Results::start("throttled_writes");
    let (sdk, version) = sdk_version();
    results.version(sdk, version);

    let variants: Vec<Variant> = SdkBaseline::ALL
        .into_iter()
        .map(Variant::Sdk)
        .chain([Variant::Dynagate])
        .collect();
    let tables: Vec<String> = variants
        .iter()
        .map(|v| format!("bench-{}-{run_id}", v.slug()))
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
    say!(results);
    for baseline in SdkBaseline::ALL {
        say!(
            results,
            "- {}",
            baseline.describe(&baseline.config(&shared))
        );
    }
    say!(results, "- {RETRY_BEHAVIOR_NOTE}");
    let policy = RetryPolicy::builder().seed(1).build().expect("policy");
    say!(
        results,
        "- dynagate ResilientClient: default retry policy, {} attempts, deadline {:?}",
        policy.max_attempts(),
        policy.deadline()
    );
    say!(
        results,
        "- CPU per successful write: client = this process less the proxy's threads; DynamoDB Local = {}",
        match server_pid {
            Some(_) =>
                "the process listening on the endpoint's port (it serves every client on the machine)",
            None => "not found (no local process listens on the endpoint's port): `-`",
        }
    );

    let mut outcomes = Vec::new();
    for (variant, table) in variants.iter().zip(&tables) {
        eprintln!("throttled_writes: {}", variant.name());
        // A proxy per variant, started right before it runs: each table's burst
        // bank starts empty instead of filling while the other variants run.
        let proxy = start_proxy(&proxy_runtime, &upstream, table, capacity).await;
        let through_proxy = local_config(&proxy.url());
        let writer = match variant {
            Variant::Sdk(baseline) => Writer::sdk_config(baseline.config(&through_proxy)),
            Variant::Dynagate => Writer::dynagate(ResilientClient::new(
                &through_proxy,
                RetryPolicy::builder().seed(1).build().expect("policy"),
            )),
        };
        let outcome = run(
            *variant, writer, table, capacity, writes, &proxy, server_pid,
        )
        .await;
        outcomes.push(outcome);
        proxy.shutdown().await;
    }

    say!(results);
    print_table(&mut results, &outcomes, writes);
    say!(results);
    let ours = outcomes.last().expect("dynagate ran");
    for theirs in &outcomes[..outcomes.len() - 1] {
        print_ratios(&mut results, ours, theirs);
    }
    results.save();

    for table in &tables {
        let _ = admin.delete_table().table_name(table).send().await;
    }
}

fn print_table(results: &mut Results, outcomes: &[Outcome], writes: u32) {
    say!(
        results,
        "| variant | writes completed | give-ups | attempts | attempts / success | throttled | completion time \
         | p50 success | p99 success | p50 all | p99 all | client CPU / success | DynamoDB Local CPU / success \
         | give-up reasons |"
    );
    say!(
        results,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for o in outcomes {
        say!(
            results,
            "| {} | {} / {} | {} | {} | {:.2} | {} | {:.1} s | {} | {} | {} | {} | {} | {} | {} |",
            o.variant.name(),
            o.completed,
            writes,
            o.give_ups(),
            o.attempts,
            o.attempts_per_success(),
            o.throttled,
            o.wall.as_secs_f64(),
            ms(percentile(&o.latencies, 50.0)),
            ms(percentile(&o.latencies, 99.0)),
            ms(percentile(&o.outcomes, 50.0)),
            ms(percentile(&o.outcomes, 99.0)),
            per_success(Some(o.client_ticks), o.completed as u64),
            per_success(o.server_ticks, o.completed as u64),
            o.give_ups
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
}

fn print_ratios(results: &mut Results, ours: &Outcome, theirs: &Outcome) {
    let ratio = |a: f64, b: f64| match a / b {
        r if !r.is_finite() => "-".to_owned(),
        r => format!("{r:.2}x"),
    };
    let client_cpu = |o: &Outcome| o.client_ticks as f64 / o.completed.max(1) as f64;
    say!(
        results,
        "{} vs {}: {} writes completed, {} give-ups, {} attempts per success, {} p99 all, {} client CPU per success",
        ours.variant.name(),
        theirs.variant.name(),
        ratio(ours.completed as f64, theirs.completed as f64),
        ratio(ours.give_ups() as f64, theirs.give_ups() as f64),
        ratio(ours.attempts_per_success(), theirs.attempts_per_success()),
        ratio(
            percentile(&ours.outcomes, 99.0).as_secs_f64(),
            percentile(&theirs.outcomes, 99.0).as_secs_f64()
        ),
        ratio(client_cpu(ours), client_cpu(theirs)),
    );
}

fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // The proxy's runtime: named threads, whose CPU time the bench subtracts
    // from the process's, that live for the whole run (a blocking thread
    // that exited would take its ticks with it).
    let proxy_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name(PROXY_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("the proxy's runtime");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(proxy_runtime.handle().clone()));
}
