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
/// (see [`CapacityGateBuilder::queue_target`](crate::capacity::CapacityGateBuilder::queue_target)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queue {
    pub(crate) target: Duration,
    pub(crate) interval: Duration,
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
                queue.target.as_micros().to_string(),
                queue.interval.as_micros().to_string(),
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
