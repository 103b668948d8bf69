//! What a run came to: per-second samples and the totals of one variant.

use std::collections::BTreeMap;

use dynagate_fault_proxy::OperationStats;

use crate::bench::Variant;

/// One second of a run, from the proxy's counters and the gate.
pub(crate) struct Second {
    pub(crate) second: u64,
    pub(crate) capacity: u32,
    /// Writes the fleet's schedule made due in this second.
    pub(crate) offered: u64,
    pub(crate) succeeded: u64,
    pub(crate) throttled: u64,
    pub(crate) gate_rate: Option<f64>,
}

/// Requests the proxy let through to DynamoDB Local.
pub(crate) fn successes(stats: &OperationStats) -> u64 {
    let refused = stats.throttled_total() + stats.injected_total() + stats.upstream_errors;
    stats.requests.saturating_sub(refused)
}

/// What a run of one variant came to.
pub(crate) struct Outcome {
    pub(crate) variant: Variant,
    pub(crate) offered: u64,
    pub(crate) succeeded: u64,
    pub(crate) give_ups: BTreeMap<String, u64>,
    /// Of the successful writes, sorted.
    pub(crate) latencies_ms: Vec<f64>,
    /// Time to outcome of every write that finished (successes and
    /// give-ups), sorted: a refusal that comes back at once counts as fast.
    pub(crate) outcomes_ms: Vec<f64>,
    pub(crate) wall_seconds: f64,
    pub(crate) capacity_seconds: f64,
    pub(crate) attempts: u64,
    pub(crate) throttled: u64,
    pub(crate) late_ms: u64,
    pub(crate) timeline: Vec<Second>,
    /// The worker processes' CPU time, summed, in clock ticks.
    pub(crate) client_ticks: u64,
    /// DynamoDB Local's CPU time over the run, in clock ticks, if found.
    pub(crate) server_ticks: Option<u64>,
}

impl Outcome {
    pub(crate) fn goodput(&self) -> f64 {
        self.succeeded as f64 / self.capacity_seconds
    }

    pub(crate) fn writes_per_second(&self) -> f64 {
        self.succeeded as f64 / self.wall_seconds
    }

    pub(crate) fn attempts_per_success(&self) -> f64 {
        self.attempts as f64 / self.succeeded.max(1) as f64
    }

    pub(crate) fn give_ups(&self) -> u64 {
        self.give_ups.values().sum()
    }

    /// Client CPU ticks per successful write.
    pub(crate) fn client_cpu_per_success(&self) -> f64 {
        self.client_ticks as f64 / self.succeeded.max(1) as f64
    }

    /// Of the successful writes' latencies.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
        nearest_rank(&self.latencies_ms, p)
    }

    /// Of every finished write's time to outcome.
    pub(crate) fn outcome_percentile_ms(&self, p: f64) -> f64 {
        nearest_rank(&self.outcomes_ms, p)
    }
}

/// The nearest-rank percentile of sorted values (0 when there are none).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
