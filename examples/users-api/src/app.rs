//! The HTTP application: `app` puts the routes, the rate-limit layer and the
//! middlewares together, `run` serves it.

use std::future::Future;

use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use dynagate::http::{RateLimitLayer, ServeConfig, error_response, serve};
use http::StatusCode;
use utoipa::OpenApi;

use crate::errors::json_errors;
use crate::openapi::ApiDoc;
use crate::readiness::ready;
use crate::state::AppState;
use crate::telemetry::observe;
use crate::{lists, routes};

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The router: the users API behind the rate-limit layer, `/healthz` and
/// `/openapi.json`. The operational endpoints are [`ops_app`], on a listener
/// of their own.
///
/// `limits: None` serves without the rate-limit layer (and so without API
/// keys): only for measuring what the layer costs.
pub fn app(state: AppState, limits: Option<RateLimitLayer>) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/users",
            post(routes::create_user).get(lists::list_users),
        )
        .route(
            "/api/v1/users/{user_id}",
            get(routes::get_user)
                .put(routes::update_user)
                .delete(routes::delete_user),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    let router = Router::new()
        .merge(api)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") });
    let router = match limits {
        Some(limits) => router.layer(limits),
        None => router,
    };
    router
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// A request that declares a body over the limit is refused before anything
/// reads it: hyper answers `Expect: 100-continue` with `100 Continue` as soon
/// as the body is first read, and a client that waited for it would then
/// send a megabyte only to get 413.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("the request body may be at most {BODY_LIMIT} bytes"),
        );
    }
    next.run(request).await
}

/// The operational endpoints, `/metrics` and `/readyz` (cached for a
/// second), for the operator's network only: `/metrics` shows the limiter's
/// state and the failed-auth counters, and each uncached `/readyz` costs a
/// `DescribeTable` and a `PING`, so neither is on the public listener.
pub fn ops_app(state: AppState) -> Router {
    Router::new()
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .with_state(state)
}

/// Serves `app` on `listener` with dynagate's connection limits (header,
/// idle and body timeouts; caps per client address and in total) until
/// `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    connections: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    serve(listener, app, connections, shutdown)
        .await
        .map_err(|e| e.to_string())
}
