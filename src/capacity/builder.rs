//! Builds a [`CapacityGate`]: tables, burst, queue, adaptation, Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::breaker::{BreakerSettings, CircuitBreaker};
use crate::capacity::bucket::{Bucket, Queue, units_of};
use crate::capacity::gate::GateParts;
use crate::capacity::{Adaptive, CapacityGate, TableCapacity};
use crate::error::ConfigError;
use crate::operation::Direction;
use crate::redis_support::RedisConnection;

/// Builds a [`CapacityGate`].
#[derive(Debug)]
pub struct CapacityGateBuilder {
    connection: RedisConnection,
    prefix: String,
    tables: Vec<TableCapacity>,
    burst: Duration,
    max_wait: Duration,
    queue: Queue,
    adaptive: Adaptive,
    redis_deadline: Duration,
    breaker: Option<BreakerSettings>,
}

impl CapacityGateBuilder {
    pub(crate) fn new(connection: RedisConnection) -> CapacityGateBuilder {
        CapacityGateBuilder {
            connection,
            prefix: "dynagate:capacity".into(),
            tables: Vec::new(),
            burst: Duration::ZERO,
            max_wait: Duration::from_secs(1),
            queue: Queue::default(),
            adaptive: Adaptive::default(),
            redis_deadline: Duration::from_millis(50),
            breaker: None,
        }
    }

    /// The gate's breaker unless [`breaker`](CapacityGateBuilder::breaker)
    /// says otherwise: 5 failures in a row, spanning at least 50 ms, open the
    /// circuit for 5 s. Longer open than the limiter's (1 s): an ungated
    /// call costs nothing but the pacing, a probe of a dead Redis costs the
    /// 50 ms deadline.
    pub fn default_breaker() -> BreakerSettings {
        BreakerSettings::new(5, Duration::from_secs(5))
            .expect("valid")
            .failing_for(Duration::from_millis(50))
    }

    /// The namespace of the gate's Redis keys (default `dynagate:capacity`).
    /// Every instance of a fleet uses the same one.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Gates a table (and the indexes it lists) at its capacity.
    pub fn table(mut self, capacity: TableCapacity) -> Self {
        self.tables.push(capacity);
        self
    }

    /// How far ahead of the rate the fleet may go after an idle spell
    /// (default none: calls go at the rate, and a burst waits its turn
    /// within [`max_wait`](CapacityGateBuilder::max_wait)).
    ///
    /// Without a burst no second carries more than the rate's units (plus
    /// the one call an idle bucket lets through at once, whatever its size).
    /// A burst of `b` lets a second carry `b`'s worth more, which DynamoDB
    /// takes from its burst bank (up to 300 s of unused capacity). The bank
    /// is best effort and is empty on a new table and after a busy spell:
    /// then the calls above the rate are throttled, every throttle of a new
    /// epoch cuts the fleet's rate, and the rate takes seconds to climb back
    /// ([`Adaptive::increase`]) — capacity lost to a burst that waiting
    /// would have absorbed. Set one only for a table whose bank you know,
    /// and keep it well under it.
    pub fn burst(mut self, burst: Duration) -> Self {
        self.burst = burst;
        self
    }

    /// The longest a call waits for its turn (default 1 s), however long its
    /// deadline: a longer wait is refused at once as over capacity. This
    /// bounds a burst's queue; a standing queue is kept to
    /// [`queue_target`](CapacityGateBuilder::queue_target). A short queue
    /// lets a cut rate take effect quickly: calls queued at the old rate go
    /// out at the old pace.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The wait a standing queue is kept within: CoDel's target (RFC 8289,
    /// "Controlled Delay Active Queue Management"). By default 10 ms, or the
    /// time 4 units take at the table's capacity when that is longer (80 ms
    /// at 50 units/s): a queue of a call or two is not a standing one.
    ///
    /// A burst may queue up to [`max_wait`](CapacityGateBuilder::max_wait).
    /// Once the fleet's waits have stayed above the target for a
    /// [`queue_interval`](CapacityGateBuilder::queue_interval), the queue is
    /// standing (the load is above the capacity, not a burst): from then a
    /// call whose wait would be above the target is refused at once as over
    /// capacity, with its `retry_after`, and the calls admitted wait at most
    /// the target while the table stays busy. Queueing longer would add
    /// latency without adding goodput. The queue stops standing after an
    /// interval with no wait above the target. The state is in the bucket's
    /// Redis hash, so every instance agrees; a hot key's bucket counts (a
    /// call's wait is the longer of its table's and its key's).
    ///
    /// A target at or above `max_wait` turns shedding off.
    pub fn queue_target(mut self, target: Duration) -> Self {
        self.queue.target = Some(target);
        self
    }

    /// How long the waits stay above the
    /// [`queue_target`](CapacityGateBuilder::queue_target) before the queue
    /// counts as standing, and how long without a wait above it ends that:
    /// CoDel's interval (RFC 8289). By default 100 ms, or ten targets when
    /// that is longer (the RFC's target is 5 to 10% of the interval). About
    /// the time a burst takes to drain; zero sheds every wait above the
    /// target at once.
    pub fn queue_interval(mut self, interval: Duration) -> Self {
        self.queue.interval = Some(interval);
        self
    }

    /// How the rate adapts to throttles (default [`Adaptive::default`]).
    pub fn adaptive(mut self, adaptive: Adaptive) -> Self {
        self.adaptive = adaptive;
        self
    }

    /// The most a Redis call may take before the gate lets the call through
    /// ungated (default 50 ms).
    pub fn redis_deadline(mut self, deadline: Duration) -> Self {
        self.redis_deadline = deadline;
        self
    }

    /// When to stop asking a failing Redis (default: 5 failures in a row,
    /// spanning at least 50 ms, open the circuit for 5 s; see
    /// [`default_breaker`](CapacityGateBuilder::default_breaker)).
    pub fn breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = Some(settings);
        self
    }

    /// Checks the settings and builds the gate.
    pub fn build(self) -> Result<CapacityGate, ConfigError> {
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(ConfigError::invalid(
                "prefix",
                "must be non-empty and without braces (it goes inside a cluster hash tag)",
            ));
        }
        if self.tables.is_empty() {
            return Err(ConfigError::invalid(
                "table",
                "gate at least one table; calls to tables it does not know go ungated",
            ));
        }
        if self.redis_deadline.is_zero() {
            return Err(ConfigError::invalid("redis_deadline", "must be above zero"));
        }
        let mut targets = HashMap::new();
        for table in &self.tables {
            table.validate()?;
            let indexes = table
                .indexes()
                .map(|(index, throughput)| (format!("{}/{index}", table.table()), throughput));
            for (target, throughput) in
                std::iter::once((table.table().to_owned(), table.throughput())).chain(indexes)
            {
                let bucket = |direction: Direction| {
                    Arc::new(Bucket::new(
                        &self.prefix,
                        target.clone(),
                        direction,
                        units_of(direction, throughput),
                        self.burst,
                        self.adaptive,
                        self.queue,
                    ))
                };
                let buckets = [bucket(Direction::Read), bucket(Direction::Write)];
                targets.insert(target, buckets);
            }
        }
        let breaker = self
            .breaker
            .unwrap_or_else(CapacityGateBuilder::default_breaker);
        Ok(CapacityGate::from_parts(GateParts {
            connection: self.connection,
            targets,
            max_wait: self.max_wait,
            adaptive: self.adaptive,
            redis_deadline: self.redis_deadline,
            breaker: CircuitBreaker::new("capacity", breaker),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_breaker_is_what_its_doc_says() {
        let settings = CapacityGateBuilder::default_breaker();
        assert_eq!(settings.failures(), 5);
        assert_eq!(settings.failing_span(), Duration::from_millis(50));
        assert_eq!(settings.open_for(), Duration::from_secs(5));
    }
}
