//! The users API's rate-limit layer over a real socket, against DynamoDB
//! Local and Redis: API keys, guessing them, a key's quota, and limits behind
//! a trusted proxy.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use dynagate::http::TrustedProxies;
use http::{Method, StatusCode};
use users_api_server::{Api, Reply, assert_error};

#[tokio::test]
async fn keys_are_required_and_guessing_them_is_limited_per_address() {
    let api = Api::start().await;
    // The caller uses its valid key once, so this instance knows it.
    let known = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_error(&known, StatusCode::NOT_FOUND, "not_found");
    let missing = api.send(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "missing_api_key");
    let query_string = api
        .send(
            Method::GET,
            &format!("/api/v1/users/x?api_key={}", api.key),
            &[],
            "",
        )
        .await;
    assert_eq!(
        query_string.status,
        StatusCode::UNAUTHORIZED,
        "keys are read from the header only"
    );

    // Ten failed authentications per address (two of them above), then 429.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let guess = format!("dg_{:064x}", i);
        statuses.push(
            api.send(Method::GET, "/api/v1/users/x", &[("x-api-key", &guess)], "")
                .await,
        );
    }
    let unauthorized = statuses
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<&Reply> = statuses
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(unauthorized, 8, "eight more guesses are answered 401");
    assert_eq!(limited.len(), 4);
    assert!(limited[0].headers.contains_key("retry-after"));
    // A forged X-Forwarded-For from an untrusted peer does not buy a new bucket.
    let forged = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[
                ("x-api-key", "dg_nope"),
                ("x-forwarded-for", "203.0.113.77"),
            ],
            "",
        )
        .await;
    assert_error(&forged, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    // A valid key this instance knows still works from the locked-out address
    // (unknown keys are refused there without a lookup: cheap before expensive).
    let ok = api.call(Method::GET, "/api/v1/users/x", &[], "").await;
    assert_error(&ok, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_key_over_its_quota_gets_429_with_retry_after() {
    let api = Api::start_with(None, (1, 5), TrustedProxies::none()).await;
    // The test key holds a burst of 5 tokens and regains one a second; a GET costs 1.
    let mut replies = Vec::new();
    for _ in 0..8 {
        replies.push(api.call(Method::GET, "/api/v1/users/nobody", &[], "").await);
    }
    let allowed = replies
        .iter()
        .filter(|r| r.status == StatusCode::NOT_FOUND)
        .count();
    assert!(
        (5..=6).contains(&allowed),
        "burst of 5 (+1 refilled at most): {allowed}"
    );
    let denied = replies
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a 429");
    assert_error(denied, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = denied.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let rate_limit = denied.headers["ratelimit"].to_str().unwrap();
    assert!(rate_limit.contains("r=0"));
    // The problem names the policy the `RateLimit` field names.
    let policy = &denied.json["violated-policies"][0];
    assert!(
        rate_limit.starts_with(&format!("{policy};")),
        "{rate_limit} vs {policy}"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_key_is_limited_across_client_addresses() {
    // The test client is the "proxy" on 127.0.0.1 and names the clients in
    // X-Forwarded-For.
    let trusted = TrustedProxies::parse("127.0.0.1").unwrap();
    let api = Api::start_with(None, (1, 6), trusted).await;
    let mut statuses = Vec::new();
    for i in 0..9 {
        let client = format!("203.0.113.{}", i % 3 + 1);
        let reply = api
            .call(
                Method::GET,
                "/api/v1/users/nobody",
                &[("x-forwarded-for", &client)],
                "",
            )
            .await;
        statuses.push(reply.status);
    }
    let served = statuses
        .iter()
        .filter(|s| **s == StatusCode::NOT_FOUND)
        .count();
    assert!(
        (6..=7).contains(&served),
        "one key, one bucket, whatever the address: {statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));

    // Failed authentications are counted per client address behind the proxy:
    // one address cut off does not cut off another.
    for _ in 0..11 {
        api.send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await;
    }
    let cut_off = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await;
    assert_error(&cut_off, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let other = api
        .send(
            Method::GET,
            "/api/v1/users/x",
            &[("x-api-key", "dg_bad"), ("x-forwarded-for", "198.51.100.2")],
            "",
        )
        .await;
    assert_error(&other, StatusCode::UNAUTHORIZED, "invalid_api_key");
}
