//! The ledger test: many concurrent writers through the fault proxy, which
//! throttles, answers 500s and drops responses after applying writes. Every
//! writer records what it was told; afterwards the table is compared with
//! that ledger: no duplicates, no false conflicts, nothing reported done that
//! is missing, no lost batch item. Writes whose answer was lost are resolved
//! as replays, and the writes left unresolved are bounded (see `run_ledger`).
//!
//! `LEDGER_WRITES` sets the number of single-item writes (default 10,000, at
//! least 1,000: with fewer, the 3 % of lost answers are too few to count on);
//! the long run is `LEDGER_WRITES=100000 cargo nextest run --test repository_ledger
//! --run-ignored all` (see the README).

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynagate::repository::RepositoryError;
use dynagate::retry::GiveUp::{BudgetExhausted, DeadlineExceeded, MaxAttempts};
use dynagate_fault_proxy::{Capacity, OperationStats, Rule};

use common::ledger::*;

/// Runs the writers, then checks the table against their ledgers.
///
/// Replays: a write whose answer the proxy lost after applying it is retried,
/// meets itself and reports `replayed`. The proxy loses ~3 % of the answers it
/// forwards, at random, so the test requires the fault it relies on (at least
/// `writes / 100` lost PutItem answers), then a replayed create; each replay
/// needs a lost answer of its own, so there are at most as many.
///
/// Unresolved writes (failed for good) each ran out of deadline, attempts or
/// retry budget (a lost answer alone never leaves a write unresolved); one
/// found applied was reported as may-have-applied; and they are at most 1 %.
/// Each write is idempotent with 10 attempts in 30 s, an attempt failing ~9 %
/// of the time (3 % each of 500s, throttles, lost answers, plus capacity
/// throttles): ten failures in a row are negligible, so more than 1 % means
/// the loop gives up on faults it should ride out.
async fn run_ledger(writes: u32) {
    assert!(
        writes >= MIN_WRITES,
        "LEDGER_WRITES={writes}: at least {MIN_WRITES} (see the module doc)"
    );
    let table = common::TestTable::create("ledger").await;
    let proxy = proxy().await;
    let entries = entries_through(&proxy, &table, Duration::from_secs(30)).await;

    let started = Instant::now();
    let per_writer = writes.div_ceil(WRITERS as u32);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..WRITERS as u32 {
        tasks.spawn(writer(id, per_writer, entries.clone()));
    }
    let mut ledgers = Vec::new();
    while let Some(ledger) = tasks.join_next().await {
        ledgers.push(ledger.expect("writer task"));
    }
    let elapsed = started.elapsed();
    let stored = Arc::new(stored_items(&table).await);
    let stats = proxy.stats();
    let puts = stats.operation(table.name(), "PutItem");

    let sum = |f: fn(&Ledger) -> usize| ledgers.iter().map(f).sum::<usize>();
    let done = sum(|l| l.done.len());
    let unknown = sum(|l| l.unknown.len());
    let replayed = sum(|l| l.replayed);
    let counter_replayed = sum(|l| l.counter_replayed);
    let batch_done = sum(|l| l.batch_done.len());
    let injected = total(&stats, OperationStats::injected_total);
    let dropped = total(&stats, |s| s.dropped_responses);
    eprintln!(
        "ledger: {} creates ({done} done, {replayed} replayed after a lost answer, {unknown} \
         given up), {} counter updates ({counter_replayed} replayed), {} batch items ({} \
         unprocessed), in {elapsed:.1?}; proxy injected {injected} errors, throttled {} \
         requests at {CAPACITY} WCU/s, held back {} batch items as unprocessed and dropped \
         {dropped} responses ({} of them PutItem)",
        done + unknown,
        sum(|l| l.counter_done as usize + l.counter_unknown.len()),
        batch_done + sum(|l| l.batch_unprocessed.len()),
        sum(|l| l.batch_unprocessed.len()),
        total(&stats, OperationStats::throttled_total),
        stats.table(table.name()).unprocessed,
        puts.dropped_responses,
    );

    for ledger in &ledgers {
        assert!(ledger.other_errors.is_empty(), "{:?}", ledger.other_errors);
        assert!(
            ledger.false_conflicts.is_empty(),
            "false conflicts: {:?}",
            ledger.false_conflicts
        );
        for key in ledger.done.iter().chain(&ledger.batch_done) {
            assert!(
                stored.contains_key(key),
                "{key} was reported done but is missing"
            );
        }
    }
    // No duplicates: each counter moved exactly once per reported update, plus
    // at most once per update that failed for good saying it may have applied.
    for (id, ledger) in ledgers.iter().enumerate() {
        let key = format!("counter-{id}");
        let version: u64 = stored[&key]["version"].as_n().unwrap().parse().unwrap();
        let applied = version - 1;
        let maybe = ledger.counter_unknown.iter().filter(|u| u.2);
        let token = stored[&key]
            .get(dynagate::repository::DEFAULT_TOKEN_ATTRIBUTE)
            .and_then(|t| t.as_s().ok());
        let writer_of_stored = ledger
            .counter_history
            .iter()
            .position(|u| Some(&u.token) == token);
        assert!(
            applied >= ledger.counter_done && applied <= ledger.counter_done + maybe.count() as u64,
            "counter {id}: version {version}, {} updates done, unresolved: {:?}; the stored \
             counter carries the token of update {writer_of_stored:?} of {}; last updates: {:?}",
            ledger.counter_done,
            ledger.counter_unknown,
            ledger.counter_history.len(),
            &ledger.counter_history[ledger.counter_history.len().saturating_sub(3)..]
        );
    }
    // Every stored entry was written by the ledger's writers, and the faults happened.
    assert!(stored.len() >= done + batch_done + WRITERS);
    assert!(done + unknown >= writes as usize);
    assert!(
        dropped > 0 && injected > 0,
        "the proxy injected faults: {stats}"
    );

    // Replays happened, each after a lost answer of its own.
    let lost = puts.dropped_responses;
    assert!(
        lost >= u64::from(writes / 100),
        "the proxy lost only {lost} PutItem answers after applying them: {stats}"
    );
    assert!(replayed > 0, "no create replayed after {lost} lost answers");
    assert!(
        (replayed + counter_replayed) as u64 <= lost + puts.upstream_errors,
        "{replayed} + {counter_replayed} replays, but only {lost} answers were lost"
    );

    // The writes left unresolved are bounded (see above).
    let unresolved: Vec<&Unresolved> = ledgers
        .iter()
        .flat_map(|l| l.unknown.iter().chain(&l.counter_unknown))
        .collect();
    for Unresolved(key, reason, may_have_applied) in &unresolved {
        let ran_out = matches!(reason, DeadlineExceeded | BudgetExhausted | MaxAttempts);
        assert!(ran_out, "{key}: an idempotent write gave up: {reason:?}");
        // Counters always exist; a create's key exists only if it was applied.
        let applied = key.starts_with("entry-") && stored.contains_key(key);
        assert!(
            !applied || *may_have_applied,
            "{key}: applied, reported not"
        );
    }
    assert!(
        unresolved.len() <= (writes / 100) as usize,
        "{} of {writes} writes unresolved: {unresolved:?}",
        unresolved.len()
    );
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn ledger_matches_the_table_under_throttles_5xx_and_dropped_responses() {
    let writes = std::env::var("LEDGER_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    run_ledger(writes).await;
}

#[tokio::test]
async fn a_batch_that_runs_out_of_time_names_exactly_the_items_not_written() {
    let table = common::TestTable::create("batch-deadline").await;
    // 5 WCU/s and 10 units banked: the first attempt writes 10 items, and
    // the other 50 cannot all be written within a 1 s deadline. (With an
    // empty bank, a jittered backoff that would overrun the deadline could
    // give up before any item fitted: 0 stored, seen once in CI.)
    let capacity = Capacity::new(None, Some(5)).with_initial_units(0, 10);
    let rule = Rule::new(table.name(), "*").with_capacity(capacity);
    let proxy = common::fault_proxy(vec![rule], 1).await;
    let entries = entries_through(&proxy, &table, Duration::from_secs(1)).await;
    let items: Vec<Entry> = (0..60)
        .map(|i| Entry {
            pk: format!("b{i}"),
            writer: 0,
            seq: i,
            version: 0,
        })
        .collect();

    let error = entries
        .batch_put(&items)
        .await
        .expect_err("cannot fit in 1 s");
    let RepositoryError::BatchIncomplete {
        unprocessed,
        uncertain,
        ..
    } = error
    else {
        panic!("{error:?}")
    };
    let unprocessed: HashSet<String> = unprocessed
        .iter()
        .map(|k| k.partition().as_s().unwrap().clone())
        .collect();
    let stored = stored_items(&table).await;
    assert!(
        !unprocessed.is_empty() && !stored.is_empty(),
        "{} stored",
        stored.len()
    );
    let uncertain: HashSet<String> = uncertain
        .iter()
        .map(|k| k.partition().as_s().unwrap().clone())
        .collect();
    assert!(unprocessed.is_disjoint(&uncertain));
    for item in &items {
        if unprocessed.contains(&item.pk) {
            assert!(
                !stored.contains_key(&item.pk),
                "{}: reported unprocessed but stored",
                item.pk
            );
        } else if !uncertain.contains(&item.pk) {
            assert!(
                stored.contains_key(&item.pk),
                "{}: reported written but missing",
                item.pk
            );
        }
    }
    proxy.shutdown().await;
    table.delete().await;
}
