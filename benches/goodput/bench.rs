//! The run's settings and what it compares: the variants, the scenarios,
//! and the capacity and load each second of a run has.

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::common::cpu::{listening_pid, local_port};
use crate::common::sdk_baseline::SdkBaseline;
use crate::common::{endpoint, env_number, local_config};
use crate::worker::unix_ms;

/// Set, to the worker's [`WorkerSpec`](crate::worker::WorkerSpec) as JSON, in a worker's environment.
pub(crate) const WORKER_ENV: &str = "GOODPUT_WORKER";
/// Time the workers get to start and connect before the common start.
pub(crate) const STARTUP: Duration = Duration::from_secs(2);
/// How long a worker waits for its writes in flight after offering the last.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Variant {
    Sdk(SdkBaseline),
    Dynagate,
    DynagateGate,
}

impl Variant {
    /// Every variant of the steady scenario, in the order of its table: the
    /// SDK's baselines (the fair fight first), then dynagate.
    pub(crate) const ALL: [Variant; 6] = [
        Variant::Sdk(SdkBaseline::ALL[0]),
        Variant::Sdk(SdkBaseline::ALL[1]),
        Variant::Sdk(SdkBaseline::ALL[2]),
        Variant::Sdk(SdkBaseline::ALL[3]),
        Variant::Dynagate,
        Variant::DynagateGate,
    ];

    /// The variant's name, numbered by its place in [`Variant::ALL`].
    pub(crate) fn name(self) -> String {
        let number = Variant::ALL
            .iter()
            .position(|&v| v == self)
            .map_or(0, |i| i + 1);
        let label = match self {
            Variant::Sdk(baseline) => baseline.name(),
            Variant::Dynagate => "dynagate, no gate",
            Variant::DynagateGate => "dynagate + fleet capacity gate",
        };
        format!("{number}. {label}")
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Variant::Sdk(baseline) => baseline.slug(),
            Variant::Dynagate => "dynagate",
            Variant::DynagateGate => "gate",
        }
    }
}

/// Whether the table keeps its capacity, or loses half of it at half time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    Steady,
    Halved,
}

/// The settings of the whole run.
pub(crate) struct Bench {
    pub(crate) capacity: u32,
    pub(crate) seconds: u64,
    pub(crate) processes: u32,
    pub(crate) upstream: String,
    pub(crate) redis_url: String,
    pub(crate) run_id: String,
    pub(crate) admin: Client,
    /// DynamoDB Local's process, if it runs on this machine: its CPU time
    /// per successful write goes beside the client's.
    pub(crate) server_pid: Option<u32>,
}

impl Bench {
    pub(crate) fn from_env() -> Bench {
        let upstream = endpoint();
        Bench {
            capacity: env_number("BENCH_CAPACITY", 100).max(2) as u32,
            seconds: env_number("BENCH_SECONDS", 20).max(2),
            processes: env_number("BENCH_PROCESSES", 8).max(1) as u32,
            admin: Client::new(&local_config(&upstream)),
            server_pid: local_port(&upstream).and_then(listening_pid),
            upstream,
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            run_id: format!("{}-{}", std::process::id(), unix_ms() % 100_000),
        }
    }

    /// The table's write capacity during `second` (1-based) of a run.
    pub(crate) fn capacity_in(&self, scenario: Scenario, second: u64) -> u32 {
        match scenario {
            Scenario::Halved if second > self.seconds / 2 => self.capacity / 2,
            _ => self.capacity,
        }
    }

    /// Writes the fleet's schedule makes due during `second` (1-based).
    pub(crate) fn offered_in(&self, second: u64) -> u64 {
        if second <= self.seconds {
            2 * u64::from(self.capacity)
        } else {
            0
        }
    }

    /// Capacity units the table provided over the first `wall` seconds.
    pub(crate) fn capacity_seconds(&self, scenario: Scenario, wall: f64) -> f64 {
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
