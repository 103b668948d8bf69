//! A worker process of the fleet: one instance of the service, with its own
//! client, offering its share of the load on schedule and reporting as JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynagate::ResilientClient;
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bench::{DRAIN_LIMIT, Variant, WORKER_ENV};
use crate::common::cpu::own_ticks;
use crate::common::local_config;
use crate::common::writer::Writer;

/// What a worker process is told, as JSON in [`WORKER_ENV`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerSpec {
    pub(crate) variant: Variant,
    /// This worker's number in the fleet, from 0.
    pub(crate) index: u32,
    pub(crate) processes: u32,
    pub(crate) table: String,
    pub(crate) proxy_url: String,
    /// Writes per second this worker offers.
    pub(crate) rate: f64,
    pub(crate) seconds: u64,
    /// The common start, in milliseconds since the Unix epoch.
    pub(crate) start_unix_ms: u64,
    pub(crate) seed: u64,
    pub(crate) gate: Option<GateSpec>,
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
pub(crate) struct GateSpec {
    pub(crate) redis_url: String,
    pub(crate) prefix: String,
    pub(crate) table: String,
    pub(crate) units_per_second: f64,
}

impl GateSpec {
    pub(crate) async fn connect(&self) -> CapacityGate {
        let client = redis::Client::open(self.redis_url.as_str()).expect("REDIS_URL");
        let connection = redis::aio::ConnectionManager::new(client)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to Redis at {}: {e}; start it with `stack/stack.sh start redis`",
                    self.redis_url
                )
            });
        let table = TableCapacity::provisioned(
            self.table.clone(),
            Throughput {
                read: self.units_per_second,
                write: self.units_per_second,
            },
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
pub(crate) struct WorkerReport {
    pub(crate) offered: u64,
    pub(crate) succeeded: u64,
    pub(crate) give_ups: BTreeMap<String, u64>,
    /// Of the successful writes, from their scheduled start.
    pub(crate) latencies_ms: Vec<f64>,
    /// Of every write that finished (succeeded or gave up), from its
    /// scheduled start to its outcome: what a caller waits for an answer.
    pub(crate) outcomes_ms: Vec<f64>,
    pub(crate) last_completion_unix_ms: u64,
    /// How late the worker was ready for the common start (0: in time).
    pub(crate) late_ms: u64,
    /// This process's CPU time (clock ticks) from when its client was ready
    /// until its writes were in: what offering its share of the load cost.
    pub(crate) cpu_ticks: u64,
}

/// The worker's client. Every variant sends the same request: the gate asks
/// for `ConsumedCapacity` anyway, so all of them do.
async fn connect(spec: &WorkerSpec) -> Writer {
    let config = local_config(&spec.proxy_url);
    let resilient = || {
        let policy = RetryPolicy::builder().seed(spec.seed).build();
        ResilientClient::new(&config, policy.expect("retry policy"))
    };
    let writer = match spec.variant {
        Variant::Sdk(baseline) => Writer::sdk_config(baseline.config(&config)),
        Variant::Dynagate => Writer::dynagate(resilient()),
        Variant::DynagateGate => {
            let gate = spec
                .gate
                .as_ref()
                .expect("the gate variant's spec has a gate");
            Writer::dynagate(resilient().with_gate(gate.connect().await))
        }
    };
    writer.with_consumed_capacity()
}

/// One worker process: offers its share of the load on schedule, then reports.
pub(crate) async fn run_worker(spec: WorkerSpec) -> WorkerReport {
    let writer = connect(&spec).await;
    let ticks_before = own_ticks();
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
    report.cpu_ticks = own_ticks().saturating_sub(ticks_before);
    report
}

type WriteResult = (Result<(), String>, Duration, u64);

impl WorkerReport {
    /// Waits for the writes in flight, for at most [`DRAIN_LIMIT`]; those
    /// still unfinished then are counted as given up.
    pub(crate) async fn collect(&mut self, mut writes: JoinSet<WriteResult>) {
        let limit = Instant::now() + DRAIN_LIMIT;
        while let Ok(Some(joined)) = tokio::time::timeout_at(limit, writes.join_next()).await {
            let (outcome, latency, finished_unix_ms) = joined.expect("write task");
            self.last_completion_unix_ms = self.last_completion_unix_ms.max(finished_unix_ms);
            self.outcomes_ms.push(latency.as_secs_f64() * 1000.0);
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

pub(crate) fn worker_main(spec: &str) {
    let spec: WorkerSpec = serde_json::from_str(spec).expect(WORKER_ENV);
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("worker runtime")
        .block_on(run_worker(spec));
    println!("{}", serde_json::to_string(&report).expect("report"));
}

pub(crate) fn unix_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
    since_epoch.expect("clock after 1970").as_millis() as u64
}

/// The instant of a Unix time in milliseconds (now, if it has passed), and
/// how many milliseconds it has passed by.
pub(crate) fn instant_at(unix_ms_at: u64) -> (Instant, u64) {
    let now = unix_ms();
    let wait = Duration::from_millis(unix_ms_at.saturating_sub(now));
    (Instant::now() + wait, now.saturating_sub(unix_ms_at))
}
