//! Who is calling: the API key check the layer asks, and what it answers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::limiter::Limits;

/// A caller identified by its API key. The layer hands it to the handler as a
/// request extension (`Extension<Caller>`, or `request.extensions()`).
#[derive(Debug, Clone)]
pub struct Caller {
    /// A stable, non-secret identifier of the key (never the key itself): the
    /// rate-limit subject and what logs may show.
    pub id: String,
    /// This key's own limits; `None` uses the layer's default key limits.
    pub limits: Option<Arc<Limits>>,
}

/// The key store could not answer (e.g. DynamoDB unavailable); the layer
/// answers 503, never 500, and never lets the request through unchecked.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the API key store is unavailable")]
pub struct AuthUnavailable;

/// The future an [`Authenticate`] returns.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Caller>, AuthUnavailable>> + Send + 'a>>;

/// Checks an API key: `Some(caller)` for a valid key, `None` for an invalid
/// one. Implementations validate the key's format first and compare secrets in
/// constant time; they must never log the key.
pub trait Authenticate: Send + Sync + fmt::Debug {
    /// Looks the key up.
    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a>;

    /// The caller of a key known to be valid from local state alone (a cache
    /// of recent lookups), without any I/O; `None` when unknown. The layer
    /// asks this for an address locked out for failed authentications: a
    /// valid key it already knows still passes, any other key is refused
    /// without a lookup. The default knows nothing.
    fn cached(&self, api_key: &str) -> Option<Caller> {
        let _ = api_key;
        None
    }
}
