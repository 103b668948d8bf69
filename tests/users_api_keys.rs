//! The users API's key lifecycle over a real socket, against DynamoDB Local
//! and Redis: expiry, revocation and rotation, suspension on abuse signals,
//! and how soon a second instance on the same tables honours them.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use std::time::{Duration, Instant};

use dynagate::http::{Authenticate, Observed, Refusal, TrustedProxies};
use http::{Method, StatusCode};
use users_api::keys::{REVALIDATE_AFTER, key_id_of};
use users_api_server::{Api, Reply, assert_error};

/// What a second instance may take beyond [`REVALIDATE_AFTER`]: one
/// DynamoDB read and the polling step, on a loaded machine.
const MARGIN: Duration = Duration::from_secs(2);

async fn get_with(api: &Api, key: &str, forwarded: Option<&str>) -> Reply {
    let mut headers = vec![("x-api-key", key)];
    if let Some(client) = forwarded {
        headers.push(("x-forwarded-for", client));
    }
    api.send(Method::GET, "/api/v1/users/nobody", &headers, "")
        .await
}

/// Polls `api` with `key` until it answers `status`; how long it took, or a
/// failure naming the last answer once `bound` has passed.
async fn until_status(
    api: &Api,
    key: &str,
    status: StatusCode,
    bound: Duration,
) -> (Duration, Reply) {
    let started = Instant::now();
    loop {
        let reply = get_with(api, key, None).await;
        if reply.status == status {
            return (started.elapsed(), reply);
        }
        assert!(
            started.elapsed() < bound,
            "still {} after {bound:?}: {:?}",
            reply.status,
            reply.json
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_expired_key_is_refused_as_expired() {
    let api = Api::start().await;
    let key = api
        .key_store()
        .issue_expiring("short", 100, 100, 100_000, Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let issued = Instant::now();
    // Valid until its expiry (one to two seconds, rounded up to a second).
    assert_error(
        &get_with(&api, &key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (_, reply) =
        until_status(&api, &key, StatusCode::UNAUTHORIZED, Duration::from_secs(4)).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "expired_api_key");
    assert!(
        issued.elapsed() >= Duration::from_secs(1),
        "not before its expiry"
    );
}

#[tokio::test]
async fn revocation_reaches_a_second_instance_within_the_bound() {
    let api = Api::start().await;
    let second = api.second_instance().await;
    // Both instances have the key cached as valid.
    for instance in [&api, &second] {
        assert_error(
            &get_with(instance, &api.key, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let revoked = api.key_store().revoke(&key_id_of(&api.key)).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    for instance in [&second, &api] {
        let (took, reply) = until_status(
            instance,
            &api.key,
            StatusCode::UNAUTHORIZED,
            REVALIDATE_AFTER + MARGIN,
        )
        .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "revoked_api_key");
        assert!(took <= REVALIDATE_AFTER + MARGIN, "{took:?}");
    }
}

#[tokio::test]
async fn a_rotated_key_works_with_the_new_one_during_the_grace_then_expires() {
    let api = Api::start().await;
    assert_error(
        &get_with(&api, &api.key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let grace = Duration::from_secs(2);
    let (new_key, old) = api
        .key_store()
        .rotate(&key_id_of(&api.key), grace, None)
        .await
        .unwrap();
    let rotated = Instant::now();
    assert_eq!(old.owner, "tests");
    assert!(old.expires_at.is_some());
    // Both work during the grace.
    assert_error(
        &get_with(&api, &api.key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &get_with(&api, &new_key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // The old one expires after the grace; the serving instance had it
    // cached without an expiry, so it may take until its next read.
    let bound = grace.max(REVALIDATE_AFTER) + MARGIN;
    let (_, reply) = until_status(&api, &api.key, StatusCode::UNAUTHORIZED, bound).await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "expired_api_key");
    assert!(
        rotated.elapsed() >= grace - Duration::from_millis(100),
        "{:?}",
        rotated.elapsed()
    );
    assert_error(
        &get_with(&api, &new_key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
}

#[tokio::test]
async fn a_key_used_from_too_many_addresses_is_suspended_on_every_instance() {
    let api = Api::start_configured(None, (100, 100), |config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        config.key_abuse.max_addresses = 3;
    })
    .await;
    let second = api.second_instance().await;
    assert_error(
        &get_with(&second, &api.key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Three addresses are allowed; the fourth is the signal (its request
    // passed authentication already), and the next request is refused.
    for n in 1..=4 {
        let client = format!("203.0.113.{n}");
        let reply = get_with(&api, &api.key, Some(&client)).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "not_found");
    }
    let refused = get_with(&api, &api.key, Some("203.0.113.1")).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "suspended_api_key");
    let message = refused.json["message"].as_str().unwrap();
    assert!(
        message.contains("more than 3 client addresses"),
        "{message}"
    );
    assert!(
        !message.contains("203.0.113"),
        "no addresses in the answer: {message}"
    );

    let (took, reply) = until_status(
        &second,
        &api.key,
        StatusCode::FORBIDDEN,
        REVALIDATE_AFTER + MARGIN,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "suspended_api_key");
    assert!(took <= REVALIDATE_AFTER + MARGIN, "{took:?}");
    let stored = api.key_store().find(&key_id_of(&api.key)).await.unwrap();
    assert!(stored.suspended_until.is_some());

    let metrics = api.ops("/metrics").await;
    let text = metrics.json.as_str().unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.starts_with("users_api_key_suspensions_total{reason=\"many_addresses\"}")),
        "{text}"
    );
}

#[tokio::test]
async fn a_key_that_keeps_landing_in_the_penalty_box_is_suspended() {
    let api = Api::start().await;
    assert_error(
        &get_with(&api, &api.key, None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let store = api.key_store();
    let caller = store.authenticate(&api.key).await.unwrap().unwrap();
    // The layer's penalty box tells the store; three times (the default)
    // within the window suspend the key.
    for _ in 0..2 {
        store.observe(&caller, Observed::PenaltyBox);
        assert!(store.authenticate(&api.key).await.unwrap().is_ok());
    }
    store.observe(&caller, Observed::PenaltyBox);
    match store.authenticate(&api.key).await.unwrap() {
        Err(Refusal::Suspended { reason }) => {
            assert!(reason.contains("penalty box 3 times"), "{reason}")
        }
        other => panic!("not suspended at once: {other:?}"),
    }
    // Stored off the request path: the serving instance sees it within the bound.
    let (took, reply) = until_status(
        &api,
        &api.key,
        StatusCode::FORBIDDEN,
        REVALIDATE_AFTER + MARGIN,
    )
    .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "suspended_api_key");
    assert!(took <= REVALIDATE_AFTER + MARGIN, "{took:?}");
    let metrics = api.ops("/metrics").await;
    let text = metrics.json.as_str().unwrap_or_default();
    assert!(
        text.contains("users_api_key_suspensions_total{reason=\"penalty_box\"}"),
        "{text}"
    );
    // Lifting it: this store accepts the key again at once.
    store.unsuspend(&key_id_of(&api.key)).await.unwrap();
    assert!(store.authenticate(&api.key).await.unwrap().is_ok());
}

/// With `KEY_TAG_SECRETS`, a key the service never issued is refused by its
/// tag before any lookup: made-up keys rotated over 200 addresses (each
/// under its failed-authentication limit) read nothing from DynamoDB, while
/// the issued key is read once and then served from the cache.
#[tokio::test]
async fn made_up_keys_cost_no_dynamodb_read_when_keys_are_tagged() {
    let proxy = common::fault_proxy(Vec::new(), 7).await;
    let api = Api::start_configured(Some(proxy.url()), (100, 100), |config| {
        config.trusted_proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        config.key_tag_secrets = vec!["a-test-secret-of-at-least-32-characters".into()];
    })
    .await;
    let keys_table = api.config().keys_table.clone();
    for n in 0..200u32 {
        let key = format!("dg_{n:064x}");
        let client = format!("198.51.{}.{}", n / 100, n % 100 + 1);
        let reply = get_with(&api, &key, Some(&client)).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "invalid_api_key");
    }
    assert_eq!(
        proxy.stats().operation(&keys_table, "GetItem").requests,
        0,
        "a made-up key was looked up"
    );
    assert_eq!(
        api.key.len(),
        "dg_".len() + 64,
        "a tagged key keeps the shape"
    );
    for _ in 0..3 {
        let reply = get_with(&api, &api.key, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.json);
    }
    assert_eq!(
        proxy.stats().operation(&keys_table, "GetItem").requests,
        1,
        "the issued key: one lookup, then the cache"
    );
}
