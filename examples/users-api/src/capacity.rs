//! The users table's capacity gate: the fleet keeps its DynamoDB traffic
//! under the table's capacity, counted in Redis.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use dynagate::RedisConnection;
use dynagate::ResilientClient;

use dynagate::capacity::{CapacityError, CapacityGate, TableCapacity, Throughput};

use crate::config::{Config, TableCapacitySetting};

/// The users table's capacity gate, as `config.table_capacity` says.
pub(crate) async fn capacity_gate(
    config: &Config,
    dynamodb: &ResilientClient,
    redis: RedisConnection,
) -> Result<Option<CapacityGate>, String> {
    let table = &config.users_table;
    let capacity = match config.table_capacity {
        TableCapacitySetting::Off => return Ok(None),
        TableCapacitySetting::Units { read, write } => TableCapacity::provisioned(
            table.as_str(),
            Throughput {
                read: read,
                write: write,
            },
        ),
        TableCapacitySetting::Describe => {
            match TableCapacity::describe(dynamodb.sdk(), table).await {
                Ok(capacity) => capacity,
                Err(CapacityError::OnDemand { .. }) => {
                    tracing::info!(
                        table = %table,
                        "the users table bills on demand without a maximum: no capacity gate \
                         (set TABLE_CAPACITY=READ,WRITE for a ceiling)"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(DisplayErrorContext(&e).to_string()),
            }
        }
    };
    let throughput = capacity.throughput();
    tracing::info!(table = %table, read = throughput.read, write = throughput.write, "capacity gate on");
    CapacityGate::builder(redis)
        .prefix(config.capacity_prefix.clone())
        .table(capacity)
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}
