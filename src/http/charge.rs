//! Charging callers in the capacity their requests consumed.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use crate::limiter::{Limits, RateLimiter};
use crate::operation::Direction;
use crate::usage::Usage;

type ReserveFn = dyn Fn(&Parts) -> u64 + Send + Sync;

/// Prices requests in the capacity units they consumed.
///
/// A fixed price per request is what a scraper wants: a list that reads 60
/// read units costs it the same as a GET of one small item. A
/// [`CapacityCharge`] prices requests in DynamoDB capacity units instead:
///
/// 1. before the handler runs, the layer **reserves** the most the request
///    may consume (a `check` of that many tokens from the caller's unit
///    buckets); a caller without that much left gets 429 and costs nothing;
/// 2. the handler runs inside a [usage meter](crate::usage), which adds up
///    the `ConsumedCapacity` DynamoDB reports for every call it makes; the
///    reservation is in the request's extensions ([`Reserved`]) so that the
///    handler can size a listing's [read budget](crate::repository::ReadBudget)
///    to it;
/// 3. after the handler the layer **settles**: it refunds what was reserved
///    and not consumed, or debits what was consumed beyond the reservation
///    (a handler that overran its budget; a debit never takes a bucket below
///    empty, see [`RateLimiter::settle`](crate::limiter::RateLimiter::settle)).
///
/// Reserving up front is what makes the quota hold: a caller who lists as
/// fast as it can consumes at most its quota's rate plus its burst, measured
/// in the units the table really paid. Units are rounded up to whole units
/// per request (two eventually consistent reads of a small item cost 1 unit
/// each, not half): the buckets count whole tokens, and rounding up never
/// undercharges.
///
/// The settle runs after the response is handed back (it is spawned), so a
/// caller's very next request may see its bucket before the refund: that
/// errs on the strict side, and a debit (an overrun) can lag one request.
#[derive(Clone)]
pub struct CapacityCharge {
    pub(crate) direction: Direction,
    pub(crate) limits: Arc<Limits>,
    pub(crate) reserve: Arc<ReserveFn>,
    pub(crate) max_reserve: u64,
}

impl fmt::Debug for CapacityCharge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapacityCharge")
            .field("direction", &self.direction)
            .field("limits", &self.limits)
            .field("max_reserve", &self.max_reserve)
            .finish_non_exhaustive()
    }
}

impl CapacityCharge {
    /// Charges read capacity units against `limits` (quotas stated in read
    /// units, e.g. `Quota::per_second(20).burst(100)`), reserving 1 unit per
    /// request unless [`reserve`](Self::reserve) says otherwise.
    pub fn read_units(limits: Limits) -> CapacityCharge {
        CapacityCharge::new(Direction::Read, limits)
    }

    /// Charges write capacity units against `limits`.
    pub fn write_units(limits: Limits) -> CapacityCharge {
        CapacityCharge::new(Direction::Write, limits)
    }

    fn new(direction: Direction, limits: Limits) -> CapacityCharge {
        CapacityCharge {
            direction,
            limits: Arc::new(limits),
            reserve: Arc::new(|_| 1),
            max_reserve: 1,
        }
    }

    /// The units to reserve for a request (the most it may consume), and
    /// the most any request reserves. The layer's `build` refuses limits
    /// whose burst cannot hold `max`; a reservation above `max` is `max`.
    pub fn reserve(
        mut self,
        max: u64,
        reserve: impl Fn(&Parts) -> u64 + Send + Sync + 'static,
    ) -> CapacityCharge {
        self.reserve = Arc::new(reserve);
        self.max_reserve = max;
        self
    }

    /// Whether this charge counts reads or writes.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The limits the units are charged against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn reservation(&self, parts: &Parts) -> u64 {
        (self.reserve)(parts).min(self.max_reserve)
    }
}

/// The capacity units the layer reserved for this request, as a request
/// extension: a handler sizes what it reads to it (e.g.
/// `ReadBudget::units(reserved.read_units)`), so that what it consumes stays
/// within what its caller could afford.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    /// Read units reserved (`None` without a read charge).
    pub read_units: Option<u64>,
    /// Write units reserved (`None` without a write charge).
    pub write_units: Option<u64>,
}

impl Reserved {
    pub(crate) fn set(&mut self, direction: Direction, units: u64) {
        match direction {
            Direction::Read => self.read_units = Some(units),
            Direction::Write => self.write_units = Some(units),
        }
    }
}

/// Refunds or debits the difference between what `charge` reserved and
/// what the request consumed, after the response (spawned: the caller does
/// not wait on one more Redis call).
pub(crate) fn settle(
    limiter: &Arc<dyn RateLimiter>,
    charge: &CapacityCharge,
    subject: &str,
    reserved: u64,
    usage: &Usage,
) {
    let consumed = usage.units(charge.direction).max(0.0).ceil() as u64;
    if consumed > 0 {
        metrics::counter!(
            "dynagate_http_charged_units_total",
            "direction" => charge.direction.label(),
            "namespace" => charge.limits.namespace().to_owned(),
        )
        .increment(consumed);
    }
    let delta = consumed as i64 - reserved as i64;
    if delta == 0 {
        return;
    }
    let limiter = Arc::clone(limiter);
    let limits = Arc::clone(&charge.limits);
    let subject = subject.to_owned();
    tokio::spawn(async move {
        limiter.settle(&limits, &subject, delta).await;
    });
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::{ConnectInfo, Extension};
    use axum::routing::get;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::http::RateLimitLayer;
    use crate::limiter::{MemoryLimiter, Quota};

    fn limits(namespace: &str, burst: u64) -> Limits {
        Limits::builder(namespace)
            .limit("second", Quota::per_second(1).burst(burst).unwrap())
            .build()
            .unwrap()
    }

    /// `/cheap` consumes 3.2 read units, `/free` none; both check what the
    /// layer reserved.
    fn app() -> Router {
        let handler = |units: f64| {
            move |Extension(reserved): Extension<Reserved>| async move {
                assert_eq!(reserved.read_units, Some(10));
                crate::usage::record(Direction::Read, units);
                "ok"
            }
        };
        let layer = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
            .key_limits(limits("key", 100))
            .failed_auth(limits("auth", 2))
            .anonymous(limits("anon", 100))
            .charge(CapacityCharge::read_units(limits("rcu", 10)).reserve(10, |_| 10))
            .build()
            .unwrap();
        Router::new()
            .route("/cheap", get(handler(3.2)))
            .route("/free", get(handler(0.0)))
            .layer(layer)
    }

    async fn send(app: &Router, path: &str) -> http::Response<Body> {
        let mut request = Request::get(path).body(Body::empty()).unwrap();
        let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request).await.unwrap()
    }

    /// Let the spawned settle run, on the paused clock.
    async fn settled() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_is_charged_what_it_consumed_rounded_up_and_the_rest_refunded() {
        let app = app();
        assert_eq!(send(&app, "/cheap").await.status(), StatusCode::OK);
        settled().await;
        // 10 reserved, 3.2 consumed: 4 charged, 6 left; the next request
        // reserves 10 again and waits exactly for the 4 missing.
        let refused = send(&app, "/cheap").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "4");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_consumed_nothing_is_refunded_in_full() {
        let app = app();
        for _ in 0..5 {
            assert_eq!(send(&app, "/free").await.status(), StatusCode::OK);
            settled().await;
        }
    }

    #[test]
    fn a_reservation_the_limits_cannot_hold_is_refused_at_build() {
        let error = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
            .key_limits(limits("key", 100))
            .failed_auth(limits("auth", 2))
            .anonymous(limits("anon", 100))
            .charge(CapacityCharge::read_units(limits("rcu", 5)).reserve(10, |_| 10))
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("charge"), "{error}");
    }

    /// A write charge that reserves nothing for GET: a GET is not refused
    /// for its caller's spent write units, a POST is, and what a GET wrote
    /// anyway is still charged.
    #[tokio::test(start_paused = true)]
    async fn a_request_that_reserves_nothing_is_not_checked_but_still_settled() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = recorder.handle();
        // The test's runtime runs on this thread.
        let _guard = metrics::set_default_local_recorder(&recorder);
        let layer = RateLimitLayer::builder(Arc::new(MemoryLimiter::new()))
            .key_limits(limits("key", 100))
            .failed_auth(limits("auth", 2))
            .anonymous(limits("anon", 100))
            .charge(
                CapacityCharge::write_units(limits("wcu", 4)).reserve(4, |parts| {
                    if parts.method == http::Method::POST {
                        4
                    } else {
                        0
                    }
                }),
            )
            .build()
            .unwrap();
        let write = |units: f64| {
            move |Extension(reserved): Extension<Reserved>| async move {
                crate::usage::record(Direction::Write, units);
                format!("{:?}", reserved.write_units)
            }
        };
        let app = Router::new()
            .route("/w", get(write(0.0)).post(write(4.0)))
            .route("/sneaky", get(write(2.0)))
            .layer(layer);
        let post = || {
            let mut request = Request::post("/w").body(Body::empty()).unwrap();
            let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        };
        assert_eq!(post().await.unwrap().status(), StatusCode::OK);
        settled().await;
        // The 4 units are spent: a POST waits, a GET does not.
        assert_eq!(
            post().await.unwrap().status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        let get_ok = send(&app, "/w").await;
        assert_eq!(get_ok.status(), StatusCode::OK);
        let body = axum::body::to_bytes(get_ok.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            b"Some(0)",
            "the handler sees a write charge with 0 reserved"
        );
        // Only the two POSTs asked the write bucket: a GET costs no check.
        let rendered = metrics.render();
        let asked = |decision: &str| {
            format!("dynagate_http_decisions_total{{policy=\"wcu\",decision=\"{decision}\"}} 1")
        };
        assert!(rendered.contains(&asked("allow")), "{rendered}");
        assert!(rendered.contains(&asked("deny")), "{rendered}");
        // A GET that wrote 2 units is debited them: after 4 s (4 units back)
        // a POST still waits for the 2 the GET took.
        tokio::time::advance(std::time::Duration::from_secs(4)).await;
        assert_eq!(send(&app, "/sneaky").await.status(), StatusCode::OK);
        settled().await;
        let refused = post().await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "2");
    }
}
