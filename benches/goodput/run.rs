//! One variant in one scenario: a fresh table behind its own fault proxy,
//! the fleet started against it, and the proxy's counters sampled each second.

use std::collections::BTreeMap;
use std::time::Duration;

use dynagate::Direction;

use dynagate::capacity::CapacityGate;
use dynagate_fault_proxy::{
    Capacity, FaultProxy, OperationStats, ProxyConfig, Rule, RuleSet, RunningProxy, Upstream,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::bench::{Bench, DRAIN_LIMIT, STARTUP, Scenario, Variant};
use crate::common::cpu::process_ticks;
use crate::common::create_table;
use crate::fleet::Fleet;
use crate::outcome::{Outcome, Second, successes};
use crate::worker::{GateSpec, WorkerReport, WorkerSpec, instant_at, unix_ms};

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
        let server_before = self.bench.server_pid.and_then(process_ticks);
        let mut fleet = Fleet::spawn(&specs);
        let reports = fleet.reports();
        let (start, _) = instant_at(start_unix_ms);
        let timeline = self
            .watch(&proxy, parent_gate.as_ref(), start, &reports)
            .await;
        let reports = reports.await.expect("the workers' reports");
        let server_after = self.bench.server_pid.and_then(process_ticks);
        let server_ticks = server_before
            .zip(server_after)
            .map(|(before, after)| after.saturating_sub(before));
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
        self.outcome(reports, &stats, start_unix_ms, timeline, server_ticks)
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
        server_ticks: Option<u64>,
    ) -> Outcome {
        let last_completion = reports.iter().map(|r| r.last_completion_unix_ms).max();
        let wall_ms = last_completion.unwrap_or(start_unix_ms) - start_unix_ms;
        let wall_seconds = (wall_ms as f64 / 1000.0).max(1.0);
        let mut give_ups = BTreeMap::new();
        let mut latencies_ms = Vec::new();
        let mut outcomes_ms = Vec::new();
        for report in &reports {
            for (reason, n) in &report.give_ups {
                *give_ups.entry(reason.clone()).or_default() += n;
            }
            latencies_ms.extend(&report.latencies_ms);
            outcomes_ms.extend(&report.outcomes_ms);
        }
        latencies_ms.sort_by(f64::total_cmp);
        outcomes_ms.sort_by(f64::total_cmp);
        Outcome {
            variant: self.variant,
            offered: reports.iter().map(|r| r.offered).sum(),
            succeeded: reports.iter().map(|r| r.succeeded).sum(),
            give_ups,
            latencies_ms,
            outcomes_ms,
            wall_seconds,
            capacity_seconds: self.bench.capacity_seconds(self.scenario, wall_seconds),
            attempts: stats.requests,
            throttled: stats.throttled_total(),
            late_ms: reports.iter().map(|r| r.late_ms).max().unwrap_or(0),
            timeline,
            client_ticks: reports.iter().map(|r| r.cpu_ticks).sum(),
            server_ticks,
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

pub(crate) async fn run(bench: &Bench, scenario: Scenario, variants: &[Variant]) -> Vec<Outcome> {
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
