//! What the generator reads besides answers: the fault proxy's counters
//! (`GET /_fault/stats`: units consumed, throttles, key lookups) and the CPU
//! time of processes from `/proc/PID/stat`, sampled once a second.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// The counters of one table, summed over its operations.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableCounters {
    pub read_units: f64,
    pub write_units: f64,
    pub throttled: u64,
    /// GetItem requests (the API keys table: key lookups).
    pub get_items: u64,
}

impl TableCounters {
    /// The table's counters in a `/_fault/stats` document.
    pub fn from_stats(stats: &Value, table: &str) -> TableCounters {
        let mut counters = TableCounters::default();
        let Some(operations) = stats["tables"][table].as_object() else {
            return counters;
        };
        for (operation, op) in operations {
            counters.read_units += op["read_units"].as_f64().unwrap_or(0.0);
            counters.write_units += op["write_units"].as_f64().unwrap_or(0.0);
            counters.throttled += op["throttled"]
                .as_object()
                .map_or(0, |by| by.values().filter_map(Value::as_u64).sum());
            if operation == "GetItem" {
                counters.get_items += op["requests"].as_u64().unwrap_or(0);
            }
        }
        counters
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &TableCounters) -> TableCounters {
        TableCounters {
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
            throttled: self.throttled.saturating_sub(earlier.throttled),
            get_items: self.get_items.saturating_sub(earlier.get_items),
        }
    }
}

/// Reads the proxy's counters.
#[derive(Debug)]
pub struct ProxyStats {
    client: Client<HttpConnector, Empty<Bytes>>,
    url: String,
}

impl ProxyStats {
    /// The proxy at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> ProxyStats {
        ProxyStats {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            url: format!("{}/_fault/stats", base.trim_end_matches('/')),
        }
    }

    /// The stats document; the error says what to check.
    pub async fn fetch(&self) -> Result<Value, String> {
        let uri = self.url.parse().map_err(|e| format!("{}: {e}", self.url))?;
        let response = self
            .client
            .get(uri)
            .await
            .map_err(|e| format!("GET {}: {e} (is the fault proxy running?)", self.url))?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| format!("GET {}: not JSON: {e}", self.url))
    }
}

/// CPU time of the process tree rooted at `pid`, in clock ticks: its own
/// user and system time and its reaped children's (fields 14 to 17 of
/// `/proc/PID/stat`), plus the same of its live children. A gunicorn
/// master's workers are counted, also those killed and replaced during the
/// run (their time moves into the master's reaped-children fields). A
/// process that is gone counts 0.
pub fn tree_ticks(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(0, |s| ticks_of(&s));
    let children: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|child| std::fs::read_to_string(format!("/proc/{child}/stat")).ok())
        .filter(|stat| parent_of(stat) == Some(pid))
        .map(|stat| ticks_of(&stat))
        .sum();
    own + children
}

/// The fields after the command name: field 3 (state) is index 0.
fn fields_of(stat: &str) -> Vec<&str> {
    stat.rsplit_once(") ")
        .map_or_else(Vec::new, |(_, rest)| rest.split_whitespace().collect())
}

fn parent_of(stat: &str) -> Option<u32> {
    fields_of(stat).get(1)?.parse().ok()
}

/// utime + stime + cutime + cstime (fields 14 to 17: indexes 11 to 14).
fn ticks_of(stat: &str) -> u64 {
    let fields = fields_of(stat);
    (11..=14)
        .map(|i| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// Clock ticks a second (`getconf CLK_TCK`): 100 on Linux, which fixed it
/// for the user-visible interface.
pub const CLK_TCK: f64 = 100.0;

/// One sample a second of the users table's counters, for the capacity
/// timeline: units consumed and throttles in each interval, per second.
#[derive(Debug, Default)]
pub struct Timeline {
    samples: Vec<Value>,
    last: Option<(Instant, TableCounters)>,
}

impl Timeline {
    /// Adds a sample taken at `at` (`offset` into the phase).
    pub fn sample(&mut self, at: Instant, offset: Duration, counters: TableCounters) {
        if let Some((then, before)) = self.last {
            let seconds = at.duration_since(then).as_secs_f64().max(1e-3);
            let d = counters.since(&before);
            self.samples.push(json!({
                "t": offset.as_secs_f64(),
                "read_units_per_second": d.read_units / seconds,
                "write_units_per_second": d.write_units / seconds,
                "throttled": d.throttled,
            }));
        }
        self.last = Some((at, counters));
    }

    /// The samples as JSON.
    pub fn to_json(&self) -> Value {
        Value::Array(self.samples.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_counters_sum_operations_and_count_key_lookups() {
        let stats = json!({"tables": {"keys": {
            "GetItem": {"requests": 7, "read_units": 3.5, "write_units": 0.0,
                        "throttled": {"TableReadProvisionedThroughputExceeded": 2}},
            "UpdateItem": {"requests": 1, "read_units": 0.0, "write_units": 1.0, "throttled": {}}
        }}});
        let keys = TableCounters::from_stats(&stats, "keys");
        assert_eq!(
            keys,
            TableCounters {
                read_units: 3.5,
                write_units: 1.0,
                throttled: 2,
                get_items: 7
            }
        );
        assert_eq!(
            TableCounters::from_stats(&stats, "other"),
            TableCounters::default()
        );
        let later = TableCounters {
            get_items: 10,
            ..keys
        };
        assert_eq!(later.since(&keys).get_items, 3);
    }

    #[test]
    fn proc_stat_ticks_are_read_after_the_command_name_with_reaped_children() {
        let stat = "42 (a (weird) name) S 7 2 3 4 5 6 7 8 9 10 150 25 3 2 20 0";
        assert_eq!(ticks_of(stat), 180);
        assert_eq!(parent_of(stat), Some(7));
        assert_eq!(ticks_of("garbage"), 0);
        assert_eq!(tree_ticks(u32::MAX), 0, "a process that is gone");
    }

    #[test]
    fn the_timeline_is_per_second_between_samples() {
        let mut timeline = Timeline::default();
        let t0 = Instant::now();
        let c = |r, w| TableCounters {
            read_units: r,
            write_units: w,
            ..Default::default()
        };
        timeline.sample(t0, Duration::ZERO, c(0.0, 0.0));
        timeline.sample(
            t0 + Duration::from_secs(2),
            Duration::from_secs(2),
            c(100.0, 40.0),
        );
        let json = timeline.to_json();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["read_units_per_second"], 50.0);
        assert_eq!(json[0]["write_units_per_second"], 20.0);
    }
}
