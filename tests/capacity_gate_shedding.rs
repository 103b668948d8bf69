//! The fleet capacity gate sheds a standing queue (CoDel, RFC 8289) instead
//! of queueing every call up to `max_wait`: a bounded run at twice a table's
//! capacity, through the gate on the shared Redis, to DynamoDB Local behind
//! the fault proxy's capacity model.

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, put};
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate::retry::GiveUp;
use dynagate::{Direction, ResilientClient};
use dynagate_fault_proxy::{Capacity, Rule};
use redis::aio::ConnectionManager;
use tokio::time::Instant;

const CAPACITY: u32 = 20;
/// Twice the capacity, for two seconds.
const CALLS: usize = 80;
const EVERY: Duration = Duration::from_millis(25);
/// Calls offered from then on meet the queue as the overload left it.
const SETTLED: usize = 20;

/// What a run came to: per call, when it was offered (its index), how long
/// it took to its outcome, and whether it succeeded.
struct Run {
    outcomes: Vec<(usize, Duration, bool)>,
    /// The gate's state sampled just before the last call was offered.
    standing_at_end: bool,
    throttled: u64,
}

impl Run {
    fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|(_, _, ok)| *ok).count()
    }

    /// The longest time to outcome of the successful calls offered once
    /// the overload had settled.
    fn worst_settled_success(&self) -> Duration {
        let settled = self
            .outcomes
            .iter()
            .filter(|(i, _, ok)| *ok && *i >= SETTLED);
        settled.map(|(_, took, _)| *took).max().unwrap_or_default()
    }
}

fn gate(redis: &ConnectionManager, prefix: &str, table: &str, target: Duration) -> CapacityGate {
    let capacity = TableCapacity::provisioned(
        table,
        Throughput {
            read: f64::from(CAPACITY),
            write: f64::from(CAPACITY),
        },
    );
    CapacityGate::builder(redis.clone())
        .prefix(prefix.trim_end_matches(':'))
        .table(capacity)
        .burst(Duration::from_millis(100))
        .max_wait(Duration::from_secs(1))
        .queue_target(target)
        .queue_interval(Duration::from_millis(100))
        .redis_deadline(Duration::from_secs(2))
        .build()
        .expect("valid gate")
}

async fn run(client: &ResilientClient, gate: &CapacityGate, table: &str) -> Run {
    let mut calls = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(EVERY);
    let mut standing_at_end = false;
    for i in 0..CALLS {
        tick.tick().await;
        if i == CALLS - 1 {
            let state = gate.state(table, Direction::Write).await.unwrap().unwrap();
            standing_at_end = state.standing;
        }
        let (client, table) = (client.clone(), table.to_owned());
        calls.spawn(async move {
            let offered = Instant::now();
            let result = put(&client, &table, &format!("k{i}"), 100, 1.0).await;
            if let Err(e) = &result {
                assert_eq!(e.reason(), GiveUp::OverCapacity, "{e}");
                assert_eq!(e.attempts(), 0, "a refused call sends nothing: {e}");
                assert!(e.retry_after().is_some_and(|w| w > Duration::ZERO), "{e}");
            }
            (i, offered.elapsed(), result.is_ok())
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = calls.join_next().await {
        outcomes.push(joined.unwrap());
    }
    Run {
        outcomes,
        standing_at_end,
        throttled: 0,
    }
}

#[tokio::test]
async fn a_standing_queue_is_shed_and_the_admitted_calls_wait_at_most_the_target() {
    let shed_table = TestTable::create("capacity-shed").await;
    let queued_table = TestTable::create("capacity-queued").await;
    let (redis, keys) = common::redis().await;
    let rules = [shed_table.name(), queued_table.name()]
        .map(|t| {
            Rule::new(t, "*").with_capacity(
                Capacity::new(None, Some(CAPACITY))
                    .with_burst_seconds(1)
                    .with_initial_units(0, u64::from(CAPACITY)),
            )
        })
        .to_vec();
    let proxy = common::fault_proxy(rules, 2).await;
    let client = client(Some(&proxy.url()), Duration::from_secs(3)).await;

    let mut runs = Vec::new();
    // The default target, and one at max_wait: shedding off, the queue
    // grows to max_wait as it did before shedding.
    let cases = [
        (&shed_table, Duration::from_millis(10)),
        (&queued_table, Duration::from_secs(1)),
    ];
    for (table, target) in cases {
        let gate = gate(&redis, keys.prefix(), table.name(), target);
        let gated = client.clone().with_gate(gate.clone());
        let mut run = run(&gated, &gate, table.name()).await;
        run.throttled = proxy
            .stats()
            .operation(table.name(), "PutItem")
            .throttled_total();
        runs.push(run);
    }
    let [shed, queued] = &runs[..] else {
        unreachable!()
    };
    let summary = |r: &Run| {
        format!(
            "{} of {CALLS} succeeded, worst settled success {:?}, standing at end {}, {} throttled",
            r.succeeded(),
            r.worst_settled_success(),
            r.standing_at_end,
            r.throttled
        )
    };
    eprintln!("shedding: {}\nqueueing: {}", summary(shed), summary(queued));

    assert!(shed.standing_at_end, "{}", summary(shed));
    // Queued to max_wait, a settled call waits most of a second; shed, it
    // waits at most the target plus its own write.
    assert!(
        queued.worst_settled_success() > Duration::from_millis(600),
        "{}",
        summary(queued)
    );
    assert!(
        shed.worst_settled_success() < Duration::from_millis(300),
        "{}",
        summary(shed)
    );
    // Shed calls come back at once.
    let worst_refusal = shed.outcomes.iter().filter(|(_, _, ok)| !ok);
    let worst_refusal = worst_refusal.map(|(_, took, _)| *took).max().unwrap();
    assert!(
        worst_refusal < Duration::from_millis(200),
        "{worst_refusal:?}"
    );
    // The table stays as busy: 2 s of capacity and the bucket's burst,
    // give or take a call, and nothing throttled.
    let expected = 2 * CAPACITY as usize + 2;
    assert!(
        shed.succeeded() + 4 >= expected && shed.succeeded() <= expected + 4,
        "{}",
        summary(shed)
    );
    assert_eq!(shed.throttled, 0, "{}", summary(shed));

    proxy.shutdown().await;
    keys.cleanup().await;
    shed_table.delete().await;
    queued_table.delete().await;
}
