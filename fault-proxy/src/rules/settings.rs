//! What a rule can set: a table's capacity, a per-key limit, added latency.

use serde::{Deserialize, Serialize};

use crate::reasons::{CancellationCode, InjectedReason};

/// A table's provisioned capacity, modelled on DynamoDB's provisioned mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Capacity {
    /// Read capacity units per second; unset means reads are not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_units_per_second: Option<u32>,
    /// Write capacity units per second; unset means writes are not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_units_per_second: Option<u32>,
    /// Unused capacity is banked up to this many seconds' worth (DynamoDB: 300).
    #[serde(default = "default_burst_seconds")]
    pub burst_seconds: u32,
    /// Read units in the bank at start (default 0, so tests are deterministic).
    #[serde(default)]
    pub initial_read_units: u64,
    /// Write units in the bank at start (default 0).
    #[serde(default)]
    pub initial_write_units: u64,
}

fn default_burst_seconds() -> u32 {
    300
}

impl Capacity {
    /// Read and write units per second (either may be `None`: unlimited),
    /// a 300-second burst bank and an empty initial bank.
    pub fn new(
        read_units_per_second: Option<u32>,
        write_units_per_second: Option<u32>,
    ) -> Capacity {
        Capacity {
            read_units_per_second,
            write_units_per_second,
            burst_seconds: default_burst_seconds(),
            initial_read_units: 0,
            initial_write_units: 0,
        }
    }

    /// Sets the burst bank size in seconds.
    pub fn with_burst_seconds(mut self, seconds: u32) -> Capacity {
        self.burst_seconds = seconds;
        self
    }

    /// Sets the initial bank, in units.
    pub fn with_initial_units(mut self, read: u64, write: u64) -> Capacity {
        self.initial_read_units = read;
        self.initial_write_units = write;
        self
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.burst_seconds == 0 {
            return Err("capacity.burst_seconds must be at least 1".into());
        }
        for (what, rate, initial) in [
            ("read", self.read_units_per_second, self.initial_read_units),
            (
                "write",
                self.write_units_per_second,
                self.initial_write_units,
            ),
        ] {
            match rate {
                Some(0) => {
                    return Err(format!(
                        "capacity.{what}_units_per_second must be at least 1"
                    ));
                }
                Some(rate) => {
                    let bank = u64::from(rate) * u64::from(self.burst_seconds);
                    if initial > bank {
                        return Err(format!(
                            "capacity.initial_{what}_units {initial} exceeds the bank of {bank} units"
                        ));
                    }
                }
                None if initial > 0 => {
                    return Err(format!(
                        "capacity.initial_{what}_units needs {what}_units_per_second"
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// A per-partition-key limit, like DynamoDB's per-partition throughput.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HotKey {
    /// The table's partition key attribute name.
    pub partition_key: String,
    /// Read units per second per key value (DynamoDB: 3000).
    #[serde(default = "default_hot_reads")]
    pub read_units_per_second: u32,
    /// Write units per second per key value (DynamoDB: 1000).
    #[serde(default = "default_hot_writes")]
    pub write_units_per_second: u32,
}

fn default_hot_reads() -> u32 {
    3000
}

fn default_hot_writes() -> u32 {
    1000
}

impl HotKey {
    /// DynamoDB's per-partition limits (3000 RCU, 1000 WCU) on `partition_key`.
    pub fn new(partition_key: impl Into<String>) -> HotKey {
        HotKey {
            partition_key: partition_key.into(),
            read_units_per_second: default_hot_reads(),
            write_units_per_second: default_hot_writes(),
        }
    }

    /// Sets the per-key limits.
    pub fn with_units(mut self, read_per_second: u32, write_per_second: u32) -> HotKey {
        self.read_units_per_second = read_per_second;
        self.write_units_per_second = write_per_second;
        self
    }
}

/// A delay of `fixed_ms` plus a uniform random `0..=jitter_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Milliseconds always added.
    #[serde(default)]
    pub fixed_ms: u64,
    /// Up to this many more milliseconds, uniformly drawn.
    #[serde(default)]
    pub jitter_ms: u64,
}

/// What shapes an injected error besides its kind: the reasons it carries and
/// the clock skew of a signature rejection. Unset: the kind's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ErrorShape {
    /// `ThrottlingReasons` / `throttlingReasons` entries.
    pub throttling_reasons: Option<Vec<InjectedReason>>,
    /// `CancellationReasons` codes.
    pub cancellation_reasons: Option<Vec<CancellationCode>>,
    /// Seconds the server's clock is ahead of the client's.
    pub clock_skew_seconds: Option<i64>,
}
