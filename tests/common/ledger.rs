//! The ledger test's writers, their ledger and the table they write,
//! through the fault proxy: what `tests/repository_ledger.rs` runs.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynagate::ResilientClient;
use dynagate::repository::{
    Consistency, Key, KeySchema, KeyType, Repository, RepositoryError, WriteToken,
};
use dynagate::retry::GiveUp;
use dynagate::retry::RetryPolicy;
use dynagate_fault_proxy::{Capacity, ErrorKind, OperationStats, Rule, RunningProxy, Stats};
use serde::{Deserialize, Serialize};

pub const WRITERS: usize = 16;
pub const BATCH: usize = 10;
/// Write units per second the proxy grants the table.
pub const CAPACITY: u32 = 400;
/// The fewest writes for which the faults are sure to show (see the module doc).
pub const MIN_WRITES: u32 = 1_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub pk: String,
    pub writer: u32,
    pub seq: u32,
    #[serde(default)]
    pub version: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Creates reported done (`replayed` included).
    pub done: Vec<String>,
    pub replayed: usize,
    /// Creates that failed for good; they may or may not be stored.
    pub unknown: Vec<Unresolved>,
    /// Creates reported as conflicts: every key is unique, so each is false.
    pub false_conflicts: Vec<String>,
    /// Counter updates reported done (and of those, replayed), and those that
    /// failed for good.
    pub counter_done: u64,
    pub counter_replayed: usize,
    pub counter_unknown: Vec<Unresolved>,
    /// Every counter update in order: the version it expected, its token and
    /// what it was told (`done`, `replayed`), to name the update a stored
    /// counter's token belongs to when the counts disagree.
    pub counter_history: Vec<CounterUpdate>,
    /// Batch items confirmed, and reported unprocessed.
    pub batch_done: Vec<String>,
    pub batch_unprocessed: Vec<String>,
    pub other_errors: Vec<String>,
}

/// One counter update as its writer saw it.
#[derive(Debug)]
pub struct CounterUpdate {
    pub expected: u64,
    pub token: String,
    pub done: bool,
    pub replayed: bool,
}

/// A write that failed for good: its key, why the loop gave up, and whether
/// the caller was told it may have been applied.
#[derive(Debug)]
pub struct Unresolved(pub String, pub GiveUp, pub bool);

pub fn unresolved(key: &str, failure: &dynagate::repository::DynamoFailure) -> Unresolved {
    Unresolved(key.to_owned(), failure.reason(), failure.may_have_applied())
}

pub async fn proxy() -> RunningProxy {
    // Faults on every request, and a write capacity below what the writers
    // offer with one second of burst: batches come back partly unprocessed.
    let faults = Rule::new("*", "*")
        .with_error(ErrorKind::ProvisionedThroughputExceeded, 0.03)
        .with_error(ErrorKind::InternalServerError, 0.03)
        .with_drop_response(0.03)
        .with_capacity(Capacity::new(None, Some(CAPACITY)).with_burst_seconds(1));
    crate::common::fault_proxy(vec![faults], 2026).await
}

/// A repository of entries on `table`, reached through `proxy`.
pub async fn entries_through(
    proxy: &RunningProxy,
    table: &crate::common::TestTable,
    deadline: Duration,
) -> Repository<Entry> {
    let client = ResilientClient::new(
        &crate::common::sdk_config_via(&proxy.url()).await,
        RetryPolicy::builder().deadline(deadline).build().unwrap(),
    );
    Repository::new(
        client,
        table.name(),
        KeySchema::partition("pk", KeyType::String),
    )
}

pub async fn writer(id: u32, writes: u32, entries: Repository<Entry>) -> Ledger {
    let mut ledger = Ledger::default();
    let counter_key = format!("counter-{id}");
    let counter = |version| Entry {
        pk: counter_key.clone(),
        writer: id,
        seq: 0,
        version,
    };
    let created = entries.create(&counter(0), &WriteToken::generate()).await;
    ledger.counter_replayed += usize::from(created.unwrap().replayed);
    let mut counter_version = 1;
    let mut seq = 0;
    while seq < writes {
        // Every 20th step: a batch of BATCH items.
        if seq % 20 == 19 {
            let items: Vec<Entry> = (0..BATCH as u32)
                .map(|b| Entry {
                    pk: format!("batch-{id}-{seq}-{b}"),
                    writer: id,
                    seq,
                    version: 0,
                })
                .collect();
            match entries.batch_put(&items).await {
                Ok(()) => ledger.batch_done.extend(items.iter().map(|e| e.pk.clone())),
                Err(RepositoryError::BatchIncomplete {
                    unprocessed,
                    uncertain,
                    ..
                }) => {
                    let pk = |k: &Key| k.partition().as_s().unwrap().clone();
                    let left: HashSet<String> =
                        unprocessed.iter().chain(&uncertain).map(pk).collect();
                    for item in &items {
                        if left.contains(&item.pk) {
                            ledger.batch_unprocessed.push(item.pk.clone());
                        } else {
                            ledger.batch_done.push(item.pk.clone());
                        }
                    }
                }
                Err(other) => ledger.other_errors.push(other.to_string()),
            }
        }
        // Every 10th step: bump this writer's counter under optimistic locking.
        if seq % 10 == 9 {
            let token = WriteToken::generate();
            let result = entries
                .update_versioned(&counter(0), counter_version, &token)
                .await;
            ledger.counter_history.push(CounterUpdate {
                expected: counter_version,
                token: token.as_str().to_owned(),
                done: result.is_ok(),
                replayed: result.as_ref().is_ok_and(|w| w.replayed),
            });
            match result {
                Ok(written) => {
                    ledger.counter_done += 1;
                    ledger.counter_replayed += usize::from(written.replayed);
                    counter_version = written.version.unwrap();
                }
                Err(RepositoryError::Dynamodb(failure)) => {
                    ledger
                        .counter_unknown
                        .push(unresolved(&counter_key, &failure));
                    let stored = entries
                        .get_versioned(&Key::new(counter_key.as_str()), Consistency::Strong)
                        .await
                        .expect("re-reading the counter");
                    counter_version = stored.unwrap().version;
                }
                Err(other) => ledger.other_errors.push(other.to_string()),
            }
        }
        let key = format!("entry-{id}-{seq}");
        let entry = Entry {
            pk: key.clone(),
            writer: id,
            seq,
            version: 0,
        };
        match entries.create(&entry, &WriteToken::generate()).await {
            Ok(written) => {
                ledger.replayed += usize::from(written.replayed);
                ledger.done.push(key);
            }
            Err(RepositoryError::Conflict { .. }) => ledger.false_conflicts.push(key),
            Err(RepositoryError::Dynamodb(failure)) => {
                ledger.unknown.push(unresolved(&key, &failure));
            }
            Err(other) => ledger.other_errors.push(other.to_string()),
        }
        seq += 1;
    }
    ledger
}

pub async fn stored_items(
    table: &crate::common::TestTable,
) -> HashMap<String, HashMap<String, AttributeValue>> {
    let mut items = HashMap::new();
    let mut start = None;
    loop {
        let page = table
            .client()
            .scan()
            .table_name(table.name())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan");
        for item in page.items.unwrap_or_default() {
            let pk = item["pk"].as_s().unwrap().clone();
            items.insert(pk, item);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// The sum of one counter over every table and operation.
pub fn total(stats: &Stats, counter: impl Fn(&OperationStats) -> u64) -> u64 {
    let all = stats.tables.values().flat_map(|ops| ops.values());
    all.map(counter).sum()
}
