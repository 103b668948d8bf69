//! The capacity gate of the users table and of the API keys table: the fleet
//! keeps its DynamoDB traffic under each table's capacity, counted in Redis,
//! key lookups included (a flood of unknown keys cannot take the keys
//! table's capacity from the callers whose keys are valid).

use aws_sdk_dynamodb::error::DisplayErrorContext;
use dynagate::RedisConnection;
use dynagate::ResilientClient;

use dynagate::capacity::{CapacityError, CapacityGate, TableCapacity, Throughput};

use crate::config::{Config, TableCapacitySetting};

/// The gate of the users table (as `config.table_capacity` says) and of the
/// keys table (as `config.keys_table_capacity` says); `None` when neither is
/// gated.
pub(crate) async fn capacity_gate(
    config: &Config,
    dynamodb: &ResilientClient,
    redis: RedisConnection,
) -> Result<Option<CapacityGate>, String> {
    let mut tables = Vec::new();
    for (table, setting) in [
        (&config.users_table, config.table_capacity),
        (&config.keys_table, config.keys_table_capacity),
    ] {
        if let Some(capacity) = table_capacity(table, setting, dynamodb).await? {
            let throughput = capacity.throughput();
            tracing::info!(table = %table, read = throughput.read, write = throughput.write, "capacity gate on");
            tables.push(capacity);
        }
    }
    if tables.is_empty() {
        return Ok(None);
    }
    let mut gate = CapacityGate::builder(redis).prefix(config.capacity_prefix.clone());
    for capacity in tables {
        gate = gate.table(capacity);
    }
    gate.build().map(Some).map_err(|e| e.to_string())
}

/// One table's capacity, as `setting` says; `None`: not gated.
async fn table_capacity(
    table: &str,
    setting: TableCapacitySetting,
    dynamodb: &ResilientClient,
) -> Result<Option<TableCapacity>, String> {
    Ok(Some(match setting {
        TableCapacitySetting::Off => return Ok(None),
        TableCapacitySetting::Units { read, write } => {
            TableCapacity::provisioned(table, Throughput { read, write })
        }
        TableCapacitySetting::Describe => {
            match TableCapacity::describe(dynamodb.sdk(), table).await {
                Ok(capacity) => capacity,
                Err(CapacityError::OnDemand { .. }) => {
                    tracing::info!(
                        table = %table,
                        "the table bills on demand without a maximum: no capacity gate \
                         (set TABLE_CAPACITY / API_KEYS_TABLE_CAPACITY=READ,WRITE for a ceiling)"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(DisplayErrorContext(&e).to_string()),
            }
        }
    }))
}
