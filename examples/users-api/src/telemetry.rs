//! What the service tells its operators: a request id and one structured log
//! line per request, and Prometheus metrics.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness): then
            // this handle renders nothing, which /metrics tests would catch.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A request id (the caller's `X-Request-Id` if it is sane, else a new one)
/// on the response and on every log line of the request; one structured log
/// line per request; request counts and latencies by method, route and status.
pub(crate) async fn observe(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_owned);
    let method = method_label(request.method());
    // A matched path is an `Arc`: no allocation.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route_label = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route_label);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        );
    });
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    RequestMetrics::record(method, route_label, status, elapsed);
    response
}

/// `http_requests_total{method, route, status}` and
/// `http_request_duration_seconds{method, route}` of one method, route and
/// status, registered once. `counter!` and `histogram!` with these labels
/// would build their keys (label strings, a vector), hash them and look them
/// up in the registry twice per request; this is one map lookup. Handles
/// belong to the recorder that made them, so each is kept with that
/// recorder's address: a test counting into a local recorder gets handles
/// of its own.
#[derive(Clone)]
struct RequestMetrics {
    requests: Counter,
    duration: Histogram,
}

/// Route pattern, then a few (recorder, method, status) each.
type Registered = HashMap<Box<str>, Vec<(usize, &'static str, u16, RequestMetrics)>>;

/// The method as a label: any method HTTP defines, else `OTHER`. hyper
/// accepts any token as a method, and a label per token would let a client
/// add series (and memory) without end.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", |known| known.as_str())
}

impl RequestMetrics {
    fn record(method: &'static str, route: &str, status: u16, elapsed: Duration) {
        static REGISTERED: LazyLock<RwLock<Registered>> = LazyLock::new(RwLock::default);
        let recorder =
            metrics::with_recorder(|recorder| std::ptr::from_ref(recorder).cast::<()>() as usize);
        let find = |registered: &Registered| {
            registered
                .get(route)?
                .iter()
                .find(|(r, m, s, _)| *r == recorder && *m == method && *s == status)
                .map(|(_, _, _, handles)| handles.clone())
        };
        let known = REGISTERED.read().ok().and_then(|r| find(&r));
        let handles = known.unwrap_or_else(|| {
            let handles = RequestMetrics {
                requests: metrics::counter!(
                    "http_requests_total",
                    "method" => method,
                    "route" => route.to_owned(),
                    "status" => status.to_string()
                ),
                duration: metrics::histogram!(
                    "http_request_duration_seconds",
                    "method" => method,
                    "route" => route.to_owned()
                ),
            };
            if let Ok(mut registered) = REGISTERED.write()
                && find(&registered).is_none()
            {
                registered.entry(route.into()).or_default().push((
                    recorder,
                    method,
                    status,
                    handles.clone(),
                ));
            }
            handles
        });
        handles.requests.increment(1);
        handles.duration.record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

    use super::*;

    #[test]
    fn a_method_http_does_not_define_is_counted_as_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let brew = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&brew), "OTHER");
    }

    #[test]
    fn each_recorder_counts_the_requests_recorded_while_it_is_current() {
        let render = |recorder: &PrometheusRecorder| recorder.handle().render();
        let (first, second) = (
            PrometheusBuilder::new().build_recorder(),
            PrometheusBuilder::new().build_recorder(),
        );
        let elapsed = Duration::from_millis(3);
        metrics::with_local_recorder(&first, || {
            for _ in 0..3 {
                RequestMetrics::record("GET", "/t/{id}", 200, elapsed);
            }
        });
        metrics::with_local_recorder(&second, || {
            RequestMetrics::record("GET", "/t/{id}", 200, elapsed);
        });
        let series = r#"http_requests_total{method="GET",route="/t/{id}",status="200"}"#;
        let (first, second) = (render(&first), render(&second));
        assert!(first.contains(&format!("{series} 3")), "{first}");
        assert!(second.contains(&format!("{series} 1")), "{second}");
        assert!(
            second.contains("http_request_duration_seconds_count"),
            "{second}"
        );
    }
}
