//! How much a table (and each of its global secondary indexes) may take per
//! second: from `DescribeTable`, or configured.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{BillingMode, OnDemandThroughput, ProvisionedThroughputDescription};

use crate::capacity::CapacityError;
use crate::error::ConfigError;

/// Read and write units per second of a table or index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Read capacity units per second.
    pub read: f64,
    /// Write capacity units per second.
    pub write: f64,
}

/// The capacity a fleet may use on one table and its indexes.
///
/// ```
/// use dynagate::capacity::TableCapacity;
///
/// use dynagate::capacity::Throughput;
///
/// let users = TableCapacity::provisioned("users", Throughput { read: 100.0, write: 50.0 })
///     .with_index("by_email", Throughput { read: 40.0, write: 50.0 });
/// assert_eq!(users.table(), "users");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TableCapacity {
    table: String,
    throughput: Throughput,
    indexes: Vec<(String, Throughput)>,
}

impl TableCapacity {
    /// A table provisioned with this throughput. For an on-demand table,
    /// the ceiling the fleet should stay under.
    pub fn provisioned(table: impl Into<String>, throughput: Throughput) -> TableCapacity {
        TableCapacity {
            table: table.into(),
            throughput,
            indexes: Vec::new(),
        }
    }

    /// Adds a global secondary index with its own capacity.
    pub fn with_index(mut self, index: impl Into<String>, throughput: Throughput) -> TableCapacity {
        self.indexes.push((index.into(), throughput));
        self
    }

    /// Reads a table's provisioned capacity, and its indexes', from
    /// `DescribeTable`. An on-demand table is accepted only when it has a
    /// maximum throughput (`OnDemandThroughput`); otherwise configure a
    /// ceiling with [`provisioned`](TableCapacity::provisioned).
    pub async fn describe(dynamodb: &Client, table: &str) -> Result<TableCapacity, CapacityError> {
        let described = dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| CapacityError::Describe {
                table: table.to_owned(),
                source: Box::new(e),
            })?;
        let description = described.table().ok_or_else(|| CapacityError::Describe {
            table: table.to_owned(),
            source: "DescribeTable answered without a table".into(),
        })?;
        let on_demand = description
            .billing_mode_summary()
            .and_then(|s| s.billing_mode())
            == Some(&BillingMode::PayPerRequest);
        let throughput = |provisioned: Option<&ProvisionedThroughputDescription>,
                          maximum: Option<&OnDemandThroughput>|
         -> Option<Throughput> {
            if on_demand {
                let m = maximum?;
                let read = m.max_read_request_units().filter(|u| *u > 0)?;
                let write = m.max_write_request_units().filter(|u| *u > 0)?;
                Some(Throughput {
                    read: read as f64,
                    write: write as f64,
                })
            } else {
                let p = provisioned?;
                Some(Throughput {
                    read: p.read_capacity_units().unwrap_or(0) as f64,
                    write: p.write_capacity_units().unwrap_or(0) as f64,
                })
            }
        };
        let on_demand_error = || CapacityError::OnDemand {
            table: table.to_owned(),
        };
        let mut capacity = TableCapacity {
            table: table.to_owned(),
            throughput: throughput(
                description.provisioned_throughput(),
                description.on_demand_throughput(),
            )
            .ok_or_else(on_demand_error)?,
            indexes: Vec::new(),
        };
        for index in description.global_secondary_indexes() {
            let Some(name) = index.index_name() else {
                continue;
            };
            let own = throughput(index.provisioned_throughput(), index.on_demand_throughput())
                .unwrap_or(capacity.throughput);
            capacity.indexes.push((name.to_owned(), own));
        }
        Ok(capacity)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The table's own throughput.
    pub fn throughput(&self) -> Throughput {
        self.throughput
    }

    /// The indexes and their throughput.
    pub fn indexes(&self) -> impl Iterator<Item = (&str, Throughput)> {
        self.indexes.iter().map(|(name, t)| (name.as_str(), *t))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let check = |what: String, units: f64| {
            if units.is_finite() && units > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    "table capacity",
                    format!("{what} is {units}; give units per second above zero"),
                ))
            }
        };
        let names = std::iter::once((self.table.clone(), self.throughput)).chain(
            self.indexes
                .iter()
                .map(|(name, t)| (format!("{}/{name}", self.table), *t)),
        );
        for (name, t) in names {
            if name.contains(['{', '}']) {
                return Err(ConfigError::invalid(
                    "table capacity",
                    format!("{name:?}: table and index names cannot hold braces"),
                ));
            }
            check(format!("{name} read"), t.read)?;
            check(format!("{name} write"), t.write)?;
        }
        Ok(())
    }
}

/// Estimates of the units an operation consumes, before DynamoDB says.
pub mod estimate {
    /// Write units of writing an item of `bytes` (1 per KB, rounded up; at
    /// least 1). A transactional write costs twice as much: see
    /// [`transactional`].
    pub fn write_units(bytes: usize) -> f64 {
        bytes.div_ceil(1024).max(1) as f64
    }

    /// Read units of reading an item of `bytes` (1 per 4 KB, rounded up; at
    /// least 1), half that when eventually consistent.
    pub fn read_units(bytes: usize, strongly_consistent: bool) -> f64 {
        let units = bytes.div_ceil(4096).max(1) as f64;
        if strongly_consistent {
            units
        } else {
            units / 2.0
        }
    }

    /// Transactions consume twice the units of the same plain operations.
    pub fn transactional(units: f64) -> f64 {
        units * 2.0
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn units_follow_dynamodb_rounding() {
            assert_eq!(write_units(0), 1.0);
            assert_eq!(write_units(1024), 1.0);
            assert_eq!(write_units(1025), 2.0);
            assert_eq!(read_units(4096, true), 1.0);
            assert_eq!(read_units(4097, true), 2.0);
            assert_eq!(read_units(100, false), 0.5);
            assert_eq!(transactional(write_units(3000)), 6.0);
        }
    }
}
