//! Large calls do not crowd out small ones at the capacity gate: a flood of
//! 8-unit writes at eight times a table's capacity, and single-unit writes
//! at a fifth of it, at the same time, through the gate on the shared Redis
//! to DynamoDB Local. The large calls are shed; every small one goes.
//!
//! Before large calls had a rule of their own, the flood filled the queue up
//! to `max_wait` while it was young, and once it stood every small call that
//! arrived behind it waited above the target and was shed too (the users
//! API's abuse arena saw a legitimate GET answered 503 that way, behind a
//! list-page flood).

mod common;

use std::time::Duration;

use common::TestTable;
use common::capacity::{client, put};
use dynagate::capacity::{CapacityGate, TableCapacity, Throughput};
use dynagate::retry::GiveUp;
use tokio::time::Instant;

/// Write units per second: a unit takes 50 ms, an 8-unit call 400 ms.
const CAPACITY: f64 = 20.0;
const LARGE_EVERY: Duration = Duration::from_millis(50);
const SMALL_EVERY: Duration = Duration::from_millis(250);
const RUN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_flood_of_large_writes_is_shed_and_every_small_write_goes() {
    let table = TestTable::create("capacity-large").await;
    let (redis, keys) = common::redis().await;
    let gate = CapacityGate::builder(redis.clone())
        .prefix(keys.prefix().trim_end_matches(':'))
        .table(TableCapacity::provisioned(
            table.name(),
            Throughput {
                read: CAPACITY,
                write: CAPACITY,
            },
        ))
        .max_wait(Duration::from_secs(1))
        .queue_target(Duration::from_millis(100))
        .queue_interval(Duration::from_millis(400))
        .redis_deadline(Duration::from_secs(2))
        .build()
        .expect("valid gate");
    let client = client(None, Duration::from_secs(5)).await.with_gate(gate);

    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    let (mut next_large, mut next_small) = (started, started + Duration::from_millis(120));
    let mut i = 0;
    while next_large < started + RUN || next_small < started + RUN {
        // 8 KB (8 write units) estimated at 8, or 100 bytes at 1.
        let (at, large) = if next_large <= next_small {
            next_large += LARGE_EVERY;
            (next_large - LARGE_EVERY, true)
        } else {
            next_small += SMALL_EVERY;
            (next_small - SMALL_EVERY, false)
        };
        if at >= started + RUN {
            continue;
        }
        tokio::time::sleep_until(at).await;
        i += 1;
        let (client, table) = (client.clone(), table.name().to_owned());
        calls.spawn(async move {
            let (bytes, units) = if large { (8_000, 8.0) } else { (100, 1.0) };
            let result = put(&client, &table, &format!("k{i}"), bytes, units).await;
            if let Err(e) = &result {
                assert_eq!(e.reason(), GiveUp::OverCapacity, "{e}");
                assert_eq!(e.attempts(), 0, "a refused call sends nothing: {e}");
            }
            (large, result.is_ok())
        });
    }
    let (mut large, mut small) = ((0, 0), (0, 0));
    while let Some(joined) = calls.join_next().await {
        let (is_large, ok) = joined.unwrap();
        let counts = if is_large { &mut large } else { &mut small };
        counts.0 += 1;
        counts.1 += usize::from(ok);
    }
    eprintln!(
        "large: {} of {} written; small: {} of {}",
        large.1, large.0, small.1, small.0
    );
    assert_eq!(small.1, small.0, "every small write goes");
    // A large call goes when the queue is within the target; what is
    // admitted is paid within the run and max_wait after it: 60 units.
    assert!(large.1 >= 1 && large.1 <= 7, "large: {large:?}");
    assert!(large.0 >= 30, "large: {large:?}");

    keys.cleanup().await;
    table.delete().await;
}
