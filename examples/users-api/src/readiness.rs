//! `/readyz`: whether the service can reach what it needs.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::state::AppState;

/// DynamoDB and Redis reachable within a second each.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let dynamodb = tokio::time::timeout(
        Duration::from_secs(1),
        state
            .dynamodb
            .sdk()
            .describe_table()
            .table_name(&state.users_table)
            .send(),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let mut redis = state.redis.clone();
    let redis_ok = tokio::time::timeout(
        Duration::from_secs(1),
        redis::cmd("PING").query_async::<String>(&mut redis),
    )
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    let label = |ok| if ok { "ok" } else { "unreachable" };
    let status = if dynamodb && redis_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "dynamodb": label(dynamodb), "redis": label(redis_ok) })),
    )
        .into_response()
}
