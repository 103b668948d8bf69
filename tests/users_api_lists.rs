//! `GET /api/v1/users` over a real socket, against DynamoDB Local and Redis:
//! pages followed by cursor and `Link`, the email lookup through the global
//! index, every refusal (bad limit, forged, foreign and other-query cursors),
//! the partial page at the read budget, DynamoDB throttling as 503, and the
//! caller charged in the read units its lists consumed.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use dynagate::http::TrustedProxies;
use dynagate_fault_proxy::{ErrorKind, Rule};
use http::{Method, StatusCode};
use users_api_server::{Api, Reply, assert_error, user};

async fn create_users(api: &Api, ids: impl IntoIterator<Item = String>) {
    for id in ids {
        let created = api
            .call(Method::POST, "/api/v1/users", &[], &user(&id))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    }
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.json["users"]
        .as_array()
        .expect("a users array")
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect()
}

fn cursor(reply: &Reply) -> Option<String> {
    reply.json["next_cursor"].as_str().map(str::to_owned)
}

/// Puts `count` idempotency-record-shaped items of `bytes` each straight into
/// the table: what a list reads (and pays for) but never shows.
async fn put_records(api: &Api, count: usize, bytes: usize) {
    for i in 0..count {
        api.users
            .client()
            .put_item()
            .table_name(api.users.name())
            .item("user_id", AttributeValue::S(format!("idem#bulk-{i}")))
            .item("response", AttributeValue::S("r".repeat(bytes)))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_and_the_link_and_list_every_user_once() {
    let api = Api::start().await;
    create_users(&api, (0..12).map(|i| format!("u{i:02}"))).await;
    // A create with an Idempotency-Key stores a record beside the user.
    let keyed = api
        .call(
            Method::POST,
            "/api/v1/users",
            &[("idempotency-key", "k-1")],
            &user("keyed"),
        )
        .await;
    assert_eq!(keyed.status, StatusCode::CREATED);

    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=5".to_owned();
    for page in 0.. {
        assert!(page < 6, "bounded");
        let reply = api.call(Method::GET, &path, &[], "").await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        seen.extend(ids(&reply));
        let Some(next) = cursor(&reply) else {
            assert!(!reply.headers.contains_key("link"));
            break;
        };
        let link = reply.headers["link"].to_str().unwrap().to_owned();
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        assert!(link.contains("limit=5"), "{link}");
        assert!(link.contains(&format!("cursor={next}")), "{link}");
        path = link
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned();
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), 13, "every user once: {seen:?}");
    assert_eq!(unique.len(), 13);
    assert!(unique.contains("keyed"));
    assert!(
        !seen.iter().any(|id| id.starts_with("idem#")),
        "records are never listed"
    );
}

#[tokio::test]
async fn the_email_lookup_uses_the_index() {
    let api = Api::start().await;
    create_users(&api, ["ada".to_owned(), "bob".to_owned()]).await;
    let found = api
        .call(
            Method::GET,
            "/api/v1/users?email=bob%40example.com",
            &[],
            "",
        )
        .await;
    assert_eq!(found.status, StatusCode::OK, "{:?}", found.json);
    assert_eq!(ids(&found), ["bob"]);
    assert_eq!(found.json["next_cursor"], serde_json::Value::Null);
    let none = api
        .call(
            Method::GET,
            "/api/v1/users?email=nobody%40example.com",
            &[],
            "",
        )
        .await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let bad = api
        .call(Method::GET, "/api/v1/users?email=not-an-email", &[], "")
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400_with_a_reason() {
    let api = Api::start().await;
    create_users(&api, (0..4).map(|i| format!("c{i}"))).await;
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "limit=1&limit=2",
        "order=desc",
    ] {
        let reply = api
            .call(Method::GET, &format!("/api/v1/users?{bad}"), &[], "")
            .await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let first = api
        .call(Method::GET, "/api/v1/users?limit=2", &[], "")
        .await;
    let genuine = cursor(&first).expect("more pages");

    let garbage = api
        .call(Method::GET, "/api/v1/users?cursor=AAAA", &[], "")
        .await;
    assert_error(&garbage, StatusCode::BAD_REQUEST, "invalid_cursor");

    let mut flipped = genuine.clone().into_bytes();
    let last = flipped.len() - 3;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let tampered = api
        .call(
            Method::GET,
            &format!("/api/v1/users?limit=2&cursor={flipped}"),
            &[],
            "",
        )
        .await;
    assert_error(&tampered, StatusCode::BAD_REQUEST, "invalid_cursor");

    // Another caller's cursor: refused, and the message says why.
    let other_key = api.issue_key("someone else").await;
    let foreign = api
        .send(
            Method::GET,
            &format!("/api/v1/users?limit=2&cursor={genuine}"),
            &[("x-api-key", &other_key)],
            "",
        )
        .await;
    assert_error(&foreign, StatusCode::BAD_REQUEST, "invalid_cursor");
    assert!(
        foreign.json["message"].as_str().unwrap().contains("caller"),
        "{:?}",
        foreign.json
    );
    // The same cursor on another query (the email lookup).
    let other_query = api
        .call(
            Method::GET,
            &format!("/api/v1/users?email=c1%40example.com&cursor={genuine}"),
            &[],
            "",
        )
        .await;
    assert_error(&other_query, StatusCode::BAD_REQUEST, "invalid_cursor");

    // The genuine cursor, by its caller: the next page.
    let next = api
        .call(
            Method::GET,
            &format!("/api/v1/users?limit=2&cursor={genuine}"),
            &[],
            "",
        )
        .await;
    assert_eq!(next.status, StatusCode::OK, "{:?}", next.json);
    assert_eq!(ids(&next).len(), 2);
}

#[tokio::test]
async fn a_list_over_its_read_budget_is_a_partial_page_with_a_cursor() {
    let api = Api::start().await;
    create_users(&api, ["last".to_owned()]).await;
    // About 30 eventually consistent read units of records no list shows:
    // well past one list's budget of 16.
    put_records(&api, 60, 3900).await;
    let reply = api
        .call(Method::GET, "/api/v1/users?limit=100", &[], "")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.json["budget_exhausted"], true, "{:?}", reply.json);
    assert!(ids(&reply).len() < 100);
    assert!(cursor(&reply).is_some(), "a cursor to go on from");
    assert!(reply.headers.contains_key("link"));
}

#[tokio::test]
async fn a_list_charges_its_caller_what_it_read_and_only_that_caller() {
    let api = Api::start_configured(None, (100, 100), |config| {
        config.quotas.key_read_units_per_second = 10;
        config.quotas.key_read_units_burst = users_api::LIST_READ_UNITS;
    })
    .await;
    create_users(&api, ["x".to_owned()]).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the create's refund is spawned
    // A cheap list reserves the whole burst and is refunded all but what it
    // read (1 unit), so the next one passes 300 ms later; without the refund
    // it would wait 1.6 s for the burst to refill.
    for _ in 0..3 {
        let cheap = api
            .call(Method::GET, "/api/v1/users?limit=5", &[], "")
            .await;
        assert_eq!(cheap.status, StatusCode::OK, "{:?}", cheap.json);
        tokio::time::sleep(Duration::from_millis(300)).await; // the refund is spawned
    }
    // An expensive list spends the caller's read units: it reads up to its
    // budget (the reservation), which empties the bucket for 1.6 s.
    put_records(&api, 60, 3900).await;
    let expensive = api
        .call(Method::GET, "/api/v1/users?limit=100", &[], "")
        .await;
    assert_eq!(expensive.status, StatusCode::OK, "{:?}", expensive.json);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = api
        .call(Method::GET, "/api/v1/users?limit=5", &[], "")
        .await;
    assert_error(&refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    // The read units are the caller's own: another key lists at once.
    let other_key = api.issue_key("another caller").await;
    let other = api
        .send(
            Method::GET,
            "/api/v1/users?limit=5",
            &[("x-api-key", &other_key)],
            "",
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.json);
}

#[tokio::test]
async fn throttling_that_outlasts_the_deadline_is_503_with_retry_after() {
    let proxy = common::fault_proxy(Vec::new(), 7).await;
    let api = Api::start_with(Some(proxy.url()), (100, 100), TrustedProxies::none()).await;
    proxy.set_rules(
        dynagate_fault_proxy::RuleSet::new(vec![
            Rule::new(api.users.name(), "Scan")
                .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0),
        ])
        .unwrap(),
    );
    let reply = api.call(Method::GET, "/api/v1/users", &[], "").await;
    assert_error(&reply, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    let scans = proxy.stats().operation(api.users.name(), "Scan").requests;
    assert!(
        scans > 1,
        "the page was retried before giving up ({scans} scans)"
    );
}

/// The list flood of the abuse arena kept the table's read capacity busy;
/// a page whose later call the table had no room for was a 503 then, its
/// first call's users thrown away. Now it is the partial page it read.
#[tokio::test]
async fn a_page_the_table_is_too_busy_to_fill_is_what_it_read_with_a_cursor() {
    let proxy = common::fault_proxy(Vec::new(), 7).await;
    let api = Api::start_with(Some(proxy.url()), (100, 100), TrustedProxies::none()).await;
    create_users(&api, (0..6).map(|i| format!("busy-{i}"))).await;
    // Records no list shows, about 30 read units of them: a page of 100
    // (16 units at most) takes more than one call.
    put_records(&api, 60, 3900).await;
    proxy.set_rules(
        dynagate_fault_proxy::RuleSet::new(vec![
            Rule::new(api.users.name(), "Scan")
                .with_error(ErrorKind::ProvisionedThroughputExceeded, 1.0)
                .with_errors_after(1),
        ])
        .unwrap(),
    );
    let reply = api
        .call(Method::GET, "/api/v1/users?limit=100", &[], "")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.json["table_busy"], true, "{:?}", reply.json);
    assert_eq!(reply.json["budget_exhausted"], false, "{:?}", reply.json);
    let first = ids(&reply);
    let first_cursor = cursor(&reply).expect("a cursor to go on from");
    assert!(reply.headers.contains_key("link"));
    let scans = proxy.stats().operation(api.users.name(), "Scan");
    assert!(scans.injected_total() >= 1, "the second call was throttled");

    // With room again, the cursor lists the rest: every user once.
    proxy.set_rules(dynagate_fault_proxy::RuleSet::new(Vec::new()).unwrap());
    let mut seen = first;
    let mut next = Some(first_cursor);
    while let Some(at) = next {
        let page = api
            .call(
                Method::GET,
                &format!("/api/v1/users?limit=100&cursor={at}"),
                &[],
                "",
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.json);
        seen.extend(ids(&page));
        next = cursor(&page);
    }
    seen.sort();
    let expected: Vec<String> = (0..6).map(|i| format!("busy-{i}")).collect();
    assert_eq!(seen, expected);
}
