//! Goodput of a fleet writing to one table at twice its provisioned capacity:
//! the plain AWS SDK, dynagate's retries alone, and dynagate with the fleet
//! capacity gate, in one run.
//!
//! # Method
//!
//! The fleet is `BENCH_PROCESSES` (default 8) OS processes, as the instances
//! of a service would be: this program run again as workers, each with its
//! own client. They write to one table of DynamoDB Local through the fault
//! proxy (run by this parent process), whose capacity model gives the table
//! `BENCH_CAPACITY` WCU/s (default 100) with a one-second burst bank, full at
//! start.
//!
//! The load is open-loop: together the workers offer twice the capacity for
//! `BENCH_SECONDS` (default 20), each its share on a fixed schedule from a
//! common start instant, interleaved with the others' writes. A write starts
//! on schedule whatever happened to the earlier ones, as requests arrive at a
//! service. Each is a ~400-byte PutItem (1 WCU) of its own key. Latency is
//! counted from the scheduled start, so time spent waiting for a turn counts.
//!
//! *Goodput* is the share of the provisioned capacity that became successful
//! writes: successes / (capacity × seconds from the common start to the last
//! completion). With twice the capacity offered, 100 % is the ceiling (a few
//! percent more from the bank that is full at start). What a client does with
//! the half of the load that cannot fit decides how far below the ceiling it
//! lands and at what cost: attempts per success and throttled requests (both
//! as the proxy counted them), give-ups by reason, latency.
//!
//! # Variants
//!
//! Each runs against a fresh table, one after another:
//!
//! 1. the AWS SDK in standard retry mode (its defaults: 3 attempts);
//! 2. the AWS SDK in adaptive retry mode (a client-side rate limiter in each
//!    process);
//! 3. dynagate's `ResilientClient` with its default retry policy, no gate;
//! 4. the same with the fleet capacity gate: each process builds its own
//!    `CapacityGate` on the same Redis prefix and table capacity, so the
//!    processes share nothing but Redis.
//!
//! A second scenario halves the table's capacity at half time while the gate
//! stays configured with the original capacity (variant 4, and variant 3 for
//! contrast). It prints a timeline per second: successful writes and throttled
//! requests (from the proxy's counters) and the gate's adaptive rate (read
//! from Redis). Its goodput is relative to the capacity in force, second by
//! second.
//!
//! # Running
//!
//! `./dev.sh bench` starts the stack and runs this with the other benchmarks.
//! With the stack up (`localstack/stack.sh start dynamodb redis`):
//! `cargo bench --bench goodput`. Settings: `BENCH_CAPACITY` (WCU/s, default
//! 100), `BENCH_SECONDS` (default 20), `BENCH_PROCESSES` (default 8),
//! `AWS_ENDPOINT_URL` (DynamoDB Local), `REDIS_URL`.

mod common;

use common::{create_table, endpoint, env_number, local_config};

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use dynagate::capacity::{CapacityGate, Direction, TableCapacity};
use dynagate::{Operation, ResilientClient, RetryPolicy};
use dynagate_fault_proxy::{
    Capacity, FaultProxy, OperationStats, ProxyConfig, Rule, RuleSet, RunningProxy, Upstream,
};
use serde::{Deserialize, Serialize};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Set, to the worker's [`WorkerSpec`] as JSON, in a worker's environment.
const WORKER_ENV: &str = "GOODPUT_WORKER";
/// Time the workers get to start and connect before the common start.
const STARTUP: Duration = Duration::from_secs(2);
/// How long a worker waits for its writes in flight after offering the last.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Variant {
    SdkStandard,
    SdkAdaptive,
    Dynagate,
    DynagateGate,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::SdkStandard => "1. AWS SDK, standard retry mode",
            Variant::SdkAdaptive => "2. AWS SDK, adaptive retry mode",
            Variant::Dynagate => "3. dynagate, no gate",
            Variant::DynagateGate => "4. dynagate + fleet capacity gate",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Variant::SdkStandard => "sdk-standard",
            Variant::SdkAdaptive => "sdk-adaptive",
            Variant::Dynagate => "dynagate",
            Variant::DynagateGate => "gate",
        }
    }
}

/// Whether the table keeps its capacity, or loses half of it at half time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Steady,
    Halved,
}

/// The settings of the whole run.
struct Bench {
    capacity: u32,
    seconds: u64,
    processes: u32,
    upstream: String,
    redis_url: String,
    run_id: String,
    admin: Client,
}

impl Bench {
    fn from_env() -> Bench {
        let upstream = endpoint();
        Bench {
            capacity: env_number("BENCH_CAPACITY", 100).max(2) as u32,
            seconds: env_number("BENCH_SECONDS", 20).max(2),
            processes: env_number("BENCH_PROCESSES", 8).max(1) as u32,
            admin: Client::new(&local_config(&upstream)),
            upstream,
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            run_id: format!("{}-{}", std::process::id(), unix_ms() % 100_000),
        }
    }

    /// The table's write capacity during `second` (1-based) of a run.
    fn capacity_in(&self, scenario: Scenario, second: u64) -> u32 {
        match scenario {
            Scenario::Halved if second > self.seconds / 2 => self.capacity / 2,
            _ => self.capacity,
        }
    }

    /// Writes the fleet's schedule makes due during `second` (1-based).
    fn offered_in(&self, second: u64) -> u64 {
        if second <= self.seconds {
            2 * u64::from(self.capacity)
        } else {
            0
        }
    }

    /// Capacity units the table provided over the first `wall` seconds.
    fn capacity_seconds(&self, scenario: Scenario, wall: f64) -> f64 {
        let capacity = f64::from(self.capacity);
        match scenario {
            Scenario::Steady => capacity * wall,
            Scenario::Halved => {
                let half = (self.seconds / 2) as f64;
                capacity * wall.min(half) + f64::from(self.capacity / 2) * (wall - half).max(0.0)
            }
        }
    }
}

// ---------------------------------------------------------------- worker side

/// What a worker process is told, as JSON in [`WORKER_ENV`].
#[derive(Debug, Serialize, Deserialize)]
struct WorkerSpec {
    variant: Variant,
    /// This worker's number in the fleet, from 0.
    index: u32,
    processes: u32,
    table: String,
    proxy_url: String,
    /// Writes per second this worker offers.
    rate: f64,
    seconds: u64,
    /// The common start, in milliseconds since the Unix epoch.
    start_unix_ms: u64,
    seed: u64,
    gate: Option<GateSpec>,
}

impl WorkerSpec {
    fn writes(&self) -> u64 {
        (self.rate * self.seconds as f64).round() as u64
    }

    /// When write `i` is due after the start: the fleet's schedules interleave
    /// so that together they offer evenly spaced writes.
    fn due(&self, i: u64) -> Duration {
        let offset = f64::from(self.index) / f64::from(self.processes);
        Duration::from_secs_f64((i as f64 + offset) / self.rate)
    }
}

/// The fleet's shared gate: every process builds one from the same spec.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GateSpec {
    redis_url: String,
    prefix: String,
    table: String,
    units_per_second: f64,
}

impl GateSpec {
    async fn connect(&self) -> CapacityGate {
        let client = redis::Client::open(self.redis_url.as_str()).expect("REDIS_URL");
        let connection = redis::aio::ConnectionManager::new(client)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to Redis at {}: {e}; start it with `localstack/stack.sh start redis`",
                    self.redis_url
                )
            });
        let table = TableCapacity::provisioned(
            self.table.clone(),
            self.units_per_second,
            self.units_per_second,
        );
        CapacityGate::builder(connection)
            .prefix(self.prefix.clone())
            .table(table)
            .build()
            .expect("capacity gate")
    }
}

/// What a worker prints, as one JSON line on stdout.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WorkerReport {
    offered: u64,
    succeeded: u64,
    give_ups: BTreeMap<String, u64>,
    /// Of the successful writes, from their scheduled start.
    latencies_ms: Vec<f64>,
    last_completion_unix_ms: u64,
    /// How late the worker was ready for the common start (0: in time).
    late_ms: u64,
}

#[derive(Clone)]
enum Writer {
    Sdk(Client),
    Dynagate(ResilientClient),
}

impl Writer {
    async fn connect(spec: &WorkerSpec) -> Writer {
        let config = local_config(&spec.proxy_url);
        let sdk = |retry: RetryConfig| {
            let config = aws_sdk_dynamodb::config::Builder::from(&config)
                .retry_config(retry)
                .build();
            Writer::Sdk(Client::from_conf(config))
        };
        let resilient = || {
            let policy = RetryPolicy::builder().seed(spec.seed).build();
            ResilientClient::new(&config, policy.expect("retry policy"))
        };
        match spec.variant {
            Variant::SdkStandard => sdk(RetryConfig::standard()),
            Variant::SdkAdaptive => sdk(RetryConfig::adaptive()),
            Variant::Dynagate => Writer::Dynagate(resilient()),
            Variant::DynagateGate => {
                let gate = spec
                    .gate
                    .as_ref()
                    .expect("the gate variant's spec has a gate");
                Writer::Dynagate(resilient().with_gate(gate.connect().await))
            }
        }
    }

    /// `Ok` on success, else why the write was given up. Every variant sends
    /// the same request: the gate asks for `ConsumedCapacity` anyway.
    async fn put(&self, table: &str, key: String) -> Result<(), String> {
        let payload = AttributeValue::S("x".repeat(400));
        match self {
            Writer::Sdk(sdk) => sdk
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(key))
                .item("payload", payload)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_give_up(&e)),
            Writer::Dynagate(client) => {
                let operation = Operation::write("PutItem", table).idempotent().units(1.0);
                client
                    .call(operation, |sdk| {
                        sdk.put_item()
                            .table_name(table)
                            .item("pk", AttributeValue::S(key.clone()))
                            .item("payload", payload.clone())
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.reason().label().to_owned())
            }
        }
    }
}

/// Why the SDK gave a write up: `throttled` (out of attempts or of retry
/// quota), else DynamoDB's error code or the kind of failure.
fn sdk_give_up<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match (error.code(), error) {
        (Some("ProvisionedThroughputExceededException"), _) => "throttled".into(),
        (Some(code), _) => code.into(),
        (None, SdkError::TimeoutError(_)) => "timeout".into(),
        (None, SdkError::DispatchFailure(_)) => "dispatch_failure".into(),
        _ => "other".into(),
    }
}

/// One worker process: offers its share of the load on schedule, then reports.
async fn run_worker(spec: WorkerSpec) -> WorkerReport {
    let writer = Writer::connect(&spec).await;
    let (start, late_ms) = instant_at(spec.start_unix_ms);
    let table: Arc<str> = spec.table.as_str().into();
    let mut writes = JoinSet::new();
    for i in 0..spec.writes() {
        let due = start + spec.due(i);
        tokio::time::sleep_until(due).await;
        let (writer, table) = (writer.clone(), Arc::clone(&table));
        let key = format!("w{}-{i}", spec.index);
        writes.spawn(async move {
            let outcome = writer.put(&table, key).await;
            (outcome, due.elapsed(), unix_ms())
        });
    }
    let mut report = WorkerReport {
        offered: spec.writes(),
        late_ms,
        ..WorkerReport::default()
    };
    report.collect(writes).await;
    report
}

type WriteResult = (Result<(), String>, Duration, u64);

impl WorkerReport {
    /// Waits for the writes in flight, for at most [`DRAIN_LIMIT`]; those
    /// still unfinished then are counted as given up.
    async fn collect(&mut self, mut writes: JoinSet<WriteResult>) {
        let limit = Instant::now() + DRAIN_LIMIT;
        while let Ok(Some(joined)) = tokio::time::timeout_at(limit, writes.join_next()).await {
            let (outcome, latency, finished_unix_ms) = joined.expect("write task");
            self.last_completion_unix_ms = self.last_completion_unix_ms.max(finished_unix_ms);
            match outcome {
                Ok(()) => {
                    self.succeeded += 1;
                    self.latencies_ms.push(latency.as_secs_f64() * 1000.0);
                }
                Err(reason) => *self.give_ups.entry(reason).or_default() += 1,
            }
        }
        if !writes.is_empty() {
            *self.give_ups.entry("unfinished".into()).or_default() += writes.len() as u64;
        }
    }
}

fn worker_main(spec: &str) {
    let spec: WorkerSpec = serde_json::from_str(spec).expect(WORKER_ENV);
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime")
        .block_on(run_worker(spec));
    println!("{}", serde_json::to_string(&report).expect("report"));
}

fn unix_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.expect("clock after 1970").as_millis() as u64
}

/// The instant of a Unix time in milliseconds (now, if it has passed), and
/// how many milliseconds it has passed by.
fn instant_at(unix_ms_at: u64) -> (Instant, u64) {
    let now = unix_ms();
    let wait = Duration::from_millis(unix_ms_at.saturating_sub(now));
    (Instant::now() + wait, now.saturating_sub(unix_ms_at))
}

// ---------------------------------------------------------------- parent side

/// The worker processes of one run. Dropping it kills those still running.
struct Fleet {
    children: Vec<Child>,
}

impl Fleet {
    fn spawn(specs: &[WorkerSpec]) -> Fleet {
        let exe = std::env::current_exe().expect("the benchmark's own path");
        let mut fleet = Fleet {
            children: Vec::new(),
        };
        for spec in specs {
            let child = Command::new(&exe)
                .env(WORKER_ENV, serde_json::to_string(spec).expect("spec"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting a worker process");
            fleet.children.push(child);
        }
        fleet
    }

    /// Reads every worker's report, in a task that ends when all are in.
    fn reports(&mut self) -> JoinHandle<Vec<WorkerReport>> {
        let readers: Vec<_> = self
            .children
            .iter_mut()
            .map(|child| {
                let mut stdout = child.stdout.take().expect("piped stdout");
                tokio::task::spawn_blocking(move || {
                    let mut out = String::new();
                    stdout.read_to_string(&mut out).map(|_| out)
                })
            })
            .collect();
        tokio::spawn(async move {
            let mut reports = Vec::new();
            for reader in readers {
                let out = reader.await.expect("reader").expect("a worker's stdout");
                let last_line = out.lines().last().unwrap_or_default();
                let report = serde_json::from_str(last_line)
                    .unwrap_or_else(|e| panic!("no report from a worker ({e}): {out:?}"));
                reports.push(report);
            }
            reports
        })
    }

    /// Checks that every worker exited successfully (they all closed stdout,
    /// so they are exiting).
    fn reap(&mut self) {
        for child in &mut self.children {
            let status = child.wait().expect("waiting for a worker");
            assert!(status.success(), "a worker failed: {status}");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One second of a run, from the proxy's counters and the gate.
struct Second {
    second: u64,
    capacity: u32,
    /// Writes the fleet's schedule made due in this second.
    offered: u64,
    succeeded: u64,
    throttled: u64,
    gate_rate: Option<f64>,
}

/// Requests the proxy let through to DynamoDB Local.
fn successes(stats: &OperationStats) -> u64 {
    let refused = stats.throttled_total() + stats.injected_total() + stats.upstream_errors;
    stats.requests.saturating_sub(refused)
}

/// What a run of one variant came to.
struct Outcome {
    variant: Variant,
    offered: u64,
    succeeded: u64,
    give_ups: BTreeMap<String, u64>,
    /// Of the successful writes, sorted.
    latencies_ms: Vec<f64>,
    wall_seconds: f64,
    capacity_seconds: f64,
    attempts: u64,
    throttled: u64,
    late_ms: u64,
    timeline: Vec<Second>,
}

impl Outcome {
    fn goodput(&self) -> f64 {
        self.succeeded as f64 / self.capacity_seconds
    }

    fn writes_per_second(&self) -> f64 {
        self.succeeded as f64 / self.wall_seconds
    }

    fn attempts_per_success(&self) -> f64 {
        self.attempts as f64 / self.succeeded.max(1) as f64
    }

    fn give_ups(&self) -> u64 {
        self.give_ups.values().sum()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let sorted = &self.latencies_ms;
        if sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }
}

/// One variant in one scenario, against a fresh table behind its own proxy.
struct Run<'a> {
    bench: &'a Bench,
    variant: Variant,
    scenario: Scenario,
    table: String,
}

impl Run<'_> {
    async fn execute(self) -> Outcome {
        create_table(&self.bench.admin, &self.table).await;
        let proxy = start_proxy(&self.bench.upstream, &self.table, self.bench.capacity).await;
        let gate = self.gate_spec();
        let parent_gate = match &gate {
            Some(spec) => Some(spec.connect().await),
            None => None,
        };
        let start_unix_ms = unix_ms() + STARTUP.as_millis() as u64;
        let specs: Vec<_> = (0..self.bench.processes)
            .map(|index| self.worker_spec(index, &proxy, start_unix_ms, gate.clone()))
            .collect();
        let mut fleet = Fleet::spawn(&specs);
        let reports = fleet.reports();
        let (start, _) = instant_at(start_unix_ms);
        let timeline = self
            .watch(&proxy, parent_gate.as_ref(), start, &reports)
            .await;
        let reports = reports.await.expect("the workers' reports");
        fleet.reap();
        let stats = proxy.stats().operation(&self.table, "PutItem");
        proxy.shutdown().await;
        let _ = self
            .bench
            .admin
            .delete_table()
            .table_name(&self.table)
            .send()
            .await;
        self.outcome(reports, &stats, start_unix_ms, timeline)
    }

    fn gate_spec(&self) -> Option<GateSpec> {
        (self.variant == Variant::DynagateGate).then(|| GateSpec {
            redis_url: self.bench.redis_url.clone(),
            prefix: format!("goodput-{}", self.bench.run_id),
            table: self.table.clone(),
            units_per_second: f64::from(self.bench.capacity),
        })
    }

    fn worker_spec(
        &self,
        index: u32,
        proxy: &RunningProxy,
        start_unix_ms: u64,
        gate: Option<GateSpec>,
    ) -> WorkerSpec {
        WorkerSpec {
            variant: self.variant,
            index,
            processes: self.bench.processes,
            table: self.table.clone(),
            proxy_url: proxy.url(),
            rate: 2.0 * f64::from(self.bench.capacity) / f64::from(self.bench.processes),
            seconds: self.bench.seconds,
            start_unix_ms,
            seed: 1 + u64::from(index),
            gate,
        }
    }

    /// Samples the proxy's counters (and the gate's rate) at every second
    /// from the start until the workers are done; in the halved scenario,
    /// halves the table's capacity at half time.
    async fn watch(
        &self,
        proxy: &RunningProxy,
        gate: Option<&CapacityGate>,
        start: Instant,
        workers: &JoinHandle<Vec<WorkerReport>>,
    ) -> Vec<Second> {
        let mut timeline = Vec::new();
        let mut before = OperationStats::default();
        let last = self.bench.seconds + (STARTUP + DRAIN_LIMIT).as_secs() + 5;
        for second in 1..=last {
            tokio::time::sleep_until(start + Duration::from_secs(second)).await;
            let now = proxy.stats().operation(&self.table, "PutItem");
            let gate_rate = match gate {
                Some(gate) => gate
                    .rate(&self.table, Direction::Write)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            };
            timeline.push(Second {
                second,
                capacity: self.bench.capacity_in(self.scenario, second),
                offered: self.bench.offered_in(second),
                succeeded: successes(&now).saturating_sub(successes(&before)),
                throttled: now
                    .throttled_total()
                    .saturating_sub(before.throttled_total()),
                gate_rate,
            });
            if self.scenario == Scenario::Halved && second == self.bench.seconds / 2 {
                proxy.set_rules(rules(&self.table, self.bench.capacity / 2));
            }
            before = now;
            if workers.is_finished() {
                break;
            }
        }
        timeline
    }

    fn outcome(
        &self,
        reports: Vec<WorkerReport>,
        stats: &OperationStats,
        start_unix_ms: u64,
        timeline: Vec<Second>,
    ) -> Outcome {
        let last_completion = reports.iter().map(|r| r.last_completion_unix_ms).max();
        let wall_ms = last_completion.unwrap_or(start_unix_ms) - start_unix_ms;
        let wall_seconds = (wall_ms as f64 / 1000.0).max(1.0);
        let mut give_ups = BTreeMap::new();
        let mut latencies_ms = Vec::new();
        for report in &reports {
            for (reason, n) in &report.give_ups {
                *give_ups.entry(reason.clone()).or_default() += n;
            }
            latencies_ms.extend(&report.latencies_ms);
        }
        latencies_ms.sort_by(f64::total_cmp);
        Outcome {
            variant: self.variant,
            offered: reports.iter().map(|r| r.offered).sum(),
            succeeded: reports.iter().map(|r| r.succeeded).sum(),
            give_ups,
            latencies_ms,
            wall_seconds,
            capacity_seconds: self.bench.capacity_seconds(self.scenario, wall_seconds),
            attempts: stats.requests,
            throttled: stats.throttled_total(),
            late_ms: reports.iter().map(|r| r.late_ms).max().unwrap_or(0),
            timeline,
        }
    }
}

/// The table's capacity rule: `write_units` WCU/s, a one-second bank, full at
/// start (a bank that is reconfigured keeps what it holds, cut to the new size).
fn rules(table: &str, write_units: u32) -> RuleSet {
    let capacity = Capacity::new(None, Some(write_units))
        .with_burst_seconds(1)
        .with_initial_units(0, u64::from(write_units));
    RuleSet::new(vec![Rule::new(table, "*").with_capacity(capacity)]).expect("rules")
}

async fn start_proxy(upstream: &str, table: &str, write_units: u32) -> RunningProxy {
    FaultProxy::start(
        ProxyConfig::default()
            .with_listen("127.0.0.1:0".parse().unwrap())
            .with_upstream(Upstream::parse(upstream).expect("AWS_ENDPOINT_URL"))
            .with_seed(1)
            .with_rules(rules(table, write_units)),
    )
    .await
    .expect("fault proxy")
}

async fn run(bench: &Bench, scenario: Scenario, variants: &[Variant]) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for &variant in variants {
        let scenario_slug = match scenario {
            Scenario::Steady => "steady",
            Scenario::Halved => "halved",
        };
        let table = format!(
            "goodput-{scenario_slug}-{}-{}",
            variant.slug(),
            bench.run_id
        );
        eprintln!("goodput: {} ({scenario_slug})", variant.name());
        let run = Run {
            bench,
            variant,
            scenario,
            table,
        };
        outcomes.push(run.execute().await);
    }
    outcomes
}

// ------------------------------------------------------------------- printing

fn print_totals(outcomes: &[Outcome]) {
    println!(
        "| variant | goodput | successful writes/s | succeeded / offered | attempts / success | throttled | give-ups | p50 | p99 | wall | give-up reasons |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for o in outcomes {
        println!(
            "| {} | {:.1} % | {:.1} | {} / {} | {:.2} | {} | {} | {:.0} ms | {:.0} ms | {:.1} s | {} |",
            o.variant.name(),
            100.0 * o.goodput(),
            o.writes_per_second(),
            o.succeeded,
            o.offered,
            o.attempts_per_success(),
            o.throttled,
            o.give_ups(),
            o.percentile_ms(50.0),
            o.percentile_ms(99.0),
            o.wall_seconds,
            o.give_ups
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    for o in outcomes.iter().filter(|o| o.late_ms > 0) {
        println!(
            "(a worker of {} started {} ms after the common start)",
            o.variant.name(),
            o.late_ms
        );
    }
}

fn print_timeline(outcome: &Outcome) {
    println!();
    println!("{}, per second:", outcome.variant.name());
    println!();
    println!(
        "| second | capacity (WCU/s) | offered | successful writes | throttled | gate rate (WCU/s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for s in &outcome.timeline {
        let rate = s.gate_rate.map_or("-".to_owned(), |r| format!("{r:.1}"));
        println!(
            "| {} | {} | {} | {} | {} | {rate} |",
            s.second, s.capacity, s.offered, s.succeeded, s.throttled
        );
    }
}

fn print_ratios(ours: &Outcome, theirs: &Outcome) {
    let ratio = |a: f64, b: f64| match a / b {
        r if !r.is_finite() => "-".to_owned(),
        r if r > 0.0 && r < 0.01 => format!("{r:.4}x"),
        r => format!("{r:.2}x"),
    };
    println!(
        "{} vs {}: {} goodput, {} attempts per success, {} throttled, {} give-ups, {} p99",
        ours.variant.name(),
        theirs.variant.name(),
        ratio(ours.goodput(), theirs.goodput()),
        ratio(ours.attempts_per_success(), theirs.attempts_per_success()),
        ratio(ours.throttled as f64, theirs.throttled as f64),
        ratio(ours.give_ups() as f64, theirs.give_ups() as f64),
        ratio(ours.percentile_ms(99.0), theirs.percentile_ms(99.0)),
    );
}

async fn bench_main() {
    let bench = Bench::from_env();
    println!(
        "goodput: {} processes offer {} PutItem/s in total (1 WCU each, open loop) for {} s \
         against {} WCU/s provisioned (fault proxy capacity model, 1 s burst bank full at start), \
         DynamoDB Local behind it",
        bench.processes,
        2 * bench.capacity,
        bench.seconds,
        bench.capacity
    );

    let steady = run(
        &bench,
        Scenario::Steady,
        &[
            Variant::SdkStandard,
            Variant::SdkAdaptive,
            Variant::Dynagate,
            Variant::DynagateGate,
        ],
    )
    .await;
    println!();
    print_totals(&steady);
    println!();
    print_ratios(&steady[3], &steady[0]);
    print_ratios(&steady[3], &steady[1]);

    let halved = run(
        &bench,
        Scenario::Halved,
        &[Variant::DynagateGate, Variant::Dynagate],
    )
    .await;
    println!();
    println!(
        "Capacity halved to {} WCU/s after second {}, the gate still configured with {} WCU/s; \
         goodput relative to the capacity in force:",
        bench.capacity / 2,
        bench.seconds / 2,
        bench.capacity
    );
    for outcome in &halved {
        print_timeline(outcome);
    }
    println!();
    print_totals(&halved);
}

fn main() {
    // Test runners list every target's tests (`--list`); a bench program has none.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    match std::env::var(WORKER_ENV) {
        Ok(spec) => worker_main(&spec),
        Err(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(bench_main()),
    }
}
