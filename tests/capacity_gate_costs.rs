//! What a call costs at the capacity gate, against DynamoDB Local: a
//! transaction at its price on its table, a write at the table's share of
//! what DynamoDB reports (not its global indexes').

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, gate};
use dynagate::Direction;
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use redis::aio::ConnectionManager;

/// A gate on `table` alone: `units` per second both ways, a 1 s burst.
fn table_gate(redis: &ConnectionManager, prefix: &str, table: &str, units: f64) -> CapacityGate {
    let capacity = Throughput {
        read: units,
        write: units,
    };
    gate(
        redis,
        prefix,
        TableCapacity::provisioned(table, capacity),
        Duration::from_secs(1),
    )
}

/// A transaction on one table passes that table's gate at its price: two
/// underlying writes of every item (prepare and commit). Before, a
/// transaction was not gated at all, and an idempotent create (the item and
/// its idempotency record) spent a table's write capacity unseen.
#[tokio::test]
async fn a_transaction_on_one_table_pays_its_writes_at_the_tables_gate() {
    use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
    use dynagate::repository::{KeySchema, KeyType, Repository, WriteToken};

    let table = TestTable::create("capacity-transact").await;
    let (redis, keys) = common::redis().await;
    let dynamodb = client(None, Duration::from_secs(5)).await;
    // 4 WCU/s and a 1 s burst: a transaction of two small items is
    // estimated at 4 units, the whole burst, then settled against the units
    // DynamoDB reports (DynamoDB Local reports one per item, half what
    // DynamoDB charges).
    let gate = table_gate(&redis, &keys.key("transact"), table.name(), 4.0);
    let docs: Repository<serde_json::Value> = Repository::new(
        dynamodb.with_gate(gate.clone()),
        table.name(),
        KeySchema::partition("pk", KeyType::String),
    );
    let put = |pk: &str| {
        let put = Put::builder()
            .table_name(table.name())
            .item("pk", AttributeValue::S(pk.into()))
            .build()
            .unwrap();
        TransactWriteItem::builder().put(put).build()
    };
    docs.transact_write(vec![put("a"), put("b")], &WriteToken::generate())
        .await
        .unwrap();
    let state = gate
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .expect("the transaction reserved on the table's bucket");
    assert!(
        state.backlog > Duration::from_millis(250),
        "at least 2 units at 4/s, less the call's own time: {state:?}"
    );
    table.delete().await;
}

/// A write to a table with a global index is charged to the table's gate
/// at the table's share: DynamoDB reports the index's write in the total,
/// but a global index has capacity of its own. Settled against the total,
/// every write cost the table twice and the gate shed writes while the table
/// had room (the abuse arena's users table has one such index).
#[tokio::test]
async fn a_write_is_charged_the_tables_share_not_its_global_indexes() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use dynagate::Operation;

    let table = common::query_table::indexed_table("capacity-gsi").await;
    let (redis, keys) = common::redis().await;
    let dynamodb = client(None, Duration::from_secs(5)).await;
    // 1 WCU/s, 1 s burst: a write of 1 unit to the table (and 1 to its
    // index) leaves about a second of backlog; charged 2, about two.
    let gate = table_gate(&redis, &keys.key("gsi"), table.name(), 1.0);
    let gated = dynamodb.with_gate(gate.clone());
    let name = table.name().to_owned();
    gated
        .call(
            Operation::write("PutItem", &name).idempotent().units(1.0),
            |sdk| {
                sdk.put_item()
                    .table_name(&name)
                    .item("pk", AttributeValue::S("p".into()))
                    .item("sk", AttributeValue::S("s".into()))
                    .item("email", AttributeValue::S("ada@example.com".into()))
                    .send()
            },
        )
        .await
        .unwrap();
    let state = gate
        .state(table.name(), Direction::Write)
        .await
        .unwrap()
        .unwrap();
    assert!(
        state.backlog < Duration::from_millis(1500),
        "1 unit at 1/s, not the index's too: {state:?}"
    );
    assert!(state.backlog > Duration::from_millis(500), "{state:?}");
    table.delete().await;
}
