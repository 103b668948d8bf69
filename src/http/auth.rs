//! Who is calling: the API key check the layer asks, and what it answers.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
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

/// Why a key was refused. Every refusal counts as a failed authentication
/// of the client's address; the answer tells the caller which it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No such key (or not even the shape of one): 401.
    Unknown,
    /// The key was valid until its expiry: 401, "issue a new key".
    Expired,
    /// The key was revoked by its owner or an operator: 401.
    Revoked,
    /// The key is suspended for abnormal usage (e.g. used from too many
    /// addresses): 403 with the RateLimit draft's "abnormal usage detected".
    Suspended {
        /// What was detected, for the caller (no secrets, no addresses).
        reason: String,
    },
}

/// The future an [`Authenticate`] returns: the caller of a valid key, or why
/// the key is refused; `Err` when the store cannot answer.
pub type AuthFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Result<Caller, Refusal>, AuthUnavailable>> + Send + 'a>>;

/// What the layer saw of an authenticated caller, for a key store that
/// watches for abuse (see [`Authenticate::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observed {
    /// A request of the caller's from this client address passed
    /// authentication.
    Request {
        /// The client address (after trusted proxies).
        client: IpAddr,
    },
    /// The caller was just put in the penalty box for denials in a row.
    PenaltyBox,
}

/// Checks an API key. Implementations validate the key's format first and
/// compare secrets in constant time; they must never log the key.
pub trait Authenticate: Send + Sync + fmt::Debug {
    /// Looks the key up.
    fn authenticate<'a>(&'a self, api_key: &'a str) -> AuthFuture<'a>;

    /// Tells the store what the layer saw of a caller, on the request path
    /// (keep it cheap and local: no I/O before returning). A store that
    /// suspends keys on abuse signals (one key from many addresses, a key
    /// that keeps landing in the penalty box) decides here. The default
    /// ignores it.
    fn observe(&self, caller: &Caller, observed: Observed) {
        let _ = (caller, observed);
    }

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
