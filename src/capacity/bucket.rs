//! One Redis bucket of the gate: its key and the script arguments that
//! describe it (the Lua argument contract of `capacity.lua`), formatted once.

use std::time::Duration;

use crate::capacity::Adaptive;
use crate::capacity::table::Throughput;
use crate::operation::Direction;

/// The capacity of `throughput` in `direction`.
pub(crate) fn units_of(direction: Direction, throughput: Throughput) -> f64 {
    match direction {
        Direction::Read => throughput.read,
        Direction::Write => throughput.write,
    }
}

/// DynamoDB's per-partition ceiling: 3000 read or 1000 write units/s.
fn partition_limit(direction: Direction) -> f64 {
    match direction {
        Direction::Read => 3000.0,
        Direction::Write => 1000.0,
    }
}

/// How the gate treats a standing queue: CoDel's target and interval
/// (see [`CapacityGateBuilder::queue_target`](crate::capacity::CapacityGateBuilder::queue_target)),
/// each `None` until the builder is told one: then it follows the bucket's
/// capacity ([`Queue::of`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Queue {
    pub(crate) target: Option<Duration>,
    pub(crate) interval: Option<Duration>,
}

/// The default target: CoDel's, on a table fast enough for it.
const DEFAULT_TARGET: Duration = Duration::from_millis(10);
/// The default interval: CoDel's.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// The queue of calls that is never a standing one, in units: a two-item
/// transaction (4 units), or four single writes that arrive together.
const SMALLEST_STANDING_UNITS: f64 = 4.0;
/// The interval in targets: RFC 8289 sets the target at 5 to 10% of it.
const INTERVAL_IN_TARGETS: u32 = 10;

impl Queue {
    /// The target and interval of a bucket of `capacity` units/s.
    ///
    /// CoDel's 10 ms and 100 ms are times, and a paced bucket's calls take
    /// time to pay for: at 50 units/s one unit is 20 ms and a two-item
    /// transaction 80 ms, so the queue of two calls that arrived together
    /// already waits above a 10 ms target, and a few such calls in a row
    /// made a "standing" queue of what was a short burst. RFC 8289 keeps a
    /// queue of one maximum-size packet from counting as standing (its
    /// `maxpacket` check) for the same reason. So by default the target is
    /// at least the time [`SMALLEST_STANDING_UNITS`] take at the capacity,
    /// and the interval at least [`INTERVAL_IN_TARGETS`] targets; a large
    /// table keeps CoDel's 10 ms and 100 ms. A target or an interval the
    /// builder was given is used as given.
    pub(crate) fn of(&self, capacity: f64) -> (Duration, Duration) {
        let paced = if capacity > 0.0 {
            Duration::try_from_secs_f64(SMALLEST_STANDING_UNITS / capacity).unwrap_or(Duration::MAX)
        } else {
            Duration::MAX
        };
        let target = self.target.unwrap_or(DEFAULT_TARGET.max(paced));
        let interval = self
            .interval
            .unwrap_or(DEFAULT_INTERVAL.max(target.saturating_mul(INTERVAL_IN_TARGETS)));
        (target, interval)
    }
}

/// One bucket: its Redis key and the script arguments that describe it,
/// formatted once.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// `table` or `table/index`, for metrics and logs.
    pub(crate) target: String,
    pub(crate) direction: Direction,
    /// `<prefix>:{<target>:<direction>}`: one hash tag per bucket, so a
    /// table's bucket and its hot keys' live in one cluster slot.
    pub(crate) key: String,
    /// `ARGV[2..9]` of every command: the bucket's bounds, increase, burst,
    /// a hot key's bounds, and the queue's target wait and interval.
    bounds: [String; 8],
}

impl Bucket {
    pub(crate) fn new(
        prefix: &str,
        target: String,
        direction: Direction,
        capacity: f64,
        burst: Duration,
        adaptive: Adaptive,
        queue: Queue,
    ) -> Bucket {
        let key_max = partition_limit(direction).min(capacity);
        let (wait_target, wait_interval) = queue.of(capacity);
        Bucket {
            key: format!("{prefix}:{{{target}:{}}}", direction.label()),
            target,
            direction,
            bounds: [
                capacity.to_string(),
                (capacity * adaptive.floor()).to_string(),
                (capacity * adaptive.increase()).to_string(),
                burst.as_micros().to_string(),
                key_max.to_string(),
                // A hot key may be cut down to one unit a second.
                1.0f64.min(key_max).to_string(),
                wait_target.as_micros().to_string(),
                wait_interval.as_micros().to_string(),
            ],
        }
    }

    /// The metric labels `table` and `direction`.
    pub(crate) fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("table", self.target.clone()),
            ("direction", self.direction.label().to_owned()),
        ]
    }

    /// The script's arguments: the command, the bounds, the command's own.
    pub(crate) fn args<const N: usize>(&self, command: &str, own: [String; N]) -> Vec<String> {
        let mut args = Vec::with_capacity(1 + self.bounds.len() + N);
        args.push(command.to_owned());
        args.extend(self.bounds.iter().cloned());
        args.extend(own);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_default_queue_follows_the_time_a_few_calls_take_at_the_capacity() {
        let default = Queue::default();
        // A large table: CoDel's own figures.
        assert_eq!(default.of(40_000.0), (ms(10), ms(100)));
        assert_eq!(default.of(400.0), (ms(10), ms(100)));
        // 50 WCU/s: 4 units take 80 ms, the interval is ten of them.
        assert_eq!(default.of(50.0), (ms(80), ms(800)));
        assert_eq!(default.of(100.0), (ms(40), ms(400)));
        assert_eq!(default.of(1.0), (ms(4_000), ms(40_000)));
    }

    #[test]
    fn a_queue_the_builder_was_given_is_used_as_given() {
        let given = Queue {
            target: Some(ms(10)),
            interval: Some(ms(100)),
        };
        assert_eq!(given.of(20.0), (ms(10), ms(100)));
        let target_only = Queue {
            target: Some(ms(30)),
            interval: None,
        };
        assert_eq!(target_only.of(20.0), (ms(30), ms(300)));
    }

    #[test]
    fn the_bucket_hands_the_script_its_queue_in_microseconds() {
        let bucket = Bucket::new(
            "p",
            "users".into(),
            Direction::Write,
            50.0,
            Duration::ZERO,
            Adaptive::default(),
            Queue::default(),
        );
        let args = bucket.args("state", []);
        assert_eq!(args[4], "0", "no burst");
        assert_eq!((args[7].as_str(), args[8].as_str()), ("80000", "800000"));
    }
}
