//! Inbound rate limits for HTTP services (feature `axum`): a tower
//! [`Layer`](tower::Layer) usable on any axum router, the client address
//! behind trusted proxies, and the `RateLimit` / `Retry-After` headers.
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use dynagate::http::RateLimitLayer;
//! use dynagate::limiter::{Limits, MemoryLimiter, Quota};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let per_ip = Limits::builder("ip").limit("second", Quota::per_second(20, 10)?).build()?;
//! let failed = Limits::builder("auth").limit("minute", Quota::per_minute(5, 5)?).build()?;
//! let layer = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()), per_ip.clone(), failed)
//!     .anonymous(per_ip)
//!     .build()?;
//! let app: axum::Router = axum::Router::new().layer(layer);
//! let service = app.into_make_service_with_connect_info::<SocketAddr>();
//! # let _ = service; Ok(())
//! # }
//! ```

pub mod client_ip;
pub mod headers;
mod layer;

use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

pub use self::client_ip::{Cidr, TrustedProxies};
pub use self::layer::{
    AuthFuture, AuthUnavailable, Authenticate, Caller, RateLimit, RateLimitConfig, RateLimitLayer,
    RateLimitLayerBuilder,
};

/// The one error shape of dynagate's HTTP side: `{"error": code, "message": ...}`.
/// The message is for the client: what was wrong and what to do, never internals.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
