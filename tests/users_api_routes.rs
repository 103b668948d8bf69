//! The users API's routes over a real socket, against DynamoDB Local and
//! Redis: the user's life cycle, conflicts and idempotency keys, every
//! bad-input status, and the operational endpoints.
#![cfg(feature = "axum")]

mod common;
mod users_api_server;

use http::{Method, StatusCode};
use serde_json::json;
use users_api_server::{Api, assert_error, user};

#[tokio::test]
async fn create_read_update_delete() {
    let api = Api::start().await;
    let created = api
        .call(Method::POST, "/api/v1/users", &[], &user("ada"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
    assert_eq!(created.headers["location"], "/api/v1/users/ada");
    assert_eq!(created.headers["etag"], "\"1\"");
    assert_eq!(created.json["version"], 1);

    let read = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json["email"], "ada@example.com");
    assert_eq!(read.headers["etag"], "\"1\"");
    assert!(
        read.headers.contains_key("ratelimit") && read.headers.contains_key("ratelimit-policy")
    );

    let change = json!({ "email": "countess@example.com", "name": "Ada King" }).to_string();
    let updated = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("if-match", "\"1\"")],
            &change,
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.json);
    assert_eq!(updated.headers["etag"], "\"2\"");
    let stale = api
        .call(
            Method::PUT,
            "/api/v1/users/ada",
            &[("if-match", "\"1\"")],
            &change,
        )
        .await;
    assert_error(&stale, StatusCode::PRECONDITION_FAILED, "version_mismatch");
    let unconditional = api
        .call(Method::PUT, "/api/v1/users/ada", &[], &change)
        .await;
    assert_error(
        &unconditional,
        StatusCode::PRECONDITION_REQUIRED,
        "precondition_required",
    );

    let deleted = api
        .call(
            Method::DELETE,
            "/api/v1/users/ada",
            &[("if-match", "\"2\"")],
            "",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api.call(Method::GET, "/api/v1/users/ada", &[], "").await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let again = api.call(Method::DELETE, "/api/v1/users/ada", &[], "").await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn conflicts_and_idempotency_keys() {
    let api = Api::start().await;
    let key = [("idempotency-key", "req-123")];
    let first = api
        .call(Method::POST, "/api/v1/users", &key, &user("bob"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = api
        .call(Method::POST, "/api/v1/users", &key, &user("bob"))
        .await;
    assert_eq!(
        replay.status,
        StatusCode::CREATED,
        "the same key and body replay the first result"
    );
    assert_eq!(replay.json, first.json);
    let other_body =
        json!({ "user_id": "bob", "email": "other@example.com", "name": "Bob" }).to_string();
    let reused = api
        .call(Method::POST, "/api/v1/users", &key, &other_body)
        .await;
    assert_error(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    );
    let conflict = api
        .call(Method::POST, "/api/v1/users", &[], &user("bob"))
        .await;
    assert_error(&conflict, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_never_a_500() {
    let api = Api::start().await;
    let post = |body: &'static str| api.call(Method::POST, "/api/v1/users", &[], body);
    let malformed = post("{\"user_id\": \"x\",").await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        malformed.json["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{:?}",
        malformed.json
    );
    let unknown = post(r#"{"user_id":"x","email":"x@example.com","name":"X","admin":true}"#).await;
    assert_error(&unknown, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(unknown.json["message"].as_str().unwrap().contains("admin"));
    let missing = post(r#"{"user_id":"x","name":"X"}"#).await;
    assert!(missing.json["message"].as_str().unwrap().contains("email"));
    for (body, field) in [
        (
            r#"{"user_id":"a b","email":"x@example.com","name":"X"}"#,
            "user_id",
        ),
        (
            r#"{"user_id":"x","email":"not-an-address","name":"X"}"#,
            "email",
        ),
        (
            r#"{"user_id":"x","email":"x@example.com","name":"   "}"#,
            "name",
        ),
    ] {
        let reply = post(body).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
        assert!(
            reply.json["message"].as_str().unwrap().contains(field),
            "{:?}",
            reply.json
        );
    }
    let text = api
        .send(
            Method::POST,
            "/api/v1/users",
            &[("x-api-key", &api.key), ("content-type", "text/plain")],
            &user("t"),
        )
        .await;
    assert_error(
        &text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = format!(
        r#"{{"user_id":"h","email":"h@example.com","name":"{}"}}"#,
        "x".repeat(64 * 1024)
    );
    let too_large = api.call(Method::POST, "/api/v1/users", &[], &huge).await;
    assert_error(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    let bad_id = api
        .call(Method::GET, "/api/v1/users/bad%20id", &[], "")
        .await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_input");
    let bad_etag = api
        .call(
            Method::PUT,
            "/api/v1/users/x",
            &[("if-match", "soon")],
            &user("x"),
        )
        .await;
    assert_error(&bad_etag, StatusCode::BAD_REQUEST, "invalid_input");
    let no_route = api.call(Method::GET, "/api/v2/nothing", &[], "").await;
    assert_error(&no_route, StatusCode::NOT_FOUND, "not_found");
    let wrong_method = api.call(Method::PATCH, "/api/v1/users/x", &[], "").await;
    assert_error(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = Api::start().await;
    let health = api.send(Method::GET, "/healthz", &[], "").await;
    assert_eq!(
        (health.status, &health.json["status"]),
        (StatusCode::OK, &json!("ok"))
    );
    let ready = api.ops("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.json);
    assert_eq!(ready.json, json!({ "dynamodb": "ok", "redis": "ok" }));
    // Issue 14, point 10: the operational endpoints are not on the public
    // listener (the public one answers them like any unknown path).
    for path in ["/readyz", "/metrics"] {
        let public = api.send(Method::GET, path, &[], "").await;
        assert_eq!(
            public.status,
            StatusCode::NOT_FOUND,
            "{path} on the public listener"
        );
    }

    api.call(Method::POST, "/api/v1/users", &[], &user("m"))
        .await;
    // A method HTTP does not define is counted as OTHER: a label per token
    // a client makes up would add a series (and memory) per request.
    let brew = Method::from_bytes(b"BREW").unwrap();
    let made_up = api.send(brew, "/api/v1/users/m", &[], "").await;
    assert!(made_up.status.is_client_error(), "{:?}", made_up.status);
    let metrics = api.ops("/metrics").await;
    let text = metrics.json.as_str().expect("Prometheus text");
    assert!(
        text.contains(r#"method="OTHER""#) && !text.contains("BREW"),
        "{text}"
    );
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "dynagate_limiter_decisions_total",
        "dynagate_dynamodb_attempts_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let openapi = api.send(Method::GET, "/openapi.json", &[], "").await;
    let paths = openapi.json["paths"].as_object().expect("paths");
    assert!(paths.contains_key("/api/v1/users") && paths.contains_key("/api/v1/users/{user_id}"));
    let item = &openapi.json["paths"]["/api/v1/users/{user_id}"];
    for method in ["get", "put", "delete"] {
        assert!(item.get(method).is_some(), "{method} documented");
    }
}
