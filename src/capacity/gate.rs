//! The gate itself: one Redis script call before an attempt, and one after
//! only when the estimate was off or DynamoDB throttled anyway.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::CircuitBreaker;
use crate::capacity::bucket::Bucket;
use crate::capacity::consumed::{self, Watched};
use crate::capacity::{Adaptive, CapacityGateBuilder};
use crate::operation::{Direction, Operation};
use crate::redis_support::{RedisConnection, Script, ScriptError, run_script};
use crate::retry::{ErrorKind, Gate};

/// The Lua source of the gate's script; its contract is described at its top.
pub(crate) const SCRIPT_SOURCE: &str = include_str!("capacity.lua");

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCRIPT_SOURCE));

/// A token bucket per table (and index) and direction, in Redis, that every
/// instance of a fleet takes from before it calls DynamoDB: together they
/// stay under the table's capacity instead of each finding it by being
/// throttled. See [the module](crate::capacity).
///
/// Cheap to clone: clones share the connection and the circuit breaker.
#[derive(Debug, Clone)]
pub struct CapacityGate {
    inner: Arc<GateParts>,
}

/// What a built gate holds; the builder assembles it.
#[derive(Debug)]
pub(crate) struct GateParts {
    pub(crate) connection: RedisConnection,
    /// Per table (`table`) or index (`table/index`), a bucket per direction.
    pub(crate) targets: HashMap<String, [Arc<Bucket>; 2]>,
    pub(crate) max_wait: Duration,
    pub(crate) adaptive: Adaptive,
    pub(crate) redis_deadline: Duration,
    pub(crate) breaker: CircuitBreaker,
}

impl CapacityGate {
    /// A builder over a Redis connection (a single Redis or a cluster). The
    /// gate fails open: when Redis is slow or down, calls go ungated and
    /// DynamoDB's throttling, answered by the retry loop, is the limit.
    pub fn builder(connection: impl Into<RedisConnection>) -> CapacityGateBuilder {
        CapacityGateBuilder::new(connection.into())
    }

    pub(crate) fn from_parts(parts: GateParts) -> CapacityGate {
        CapacityGate {
            inner: Arc::new(parts),
        }
    }

    /// The fleet's current rate for a table (or `table/index`) and
    /// direction, in units per second: the capacity, or less after throttles.
    /// `None` for a table the gate does not know.
    pub async fn rate(
        &self,
        table: &str,
        direction: Direction,
    ) -> Result<Option<f64>, ScriptError> {
        Ok(self.state(table, direction).await?.map(|s| s.rate))
    }

    /// The fleet-wide state of a table's (or `table/index`'s) bucket; `None`
    /// for a table the gate does not know.
    pub async fn state(
        &self,
        table: &str,
        direction: Direction,
    ) -> Result<Option<GateState>, ScriptError> {
        let Some(bucket) = self.bucket(table, direction) else {
            return Ok(None);
        };
        let reply = self
            .script(std::slice::from_ref(&bucket.key), &bucket.args("state", []))
            .await?;
        let [rate_milli, cuts, backlog_us, standing] = reply[..] else {
            return Err(ScriptError::UnexpectedReply {
                reply: format!("{reply:?}"),
            });
        };
        Ok(Some(GateState {
            rate: rate_milli as f64 / 1000.0,
            cuts: u64::try_from(cuts).unwrap_or(0),
            backlog: Duration::from_micros(u64::try_from(backlog_us).unwrap_or(0)),
            standing: standing == 1,
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

    async fn script(&self, keys: &[String], args: &[String]) -> Result<Vec<i64>, ScriptError> {
        run_script(
            &self.inner.connection,
            &SCRIPT,
            keys,
            args,
            self.inner.redis_deadline,
            || metrics::counter!("dynagate_capacity_script_reloads_total").increment(1),
        )
        .await
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
    /// The queue is standing: calls whose wait would be above the
    /// [`queue_target`](CapacityGateBuilder::queue_target) are refused.
    pub standing: bool,
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
        let [admitted, wait_us, rate_milli, epoch, key_epoch, standing] = reply[..] else {
            count_fail_open(table, "reply");
            return Ok(Ticket(None));
        };
        let wait = Duration::from_micros(u64::try_from(wait_us).unwrap_or(0));
        let labels = bucket.labels();
        metrics::gauge!("dynagate_capacity_rate", &labels).set(rate_milli as f64 / 1000.0);
        if admitted != 1 {
            metrics::counter!("dynagate_capacity_over_total", &labels).increment(1);
            if standing == 1 && wait <= max_wait {
                metrics::counter!("dynagate_capacity_shed_total", &labels).increment(1);
            }
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
                        self.inner.adaptive.decrease().to_string(),
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
