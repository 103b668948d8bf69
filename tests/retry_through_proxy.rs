//! The retry engine against DynamoDB Local behind the fault proxy, which
//! throttles as provisioned capacity does and injects DynamoDB's errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use dynagate::retry::RetryBudget;
use dynagate::retry::{GiveUp, RetryPolicy};
use dynagate::{Operation, ResilientClient};
use dynagate_fault_proxy::{Capacity, ErrorKind as Injected, Rule, RunningProxy};

async fn proxy(rules: Vec<Rule>) -> RunningProxy {
    common::fault_proxy(rules, 7).await
}

async fn client_through(proxy: &RunningProxy, policy: RetryPolicy) -> ResilientClient {
    ResilientClient::new(&common::sdk_config_via(&proxy.url()).await, policy)
}

fn put(
    dynamodb: &ResilientClient,
    table: &str,
    key: String,
) -> impl Future<Output = Result<(), dynagate::retry::RetryError<PutItemError>>> + use<> {
    let dynamodb = dynamodb.clone();
    let table = table.to_owned();
    async move {
        dynamodb
            .call(Operation::write("PutItem", &table).idempotent(), |sdk| {
                sdk.put_item()
                    .table_name(&table)
                    .item("pk", AttributeValue::S(key.clone()))
                    .item("payload", AttributeValue::S("x".repeat(200)))
                    .send()
            })
            .await
            .map(|_| ())
    }
}

async fn count_items(table: &common::TestTable) -> i32 {
    table
        .client()
        .scan()
        .table_name(table.name())
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .expect("Scan")
        .count()
}

#[tokio::test]
async fn writes_offered_at_twice_the_capacity_all_complete_with_backoff() {
    const CAPACITY: u32 = 20;
    const WRITES: usize = 40;
    let table = common::TestTable::create("twice-capacity").await;
    let proxy = proxy(vec![
        Rule::new(table.name(), "*").with_capacity(Capacity::new(None, Some(CAPACITY))),
    ])
    .await;
    let policy = RetryPolicy::builder()
        .max_attempts(30)
        .deadline(Duration::from_secs(60))
        .seed(3)
        .build()
        .unwrap();
    let dynamodb = client_through(&proxy, policy).await;

    // Offered at 2x capacity: one write every 1 / (2 * CAPACITY) s, each on its own.
    let mut writes = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / (2 * CAPACITY));
    for i in 0..WRITES {
        tick.tick().await;
        writes.spawn(put(&dynamodb, table.name(), format!("item-{i}")));
    }
    let mut failures = Vec::new();
    while let Some(result) = writes.join_next().await {
        if let Err(e) = result.expect("task") {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "every write completes: {failures:#?}");

    let stats = proxy.stats().operation(table.name(), "PutItem");
    assert!(
        stats.throttled_total() > 0,
        "the workload was really throttled: {stats:?}"
    );
    assert_eq!(
        stats.forwarded, WRITES as u64,
        "each write reached DynamoDB exactly once"
    );
    assert_eq!(count_items(&table).await, WRITES as i32);
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn under_constant_server_errors_the_budget_stops_the_storm() {
    const CALLERS: usize = 40;
    const MAX_ATTEMPTS: u32 = 10;
    let table = common::TestTable::create("storm").await;
    let proxy = proxy(vec![
        Rule::new(table.name(), "*").with_error(Injected::InternalServerError, 1.0),
    ])
    .await;
    // 50 tokens at 5 per retry and no refill by time: 10 retries for the client.
    let budget = Arc::new(
        RetryBudget::builder()
            .capacity(50)
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap(),
    );
    let policy = RetryPolicy::builder()
        .max_attempts(MAX_ATTEMPTS)
        .budget(budget)
        .deadline(Duration::from_secs(60))
        .seed(5)
        .build()
        .unwrap();
    let dynamodb = client_through(&proxy, policy).await;

    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLERS {
        let dynamodb = dynamodb.clone();
        let name = table.name().to_owned();
        callers.spawn(async move {
            dynamodb
                .call(Operation::read("GetItem", &name), |sdk| {
                    sdk.get_item()
                        .table_name(&name)
                        .key("pk", AttributeValue::S(format!("k{i}")))
                        .send()
                })
                .await
        });
    }
    let mut budget_give_ups = 0;
    while let Some(result) = callers.join_next().await {
        let error = result.expect("task").expect_err("every request fails");
        assert!(error.kind().is_some_and(|k| k.is_retryable()));
        if error.reason() == GiveUp::BudgetExhausted {
            budget_give_ups += 1;
        }
    }
    let requests = proxy.stats().table(table.name()).requests;
    assert_eq!(
        requests,
        (CALLERS + 10) as u64,
        "first attempts plus the budget's 10 retries, not {} (max attempts x callers)",
        CALLERS as u32 * MAX_ATTEMPTS
    );
    assert!(budget_give_ups >= CALLERS - 10, "{budget_give_ups}");
    proxy.shutdown().await;
    table.delete().await;
}

#[tokio::test]
async fn a_deadline_cuts_a_throttled_call_short() {
    let table = common::TestTable::create("deadline").await;
    // 1 WCU/s and an empty bank: almost every put is throttled.
    let proxy = proxy(vec![
        Rule::new(table.name(), "*").with_capacity(Capacity::new(None, Some(1))),
    ])
    .await;
    let dynamodb = client_through(
        &proxy,
        RetryPolicy::builder()
            .max_attempts(50)
            .seed(9)
            .build()
            .unwrap(),
    )
    .await;
    // Drain the first second's unit so the next puts are throttled.
    let _ = put(&dynamodb, table.name(), "warm-up".into()).await;

    let deadline = Duration::from_millis(400);
    let started = std::time::Instant::now();
    let name = table.name().to_owned();
    let mut outcomes = Vec::new();
    for i in 0..5 {
        let result = dynamodb
            .call(
                Operation::write("PutItem", &name)
                    .idempotent()
                    .deadline(deadline),
                |sdk| {
                    sdk.put_item()
                        .table_name(&name)
                        .item("pk", AttributeValue::S(format!("late-{i}")))
                        .item("payload", AttributeValue::S("x".repeat(3000)))
                        .send()
                },
            )
            .await;
        outcomes.push(result);
    }
    let elapsed = started.elapsed();
    let errors: Vec<_> = outcomes.into_iter().filter_map(Result::err).collect();
    assert!(
        !errors.is_empty(),
        "3-WCU puts at 1 WCU/s cannot all make a 400 ms deadline"
    );
    for error in &errors {
        assert_eq!(error.reason(), GiveUp::DeadlineExceeded, "{error}");
        assert!(error.is_throttling(), "{error}");
        // Loose: the point is "stops near its deadline", not a latency figure.
        assert!(
            error.elapsed() < deadline + Duration::from_secs(1),
            "{:?}",
            error.elapsed()
        );
    }
    // Five calls with a 400 ms deadline each; without it, 50 attempts each with
    // backoff up to 5 s would run for minutes. The bound is loose on purpose.
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    proxy.shutdown().await;
    table.delete().await;
}
