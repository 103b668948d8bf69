//! Rate-limit policies from a `RATE_LIMIT_CONFIG` file, over a real socket
//! with a real Redis: a route group's limit, shadow mode counted in
//! `/metrics` and denying nothing, the penalty box holding a subject that
//! keeps being denied, and one Redis round trip per keyed request.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use std::time::Duration;

use dynagate::limiter::Leases;
use http::{Method, StatusCode};
use users_api_server::{Api, user};

/// A policy file of this test's own.
fn config_file(name: &str, toml: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "dg-policies-{name}-{}-{}.toml",
        std::process::id(),
        common::unique_name("f")
    ));
    std::fs::write(&path, toml).unwrap();
    path
}

async fn api_with(name: &str, toml: &str, quota: (u64, u64)) -> Api {
    let path = config_file(name, toml);
    Api::start_configured(None, quota, move |config| {
        config.rate_limit_config = Some(path);
    })
    .await
}

#[tokio::test]
async fn a_group_policy_limits_every_write_of_a_caller_together() {
    let api = api_with(
        "group",
        r#"
[[policy]]
name = "writes-group"
routes = ["POST /api/v1/users", "PUT /api/v1/users/{user_id}"]
limits = [{ name = "minute", rate = 1, per = "minute", burst = 2 }]
"#,
        (100, 100),
    )
    .await;
    let created = api
        .call(Method::POST, "/api/v1/users", &[], &user("a"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let change = r#"{"email": "b@example.com", "name": "B"}"#;
    let updated = api
        .call(
            Method::PUT,
            "/api/v1/users/a",
            &[("if-match", "\"1\"")],
            change,
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    let third = api
        .call(Method::POST, "/api/v1/users", &[], &user("c"))
        .await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        third.json
    );
    assert!(
        third.headers["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("\"writes-group.minute\""),
        "{:?}",
        third.headers
    );
    // Reads are not in the group.
    let read = api.call(Method::GET, "/api/v1/users/a", &[], "").await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn a_shadow_policy_denies_nothing_and_counts_what_it_would_have_denied() {
    let api = api_with(
        "shadow",
        r#"
[[policy]]
name = "shadow-lookups"
routes = ["GET /api/v1/users/{user_id}"]
shadow = true
limits = [{ name = "minute", rate = 1, per = "minute", burst = 1 }]
"#,
        (100, 100),
    )
    .await;
    for _ in 0..5 {
        let reply = api.call(Method::GET, "/api/v1/users/nobody", &[], "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let metrics = api.ops("/metrics").await.json;
    let text = metrics.as_str().unwrap_or_default();
    let would_deny = text
        .lines()
        .find(|l| {
            l.starts_with("dynagate_http_decisions_total")
                && l.contains("policy=\"shadow-lookups\"")
                && l.contains("decision=\"would_deny\"")
        })
        .unwrap_or_else(|| panic!("no would_deny line in:\n{text}"));
    let count: f64 = would_deny.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 4.0, "{would_deny}");
}

#[tokio::test]
async fn the_penalty_box_holds_a_caller_that_keeps_being_denied() {
    let api = api_with(
        "penalty",
        r#"
[penalty_box]
denials = 3
within_secs = 60
hold_secs = 60
"#,
        (1, 2),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            api.call(Method::GET, "/api/v1/users/x", &[], "")
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [404, 404, 429, 429, 429, 429]);
    // The key's bucket refills within 2 s; the box holds for a minute.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let boxed = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_eq!(boxed.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = boxed.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait > 50,
        "held for the box's minute, not the bucket's second: {wait}"
    );
}

/// `cmdstat_evalsha` calls on a Redis of this test's own.
async fn evalsha_calls(redis: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    info.lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|l| l.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_keyed_request_with_a_ceiling_and_a_route_policy_is_one_redis_round_trip() {
    let redis = common::ThrowawayRedis::start().await;
    let url = redis.url.clone();
    let path = config_file(
        "round-trip",
        r#"
[[policy]]
name = "rt-lookups"
routes = ["GET /api/v1/users/{user_id}"]
limits = [{ name = "minute", rate = 1000, per = "minute" }]
"#,
    );
    let api = Api::start_configured(None, (100, 100), move |config| {
        config.redis_url = url;
        config.rate_limit_config = Some(path);
    })
    .await;
    let mut connection = redis.manager().await;
    // The first request looks the key up (the ceiling goes first then).
    api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    tokio::time::sleep(Duration::from_millis(200)).await; // spawned settles land
    let before = evalsha_calls(&mut connection).await;
    for _ in 0..10 {
        let reply = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = evalsha_calls(&mut connection).await;
    assert_eq!(
        after - before,
        10,
        "the ceiling, the key's limits, the route policy and the read-unit reservation of a \
         request in one call each"
    );
}

/// The same request shape with `LIMITER_LEASE_TOKENS` on: most requests are
/// decided from this instance's leases, with no round trip at all, and every
/// one is still admitted exactly as without leases.
#[tokio::test]
async fn with_leases_most_keyed_requests_make_no_round_trip() {
    let redis = common::ThrowawayRedis::start().await;
    let url = redis.url.clone();
    let path = config_file(
        "round-trip-leased",
        r#"
[[policy]]
name = "rt-leased-lookups"
routes = ["GET /api/v1/users/{user_id}"]
limits = [{ name = "minute", rate = 100000, per = "minute" }]
"#,
    );
    let api = Api::start_configured(None, (10_000, 10_000), move |config| {
        config.redis_url = url;
        config.rate_limit_config = Some(path);
        config.limiter_leases = Some(Leases::up_to(32).unwrap());
        // Far from every limit, so leases grow to their largest.
        config.quotas.ip_per_second = 10_000;
        config.quotas.ip_burst = 10_000;
        config.quotas.key_read_units_per_second = 10_000;
        config.quotas.key_read_units_burst = 10_000;
    })
    .await;
    let mut connection = redis.manager().await;
    api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = evalsha_calls(&mut connection).await;
    for _ in 0..200 {
        let reply = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "admitted: {}",
            reply.json
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = evalsha_calls(&mut connection).await - before;
    // Leases grow 2, 4, 8, 16, 32: a handful of calls to grow, then one per
    // 33 requests.
    assert!(calls <= 20, "{calls} round trips for 200 requests");
    // Decided by Redis, not by the failure policy: a lease holds 32 at most.
    assert!(calls >= 200 / 33, "{calls} round trips for 200 requests");
}

#[tokio::test]
async fn the_services_own_failures_are_refunded_and_a_policy_per_address_spans_keys() {
    let proxy = common::fault_proxy(Vec::new(), 11).await;
    let path = config_file(
        "refund",
        r#"
[[policy]]
name = "refunded-writes"
routes = ["POST /api/v1/users"]
charge = "except-server-errors"
cost = 2
limits = [{ name = "minute", rate = 1, per = "minute", burst = 2 }]

[[policy]]
name = "lookups-per-address"
routes = ["GET /api/v1/users/{user_id}"]
per = "address"
limits = [{ name = "minute", rate = 1, per = "minute", burst = 3 }]
"#,
    );
    let api = Api::start_configured(Some(proxy.url()), (100, 100), move |config| {
        config.rate_limit_config = Some(path);
    })
    .await;
    // DynamoDB throttles every write for good: 503s, each refunded, so the
    // bucket (one write of cost 2) is still full afterwards.
    proxy.set_rules(
        dynagate_fault_proxy::RuleSet::new(vec![
            dynagate_fault_proxy::Rule::new(api.users.name(), "PutItem").with_error(
                dynagate_fault_proxy::ErrorKind::ProvisionedThroughputExceeded,
                1.0,
            ),
        ])
        .unwrap(),
    );
    for _ in 0..3 {
        let reply = api
            .call(Method::POST, "/api/v1/users", &[], &user("r"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // the refund is spawned
    }
    proxy.set_rules(dynagate_fault_proxy::RuleSet::new(Vec::new()).unwrap());
    let created = api
        .call(Method::POST, "/api/v1/users", &[], &user("r"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    let second = api
        .call(Method::POST, "/api/v1/users", &[], &user("s"))
        .await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a success is charged"
    );

    // Per address: three lookups from this address, whichever key, then 429.
    let other_key = api.issue_key("other").await;
    for key in [api.key.as_str(), other_key.as_str(), api.key.as_str()] {
        let reply = api
            .send(Method::GET, "/api/v1/users/r", &[("x-api-key", key)], "")
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    }
    let fourth = api
        .send(
            Method::GET,
            "/api/v1/users/r",
            &[("x-api-key", &other_key)],
            "",
        )
        .await;
    assert_eq!(fourth.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        fourth.json["violated-policies"],
        serde_json::json!(["lookups-per-address.minute"])
    );
}
