//! `Idempotency-Key` over a real socket, against DynamoDB Local and Redis
//! (issue 14, point 9): a key is bound to its caller and to its request, the
//! same request replays the first result, and concurrent duplicates write once.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::{Method, StatusCode};
use serde_json::json;
use users_api_server::{Api, Reply, assert_error, user};

const USERS: &str = "/api/v1/users";

/// A request as the caller holding `api_key`.
async fn as_caller(
    api: &Api,
    api_key: &str,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut headers = vec![("x-api-key", api_key), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    api.send(method, path, &headers, body).await
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// The users in the table (the idempotency records left out), read strongly.
async fn stored_users(api: &Api) -> Vec<String> {
    let scan = api
        .users
        .client()
        .scan()
        .table_name(api.users.name())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = scan
        .items()
        .iter()
        .filter_map(|item| match item.get("user_id") {
            Some(AttributeValue::S(id)) if !id.starts_with("idem#") => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn the_same_key_and_request_replay_the_first_result() {
    let api = Api::start().await;
    let key = [("idempotency-key", "create-ada")];
    let first = api.call(Method::POST, USERS, &key, &user("ada")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);
    assert!(!replayed(&first));
    // The same request, its JSON spelled otherwise: a replay, not a conflict.
    let respelled = r#"{ "name": "Ada Lovelace",  "email": "ada@example.com", "user_id": "ada" }"#;
    let again = api.call(Method::POST, USERS, &key, respelled).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.json);
    assert!(replayed(&again));
    assert_eq!(again.json, first.json);
    assert_eq!(again.headers["location"], first.headers["location"]);
    assert_eq!(again.headers["etag"], "\"1\"");
    assert_eq!(stored_users(&api).await, ["ada"]);
}

/// A replay answers the first result even after the user was deleted: the
/// key stands for that one request, and repeating it writes nothing (the
/// IETF Idempotency-Key draft's semantics). So its 201 may name a user that
/// is gone, which is why tests/schemathesis.toml turns off the
/// "created resource not found" check.
#[tokio::test]
async fn a_replay_after_the_user_was_deleted_answers_the_first_result_and_writes_nothing() {
    let api = Api::start().await;
    let key = [("idempotency-key", "create-then-delete")];
    let first = api.call(Method::POST, USERS, &key, &user("ada")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);
    let deleted = api.call(Method::DELETE, "/api/v1/users/ada", &[], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.json);

    let again = api.call(Method::POST, USERS, &key, &user("ada")).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.json);
    assert!(replayed(&again));
    assert_eq!(again.json, first.json);
    let gone = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{:?}", gone.json);
    assert!(
        stored_users(&api).await.is_empty(),
        "the replay wrote nothing"
    );
}

/// The defect: the same key with a body naming another `user_id` gave 201
/// and created a second user.
#[tokio::test]
async fn the_key_with_another_request_is_422_and_writes_nothing() {
    let api = Api::start().await;
    let key = [("idempotency-key", "create-once")];
    let first = api.call(Method::POST, USERS, &key, &user("ada")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);

    let other_user = api.call(Method::POST, USERS, &key, &user("bob")).await;
    assert_error(
        &other_user,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let other_email =
        json!({ "user_id": "ada", "email": "other@example.com", "name": "Ada Lovelace" });
    let other_email = api
        .call(Method::POST, USERS, &key, &other_email.to_string())
        .await;
    assert_error(
        &other_email,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    // The key on another route is another request too.
    let change = json!({ "email": "ada@example.com", "name": "Ada Lovelace" }).to_string();
    let put = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("idempotency-key", "create-once"), ("if-match", "\"1\"")],
            &change,
        )
        .await;
    assert_error(
        &put,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );

    assert_eq!(stored_users(&api).await, ["ada"]);
    let ada = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_eq!(ada.json, first.json, "the first write stands");
}

#[tokio::test]
async fn another_callers_same_key_is_independent() {
    let api = Api::start().await;
    let other = api.issue_key("other-caller").await;
    let key = [("idempotency-key", "shared-key")];
    let first = api.call(Method::POST, USERS, &key, &user("ada")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);

    // Not the first caller's replay: its own request, with its own outcome.
    let same_request = as_caller(&api, &other, Method::POST, USERS, &key, &user("ada")).await;
    assert_error(&same_request, StatusCode::CONFLICT, "conflict");
    let its_own = as_caller(&api, &other, Method::POST, USERS, &key, &user("bob")).await;
    assert_eq!(its_own.status, StatusCode::CREATED, "{:?}", its_own.json);
    assert!(!replayed(&its_own));
    let its_replay = as_caller(&api, &other, Method::POST, USERS, &key, &user("bob")).await;
    assert!(replayed(&its_replay), "{:?}", its_replay.json);
    assert_eq!(stored_users(&api).await, ["ada", "bob"]);
}

/// POSTs every body at once under one `Idempotency-Key`.
async fn all_at_once(api: &Arc<Api>, key: &'static str, bodies: Vec<String>) -> Vec<Reply> {
    let mut requests = tokio::task::JoinSet::new();
    for body in bodies {
        let api = Arc::clone(api);
        requests.spawn(async move {
            api.call(Method::POST, USERS, &[("idempotency-key", key)], &body)
                .await
        });
    }
    requests.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_write_once() {
    let api = Arc::new(Api::start().await);
    let replies = all_at_once(&api, "burst-same", vec![user("cy"); 6]).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json);
        assert_eq!(reply.json, replies[0].json);
    }
    let written = replies.iter().filter(|r| !replayed(r)).count();
    assert_eq!(written, 1, "one request wrote, the others replayed it");

    // Racing requests that share a key but name different users: one wins.
    let bodies = (0..6).map(|n| user(&format!("race{n}"))).collect();
    let replies = all_at_once(&api, "burst-other", bodies).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        5,
        "{statuses:?}"
    );
    let users = stored_users(&api).await;
    assert_eq!(users.len(), 2, "cy and one racer: {users:?}");
}

#[tokio::test]
async fn an_update_replays_under_its_key_and_the_key_stays_bound() {
    let api = Api::start().await;
    for id in ["ada", "bob"] {
        let created = api.call(Method::POST, USERS, &[], &user(id)).await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let change = json!({ "email": "new@example.com", "name": "Ada" }).to_string();
    let (api, change) = (&api, &change);
    let put = |path: &'static str, version: &'static str| async move {
        api.call(
            Method::PUT,
            path,
            &[("idempotency-key", "change-1"), ("if-match", version)],
            change,
        )
        .await
    };
    let first = put("/api/v1/users/ada", "\"1\"").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.json);
    assert_eq!(first.json["version"], 2);
    // Without the key, this retry would find version 2 and get 412.
    let again = put("/api/v1/users/ada", "\"1\"").await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.json);
    assert!(replayed(&again));
    assert_eq!(again.json, first.json);
    // The key on another user is another request: it changes nothing.
    let elsewhere = put("/api/v1/users/bob", "\"1\"").await;
    assert_error(
        &elsewhere,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let bob = api.call(Method::GET, "/api/v1/users/bob", &[], "").await;
    assert_eq!(bob.json["email"], "bob@example.com");
    assert_eq!(bob.json["version"], 1);
    // A failed request stores nothing: its key stays free.
    let stale = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("idempotency-key", "change-2"), ("if-match", "\"1\"")],
            change,
        )
        .await;
    assert_error(&stale, StatusCode::PRECONDITION_FAILED, "version_mismatch");
    let fixed = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("idempotency-key", "change-2"), ("if-match", "\"2\"")],
            change,
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{:?}", fixed.json);
    assert_eq!(fixed.json["version"], 3);
}

#[tokio::test]
async fn the_openapi_document_lists_the_key_and_its_422() {
    let api = Api::start().await;
    let openapi = api.send(Method::GET, "/openapi.json", &[], "").await;
    for (path, method) in [(USERS, "post"), ("/api/v1/users/{user_id}", "put")] {
        let operation = &openapi.json["paths"][path][method];
        assert!(
            operation["responses"].get("422").is_some(),
            "{method} {path} lists 422"
        );
        let params = operation["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
            "{method} {path} documents Idempotency-Key"
        );
    }
}

/// Writes are charged to their caller in write units (`KEY_WRITE_UNITS_*`).
/// A replay is answered from the stored record, read first: it costs a read
/// and none of them, however often it comes. A create of a user that exists
/// writes nothing, yet DynamoDB charges the write whose condition failed, and
/// so does the caller's quota: a key repeating it runs out of write units
/// (429) instead of taking the table's write capacity, while its reads and
/// another key's writes go on.
#[tokio::test]
async fn replays_cost_no_write_units_and_failed_writes_cost_theirs() {
    let api = Api::start_configured(None, (100, 100), |config| {
        config.quotas.key_write_units_per_second = 1;
        config.quotas.key_write_units_burst = 2 * users_api::WRITE_UNITS_KEYED;
    })
    .await;
    let key = [("idempotency-key", "create-grace")];
    let first = api.call(Method::POST, USERS, &key, &user("grace")).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.json);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await; // the settle is spawned
    for _ in 0..5 {
        let again = api.call(Method::POST, USERS, &key, &user("grace")).await;
        assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.json);
        assert!(replayed(&again));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The same user again without a key: 409, and charged each time.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let again = api.call(Method::POST, USERS, &[], &user("grace")).await;
        statuses.push(again.status);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = statuses
        .iter()
        .position(|s| *s == StatusCode::TOO_MANY_REQUESTS)
        .expect("the failed writes ran out of write units");
    assert!(
        statuses[..refused]
            .iter()
            .all(|s| *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    // Reads cost no write units.
    let read = api.call(Method::GET, "/api/v1/users/grace", &[], "").await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.json);
    // The write units are the caller's own.
    let other = api.issue_key("another writer").await;
    let created = as_caller(&api, &other, Method::POST, USERS, &[], &user("hopper")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    assert_eq!(stored_users(&api).await, ["grace", "hopper"]);
}
