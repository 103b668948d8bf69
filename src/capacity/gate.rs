//! The gate itself: one Redis script call before an attempt, and one after
//! only when the estimate was off or DynamoDB throttled anyway.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::capacity::consumed::{self, Watched};
use crate::capacity::table::{TableCapacity, Throughput};
use crate::error::{ConfigError, LimiterError};
use crate::limiter::RedisConnection;
use crate::limiter::connection::run_script;
use crate::limiter::policy::{BreakerSettings, CircuitBreaker};
use crate::retry::{ErrorKind, Gate, Operation};

/// The Lua source of the gate's script; its contract is described at its top.
pub const SCRIPT: &str = include_str!("capacity.lua");

static SCRIPT_HASH: LazyLock<String> =
    LazyLock::new(|| redis::Script::new(SCRIPT).get_hash().to_owned());

/// Reads or writes: each has its own units and its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read capacity units.
    Read,
    /// Write capacity units.
    Write,
}

impl Direction {
    /// `"read"` or `"write"`, for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }

    fn of(self, throughput: Throughput) -> f64 {
        match self {
            Direction::Read => throughput.read,
            Direction::Write => throughput.write,
        }
    }

    /// DynamoDB's per-partition ceiling: 3000 read or 1000 write units/s.
    fn partition_limit(self) -> f64 {
        match self {
            Direction::Read => 3000.0,
            Direction::Write => 1000.0,
        }
    }
}

/// How the shared rate adapts when DynamoDB throttles despite the gate
/// (capacity lowered, other writers on the table, a hot key): additive
/// increase, multiplicative decrease, like TCP's congestion control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptive {
    decrease: f64,
    increase: f64,
    floor: f64,
}

impl Default for Adaptive {
    /// Cut to 70% on a throttle, climb back by 5% of the capacity per second,
    /// never below 5% of it.
    fn default() -> Self {
        Adaptive {
            decrease: 0.7,
            increase: 0.05,
            floor: 0.05,
        }
    }
}

impl Adaptive {
    /// `decrease`: the factor a throttle cuts the rate by (0 < d < 1);
    /// `increase`: the share of the capacity the rate climbs back per second
    /// (> 0); `floor`: the share of the capacity it never goes below (0 < f <= 1).
    pub fn new(decrease: f64, increase: f64, floor: f64) -> Result<Adaptive, ConfigError> {
        if !(decrease > 0.0 && decrease < 1.0) {
            return Err(ConfigError::invalid("decrease", "must be between 0 and 1"));
        }
        if !(increase > 0.0 && increase.is_finite()) {
            return Err(ConfigError::invalid("increase", "must be above zero"));
        }
        if !(floor > 0.0 && floor <= 1.0) {
            return Err(ConfigError::invalid(
                "floor",
                "must be above 0 and at most 1",
            ));
        }
        Ok(Adaptive {
            decrease,
            increase,
            floor,
        })
    }
}

/// A token bucket per table (and index) and direction, in Redis, that every
/// instance of a fleet takes from before it calls DynamoDB: together they
/// stay under the table's capacity instead of each finding it by being
/// throttled. See [the module](crate::capacity).
///
/// Cheap to clone: clones share the connection and the circuit breaker.
#[derive(Debug, Clone)]
pub struct CapacityGate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    connection: RedisConnection,
    /// Per table (`table`) or index (`table/index`), a bucket per direction.
    targets: HashMap<String, [Arc<Bucket>; 2]>,
    max_wait: Duration,
    adaptive: Adaptive,
    redis_deadline: Duration,
    breaker: CircuitBreaker,
}

/// Builds a [`CapacityGate`].
#[derive(Debug)]
pub struct CapacityGateBuilder {
    connection: RedisConnection,
    prefix: String,
    tables: Vec<TableCapacity>,
    burst: Duration,
    max_wait: Duration,
    adaptive: Adaptive,
    redis_deadline: Duration,
    breaker: Option<BreakerSettings>,
}

impl CapacityGate {
    /// A builder over a Redis connection (a single Redis or a cluster). The
    /// gate fails open: when Redis is slow or down, calls go ungated and
    /// DynamoDB's throttling, answered by the retry loop, is the limit.
    pub fn builder(connection: impl Into<RedisConnection>) -> CapacityGateBuilder {
        CapacityGateBuilder {
            connection: connection.into(),
            prefix: "dynagate:capacity".into(),
            tables: Vec::new(),
            burst: Duration::from_millis(500),
            max_wait: Duration::from_secs(1),
            adaptive: Adaptive::default(),
            redis_deadline: Duration::from_millis(50),
            breaker: None,
        }
    }

    /// The fleet's current rate for a table (or `table/index`) and
    /// direction, in units per second: the capacity, or less after throttles.
    /// `None` for a table the gate does not know.
    pub async fn rate(
        &self,
        table: &str,
        direction: Direction,
    ) -> Result<Option<f64>, LimiterError> {
        Ok(self.state(table, direction).await?.map(|s| s.rate))
    }

    /// The fleet-wide state of a table's (or `table/index`'s) bucket; `None`
    /// for a table the gate does not know.
    pub async fn state(
        &self,
        table: &str,
        direction: Direction,
    ) -> Result<Option<GateState>, LimiterError> {
        let Some(bucket) = self.bucket(table, direction) else {
            return Ok(None);
        };
        let reply = self
            .script(std::slice::from_ref(&bucket.key), &bucket.args("state", []))
            .await?;
        let [rate_milli, cuts, backlog_us] = reply[..] else {
            return Err(LimiterError::UnexpectedReply {
                reply: format!("{reply:?}"),
            });
        };
        Ok(Some(GateState {
            rate: rate_milli as f64 / 1000.0,
            cuts: u64::try_from(cuts).unwrap_or(0),
            backlog: Duration::from_micros(u64::try_from(backlog_us).unwrap_or(0)),
        }))
    }

    /// The Redis key of a table's (or `table/index`'s) bucket; `None` for a
    /// table the gate does not know. Hot keys' buckets are
    /// `<bucket>:key:<partition key value>`.
    pub fn bucket_key(&self, target: &str, direction: Direction) -> Option<&str> {
        self.bucket(target, direction).map(|b| b.key.as_str())
    }

    fn bucket(&self, target: &str, direction: Direction) -> Option<&Arc<Bucket>> {
        let [read, write] = self.inner.targets.get(target)?;
        Some(match direction {
            Direction::Read => read,
            Direction::Write => write,
        })
    }

    async fn script(&self, keys: &[String], args: &[String]) -> Result<Vec<i64>, LimiterError> {
        let mut connection = self.inner.connection.clone();
        let call = run_script(&mut connection, (SCRIPT, &SCRIPT_HASH), keys, args, || {
            metrics::counter!("dynagate_capacity_script_reloads_total").increment(1);
        });
        match tokio::time::timeout(self.inner.redis_deadline, call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(source)) => Err(LimiterError::Redis { source }),
            Err(_) => Err(LimiterError::Timeout {
                deadline: self.inner.redis_deadline,
            }),
        }
    }

    /// A script call through the circuit breaker: `None` when Redis failed
    /// or the breaker is open, and the gate lets the call through.
    async fn guarded(&self, keys: &[String], args: &[String], table: &str) -> Option<Vec<i64>> {
        let Some(attempt) = self.inner.breaker.attempt() else {
            count_fail_open(table, "circuit_open");
            return None;
        };
        match self.script(keys, args).await {
            Ok(reply) => {
                attempt.succeeded();
                Some(reply)
            }
            Err(error) => {
                attempt.failed();
                tracing::debug!(error = %error, table, "capacity gate: Redis failed; letting the call through");
                count_fail_open(table, "error");
                None
            }
        }
    }
}

fn count_fail_open(table: &str, reason: &'static str) {
    metrics::counter!(
        "dynagate_capacity_fail_open_total",
        "table" => table.to_owned(),
        "reason" => reason,
    )
    .increment(1);
}

impl CapacityGateBuilder {
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
    /// (default 0.5 s of capacity). Keep it under the table's own burst
    /// bank (DynamoDB banks up to 300 s of unused capacity): when both empty
    /// together, the first call that arrives a moment early is throttled and
    /// the rate is cut for nothing.
    pub fn burst(mut self, burst: Duration) -> Self {
        self.burst = burst;
        self
    }

    /// The longest a call waits for its turn (default 1 s), however long its
    /// deadline: a longer wait is refused at once as over capacity. A short
    /// queue keeps latency bounded under overload (shedding the excess
    /// early, with a `retry_after`, instead of queueing it until its
    /// deadline) and lets a cut rate take effect quickly: calls queued at the
    /// old rate go out at the old pace.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
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

    /// When to stop asking a failing Redis (default: 5 failures in 10 s open
    /// the circuit for 5 s).
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
                        direction.of(throughput),
                        self.burst,
                        self.adaptive,
                    ))
                };
                let buckets = [bucket(Direction::Read), bucket(Direction::Write)];
                targets.insert(target, buckets);
            }
        }
        let breaker = match self.breaker {
            Some(settings) => settings,
            None => BreakerSettings::new(5, Duration::from_secs(5))?,
        };
        Ok(CapacityGate {
            inner: Arc::new(Inner {
                connection: self.connection,
                targets,
                max_wait: self.max_wait,
                adaptive: self.adaptive,
                redis_deadline: self.redis_deadline,
                breaker: CircuitBreaker::new(breaker),
            }),
        })
    }
}

/// A bucket's fleet-wide state, from [`CapacityGate::state`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct GateState {
    /// The current rate, units per second.
    pub rate: f64,
    /// How many times throttles cut the rate since the bucket was last full
    /// and at its ceiling.
    pub cuts: u64,
    /// How long until every reservation made so far is paid for: the
    /// fleet's queue, in time.
    pub backlog: Duration,
}

/// One bucket: its Redis key and the script arguments that describe it,
/// formatted once.
#[derive(Debug)]
struct Bucket {
    /// `table` or `table/index`, for metrics and logs.
    target: String,
    direction: Direction,
    /// `<prefix>:{<target>:<direction>}`: one hash tag per bucket, so a
    /// table's bucket and its hot keys' live in one cluster slot.
    key: String,
    /// `ARGV[2..7]` of every command: the bucket's bounds, increase, burst
    /// and a hot key's bounds.
    bounds: [String; 6],
}

impl Bucket {
    fn new(
        prefix: &str,
        target: String,
        direction: Direction,
        capacity: f64,
        burst: Duration,
        adaptive: Adaptive,
    ) -> Bucket {
        let key_max = direction.partition_limit().min(capacity);
        Bucket {
            key: format!("{prefix}:{{{target}:{}}}", direction.label()),
            target,
            direction,
            bounds: [
                capacity.to_string(),
                (capacity * adaptive.floor).to_string(),
                (capacity * adaptive.increase).to_string(),
                burst.as_micros().to_string(),
                key_max.to_string(),
                // A hot key may be cut down to one unit a second.
                1.0f64.min(key_max).to_string(),
            ],
        }
    }

    /// The metric labels `table` and `direction`.
    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("table", self.target.clone()),
            ("direction", self.direction.label().to_owned()),
        ]
    }

    /// The script's arguments: the command, the bounds, the command's own.
    fn args<const N: usize>(&self, command: &str, own: [String; N]) -> Vec<String> {
        let mut args = Vec::with_capacity(1 + self.bounds.len() + N);
        args.push(command.to_owned());
        args.extend(self.bounds.iter().cloned());
        args.extend(own);
        args
    }
}

/// An admitted attempt: what it reserved, in which epoch of the rate.
#[derive(Debug)]
pub(crate) struct Ticket(Option<Reserved>);

#[derive(Debug)]
struct Reserved {
    bucket: Arc<Bucket>,
    /// The bucket's key, then the hot-key bucket's when the call names a
    /// partition key.
    keys: Vec<String>,
    units: f64,
    epoch: i64,
    key_epoch: i64,
    watched: Arc<Watched>,
}

impl Gate for CapacityGate {
    type Ticket = Ticket;

    async fn admit(
        &self,
        operation: &Operation,
        latest_start: Instant,
    ) -> Result<Ticket, Duration> {
        let wanted = operation.capacity();
        let (Some(table), Some(direction)) = (operation.table(), wanted.direction) else {
            return Ok(Ticket(None));
        };
        let found = match &wanted.index {
            Some(index) => self.bucket(&format!("{table}/{index}"), direction),
            None => self.bucket(table, direction),
        };
        let Some(bucket) = found.cloned() else {
            return Ok(Ticket(None));
        };
        let units = wanted.units.unwrap_or(1.0).max(0.0);
        let mut keys = vec![bucket.key.clone()];
        if let Some(value) = &wanted.partition_key {
            keys.push(format!("{}:key:{value}", bucket.key));
        }
        let max_wait = latest_start
            .saturating_duration_since(Instant::now())
            .min(self.inner.max_wait);
        let args = bucket.args(
            "reserve",
            [units.to_string(), max_wait.as_micros().to_string()],
        );
        let Some(reply) = self.guarded(&keys, &args, table).await else {
            return Ok(Ticket(None));
        };
        let [admitted, wait_us, rate_milli, epoch, key_epoch] = reply[..] else {
            count_fail_open(table, "reply");
            return Ok(Ticket(None));
        };
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
        let labels = bucket.labels();
        metrics::gauge!("dynagate_capacity_rate", &labels).set(rate_milli as f64 / 1000.0);
        if admitted != 1 {
            metrics::counter!("dynagate_capacity_over_total", &labels).increment(1);
            return Err(wait);
        }
        metrics::histogram!("dynagate_capacity_wait_seconds", &labels).record(wait.as_secs_f64());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(Ticket(Some(Reserved {
            bucket,
            keys,
            units,
            epoch,
            key_epoch,
            watched: Arc::default(),
        })))
    }

    async fn attempt<F: Future>(&self, ticket: &Ticket, attempt: F) -> F::Output {
        match &ticket.0 {
            Some(reserved) => consumed::watch(Arc::clone(&reserved.watched), attempt).await,
            None => attempt.await,
        }
    }

    async fn settle(&self, operation: &Operation, ticket: Ticket, failure: Option<&ErrorKind>) {
        let Some(reserved) = ticket.0 else {
            return;
        };
        let table = operation.table().unwrap_or_default();
        match failure {
            None => {
                let labels = reserved.bucket.labels();
                metrics::counter!("dynagate_capacity_estimated_units_total", &labels)
                    .increment(reserved.units.round() as u64);
                let Some(consumed) = reserved.watched.units_on(table) else {
                    return;
                };
                metrics::counter!("dynagate_capacity_consumed_units_total", &labels)
                    .increment(consumed.round() as u64);
                let delta = consumed - reserved.units;
                if delta.abs() < 0.001 {
                    return;
                }
                let delta_milli = (delta * 1000.0).round() as i64;
                let args = reserved.bucket.args("adjust", [delta_milli.to_string()]);
                self.guarded(&reserved.keys, &args, table).await;
            }
            Some(ErrorKind::Throttling(throttle)) => {
                let hot = throttle.is_hot_key() && reserved.keys.len() == 2;
                let (scope, seen) = if hot {
                    ("key", reserved.key_epoch)
                } else {
                    ("table", reserved.epoch)
                };
                let args = reserved.bucket.args(
                    "throttle",
                    [
                        seen.to_string(),
                        self.inner.adaptive.decrease.to_string(),
                        scope.to_owned(),
                    ],
                );
                if let Some([cut, rate_milli]) =
                    self.guarded(&reserved.keys, &args, table).await.as_deref()
                    && *cut == 1
                {
                    let rate = *rate_milli as f64 / 1000.0;
                    let bucket = &reserved.bucket;
                    tracing::debug!(table = %bucket.target, scope, rate, "capacity gate: DynamoDB throttled; rate cut");
                    let [table, direction] = bucket.labels();
                    metrics::counter!(
                        "dynagate_capacity_rate_cuts_total",
                        &[
                            table.clone(),
                            direction.clone(),
                            ("scope", scope.to_owned())
                        ]
                    )
                    .increment(1);
                    if scope == "table" {
                        metrics::gauge!("dynagate_capacity_rate", &[table, direction]).set(rate);
                    }
                }
            }
            // A failed condition consumed its units (the estimate stands);
            // other failures say nothing about capacity.
            Some(_) => {}
        }
    }
}
