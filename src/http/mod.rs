//! Inbound rate limits for HTTP services (feature `axum`): a tower
//! [`Layer`](tower::Layer) usable on any axum router, the client address
//! behind trusted proxies, the `RateLimit` / `Retry-After` headers, and
//! errors as RFC 9457 problem details ([`Problem`]).
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use dynagate::http::RateLimitLayer;
//! use dynagate::limiter::{Limits, MemoryLimiter, Quota};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let per_ip = Limits::builder("ip").limit("second", Quota::per_second(10).burst(20)?).build()?;
//! let failed = Limits::builder("auth").limit("minute", Quota::per_minute(5).burst(5)?).build()?;
//! let layer = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
//!     .key_limits(per_ip.clone())
//!     .failed_auth(failed)
//!     .anonymous(per_ip)
//!     .build()?;
//! let app: axum::Router = axum::Router::new().layer(layer);
//! let service = app.into_make_service_with_connect_info::<SocketAddr>();
//! # let _ = service; Ok(())
//! # }
//! ```

mod auth;
mod charge;
mod checks;
mod client_ip;
mod conn_limits;
mod headers;
mod layer;
mod lockout;
mod penalty;
mod policy;
mod problem;
mod response;
mod serve;
mod service;
mod stack_errors;

pub use self::auth::{AuthFuture, AuthUnavailable, Authenticate, Caller, Observed, Refusal};
pub use self::charge::{CapacityCharge, Reserved};
pub use self::client_ip::{Cidr, ForwardedHeader, TrustedProxies};
pub use self::layer::{RateLimitConfig, RateLimitLayer, RateLimitLayerBuilder};
pub use self::penalty::{PenaltyBox, PenaltyBoxDenials, PenaltyBoxWindow};
pub use self::policy::{
    ChargeEntry, LimitEntry, PenaltyBoxEntry, Per, PerEntry, PeriodEntry, Policy, PolicyBuilder,
    PolicyEntry, PolicyFile, RouteMatch,
};
pub use self::problem::{Problem, ProblemType};
pub use self::response::error_response;
pub use self::serve::{ServeConfig, serve};
pub use self::service::RateLimit;

#[cfg(test)]
mod tests;
