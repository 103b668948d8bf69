//! The HTTP application: `app` puts the routes, the rate-limit layer and the
//! middlewares together, `run` serves it.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{get, post};
use axum::{Json, Router};
use dynagate::http::{RateLimitLayer, error_response};
use http::StatusCode;
use utoipa::OpenApi;

use crate::errors::json_errors;
use crate::openapi::ApiDoc;
use crate::readiness::ready;
use crate::routes;
use crate::state::AppState;
use crate::telemetry::observe;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The router: the users API behind the rate-limit layer, and the
/// operational endpoints.
///
/// `limits: None` serves without the rate-limit layer (and so without API
/// keys): only for measuring what the layer costs.
pub fn app(state: AppState, limits: Option<RateLimitLayer>) -> Router {
    let api = Router::new()
        .route("/api/v1/users", post(routes::create_user))
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
        .route("/readyz", get(ready))
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { s.metrics.render() }),
        )
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .fallback(|| async { error_response(StatusCode::NOT_FOUND, "not_found", "no such route") });
    let router = match limits {
        Some(limits) => router.layer(limits),
        None => router,
    };
    router
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
