//! Counters per table and operation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What the proxy did, per table and operation: `tables[table][operation]`.
///
/// A request is counted under the first table it names (requests that name no
/// table, such as `ListTables`, under `""`); capacity units are counted under
/// the table they were charged to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Counters by table name, then by operation name.
    pub tables: BTreeMap<String, BTreeMap<String, OperationStats>>,
}

/// The counters of one table and operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OperationStats {
    /// Requests received.
    pub requests: u64,
    /// Requests forwarded to the upstream (dropped responses included).
    pub forwarded: u64,
    /// Requests answered with `ProvisionedThroughputExceededException` by the
    /// capacity model, by throttling reason.
    pub throttled: BTreeMap<String, u64>,
    /// Requests answered with an injected error, by kind.
    pub injected: BTreeMap<String, u64>,
    /// Writes forwarded whose response was not sent.
    pub dropped_responses: u64,
    /// Batch items (or, for `BatchGetItem`, tables' key sets) the proxy held
    /// back and returned as unprocessed for lack of capacity.
    pub unprocessed: u64,
    /// Requests the upstream could not be reached for (answered 502).
    pub upstream_errors: u64,
    /// Read capacity units consumed, as DynamoDB would count them.
    pub read_units: f64,
    /// Write capacity units consumed, as DynamoDB would count them.
    pub write_units: f64,
}

impl OperationStats {
    /// Requests throttled by the capacity model, all reasons together.
    pub fn throttled_total(&self) -> u64 {
        self.throttled.values().sum()
    }

    /// Requests answered with an injected error, all kinds together.
    pub fn injected_total(&self) -> u64 {
        self.injected.values().sum()
    }

    fn add(&mut self, other: &OperationStats) {
        self.requests += other.requests;
        self.forwarded += other.forwarded;
        for (k, v) in &other.throttled {
            *self.throttled.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.injected {
            *self.injected.entry(k.clone()).or_default() += v;
        }
        self.dropped_responses += other.dropped_responses;
        self.unprocessed += other.unprocessed;
        self.upstream_errors += other.upstream_errors;
        self.read_units += other.read_units;
        self.write_units += other.write_units;
    }
}

impl Stats {
    /// The counters of `operation` on `table` (all zero if never seen).
    pub fn operation(&self, table: &str, operation: &str) -> OperationStats {
        self.tables
            .get(table)
            .and_then(|ops| ops.get(operation))
            .cloned()
            .unwrap_or_default()
    }

    /// The counters of every operation on `table`, summed.
    pub fn table(&self, table: &str) -> OperationStats {
        let mut total = OperationStats::default();
        for stats in self
            .tables
            .get(table)
            .into_iter()
            .flat_map(BTreeMap::values)
        {
            total.add(stats);
        }
        total
    }

    pub(crate) fn entry(&mut self, table: &str, operation: &str) -> &mut OperationStats {
        self.tables
            .entry(table.to_owned())
            .or_default()
            .entry(operation.to_owned())
            .or_default()
    }
}

/// A plain-text table, one line per table and operation.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<32} {:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
            "table",
            "operation",
            "requests",
            "forwarded",
            "throttled",
            "injected",
            "dropped",
            "read units",
            "write units"
        )?;
        for (table, operations) in &self.tables {
            let table = if table.is_empty() { "-" } else { table };
            for (operation, s) in operations {
                writeln!(
                    f,
                    "{:<32} {:<20} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11}",
                    table,
                    operation,
                    s.requests,
                    s.forwarded,
                    s.throttled_total(),
                    s.injected_total(),
                    s.dropped_responses,
                    s.read_units,
                    s.write_units
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_totals_sum_operations() {
        let mut stats = Stats::default();
        stats.entry("t", "PutItem").requests = 3;
        *stats
            .entry("t", "PutItem")
            .throttled
            .entry("x".into())
            .or_default() += 2;
        stats.entry("t", "GetItem").requests = 1;
        stats.entry("t", "GetItem").read_units = 0.5;
        let total = stats.table("t");
        assert_eq!(total.requests, 4);
        assert_eq!(total.throttled_total(), 2);
        assert_eq!(total.read_units, 0.5);
        assert_eq!(stats.operation("u", "PutItem"), OperationStats::default());
    }

    #[test]
    fn stats_serialise_and_print() {
        let mut stats = Stats::default();
        stats.entry("users", "PutItem").forwarded = 7;
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["tables"]["users"]["PutItem"]["forwarded"], 7);
        let back: Stats = serde_json::from_value(json).unwrap();
        assert_eq!(back, stats);
        assert!(
            stats
                .to_string()
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("users")
        );
    }
}
