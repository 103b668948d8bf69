//! `/readyz`: whether the service can reach what it needs. The answer is
//! kept for a second: a probe costs a `DescribeTable` and a `PING`, and a
//! flood of probes must not turn into a flood of those.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::state::AppState;

/// How long a readiness answer is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The last readiness answer and when it was found.
#[derive(Debug, Clone, Default)]
pub struct ReadinessCache(Arc<Mutex<Option<(Instant, StatusCode, serde_json::Value)>>>);

/// DynamoDB and Redis reachable within a second each (answered from the
/// cache when the last check is under a second old).
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let cached = state
        .readiness
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some((at, status, body)) = cached
        && at.elapsed() < FRESH_FOR
    {
        return (status, Json(body)).into_response();
    }
    let (status, body) = check(&state).await;
    *state.readiness.0.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((Instant::now(), status, body.clone()));
    (status, Json(body)).into_response()
}

async fn check(state: &AppState) -> (StatusCode, serde_json::Value) {
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
        serde_json::json!({ "dynamodb": label(dynamodb), "redis": label(redis_ok) }),
    )
}
