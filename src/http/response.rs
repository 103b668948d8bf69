//! The layer's answers: 401, 403, 429 and 503 as problem details (see
//! [`Problem`]), and the `RateLimit` headers on every answer that a limit
//! decided.

use axum::body::Body;
use axum::response::IntoResponse;
use http::header::{HeaderName, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::http::headers::{policy_name, rate_limit, rate_limit_policy, retry_after};
use crate::http::problem::{Problem, ProblemType};
use crate::limiter::{DecidedBy, Decision, Limits, Outcome};

/// The one error shape of dynagate's HTTP side, as an `about:blank` problem
/// (RFC 9457): `Content-Type: application/problem+json` and
/// `{"type", "title", "status", "detail", "error": code, "message"}`, where
/// `message` repeats `detail` so that clients of the earlier
/// `{"error", "message"}` shape keep working. The message is for the
/// client: what was wrong and what to do, never internals. For a more
/// specific problem type, build a [`Problem`].
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    Problem::new(status, code, message).into_response()
}

/// The key store could not answer: 503, retry shortly.
/// The key store's reads are what ran short (a throttled or shedding table,
/// an unreachable one), hence `temporary-reduced-capacity`.
pub(crate) fn auth_unavailable() -> Response<Body> {
    let mut response = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the API key cannot be checked right now; retry shortly",
    )
    .with_type(ProblemType::TemporaryReducedCapacity)
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(1));
    response
}

/// A missing or invalid key, within the failed-auth limit: 401.
pub(crate) fn unauthorized(
    code: &str,
    message: &str,
    limits: &Limits,
    decision: &Decision,
) -> Response<Body> {
    let mut response = error_response(StatusCode::UNAUTHORIZED, code, message);
    add_headers(&mut response, limits, decision);
    response
}

/// An address locked out after too many failed authentications, refused
/// before anything was looked up: 429 until the failed-auth bucket has a token.
/// The lockout remembers that a failed-auth limit refused, not which one, so
/// `violated-policies` names every failed-auth policy (usually just one).
pub(crate) fn locked_out(limits: &Limits, wait: std::time::Duration) -> Response<Body> {
    let violated_policies = limits
        .iter()
        .map(|limit| policy_name(limits, limit))
        .collect();
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed authentications from this address; retry after the Retry-After delay",
    )
    .with_type(ProblemType::QuotaExceeded { violated_policies })
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, retry_after(wait));
    response.headers_mut().insert(
        HeaderName::from_static("ratelimit-policy"),
        rate_limit_policy(limits),
    );
    response
}

/// A subject in the penalty box: 429 until it is out, from local state;
/// `quota-exceeded` naming the box itself (a meta limit over the others).
pub(crate) fn penalty_boxed(wait: std::time::Duration) -> Response<Body> {
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests were denied in a row; retry after the Retry-After delay",
    )
    .with_type(ProblemType::QuotaExceeded {
        violated_policies: vec!["penalty-box".to_owned()],
    })
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, retry_after(wait));
    response
}

/// A suspended key: 403, `abnormal-usage-detected`; the reason says what
/// was detected. Not the draft's suggested 429: no wait lifts a suspension.
pub(crate) fn suspended(reason: &str) -> Response<Body> {
    Problem::new(
        StatusCode::FORBIDDEN,
        "suspended_api_key",
        format!(
            "the API key is suspended for abnormal usage ({reason}); contact the API's operator"
        ),
    )
    .with_type(ProblemType::AbnormalUsageDetected)
    .into_response()
}

/// A request a limit refused: 429 with `Retry-After`; or, when the request
/// costs more than the quota can ever hold, 403: waiting will never help, so
/// the answer must not say "retry later". Both are `quota-exceeded` naming
/// the limit that decided: the 403's cost exceeds that policy's quota too.
pub(crate) fn too_many(limits: &Limits, decision: &Decision) -> Response<Body> {
    let mut response = too_many_problem(limits, decision).into_response();
    if let Outcome::Denied { retry_after: wait } = decision.outcome() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after(wait));
    }
    add_headers(&mut response, limits, decision);
    response
}

/// The problem [`too_many`] answers.
fn too_many_problem(limits: &Limits, decision: &Decision) -> Problem {
    let problem = match decision.outcome() {
        Outcome::Never => Problem::new(
            StatusCode::FORBIDDEN,
            "cost_exceeds_quota",
            "this request costs more tokens than the quota's burst holds, so it can never be \
             admitted; ask for a larger quota",
        ),
        Outcome::Denied { .. } => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry after the Retry-After delay",
        ),
        Outcome::Allowed => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
        ),
    };
    // Refused because the limiter could not count (Redis down, policy fail
    // closed): no quota was found exceeded, the server is short of capacity.
    if decision.decided_by() == DecidedBy::FailClosed {
        return problem.with_type(ProblemType::TemporaryReducedCapacity);
    }
    let violated_policies = limits
        .as_slice()
        .get(decision.limit())
        .map(|limit| policy_name(limits, limit))
        .into_iter()
        .collect();
    problem.with_type(ProblemType::QuotaExceeded { violated_policies })
}

pub(crate) fn add_headers(response: &mut Response<Body>, limits: &Limits, decision: &Decision) {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("ratelimit-policy"),
        rate_limit_policy(limits),
    );
    headers.insert(
        HeaderName::from_static("ratelimit"),
        rate_limit(limits, decision),
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::limiter::{Quota, Verdict};

    fn limits() -> Limits {
        Limits::builder("key")
            .limit("second", Quota::per_second(10).burst(10).unwrap())
            .limit("day", Quota::per_day(1000).burst(1000).unwrap())
            .build()
            .unwrap()
    }

    fn denied(limit: usize, decided_by: DecidedBy) -> Decision {
        let verdict = Verdict {
            outcome: Outcome::Denied {
                retry_after: Duration::from_secs(3),
            },
            remaining: 0,
            reset_after: Duration::from_secs(3),
            limit,
        };
        Decision::new(verdict, decided_by)
    }

    async fn body(response: Response<Body>) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_denial_names_the_policy_that_decided_as_the_fields_do() {
        let response = too_many(&limits(), &denied(1, DecidedBy::Redis));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        assert!(
            response.headers()["ratelimit"]
                .to_str()
                .unwrap()
                .starts_with("\"key.day\";")
        );
        let body = body(response).await;
        assert_eq!(
            body["type"],
            "https://iana.org/assignments/http-problem-types#quota-exceeded"
        );
        assert_eq!(body["violated-policies"], serde_json::json!(["key.day"]));
        assert_eq!(body["error"], "rate_limited");
    }

    /// A fail-closed denial found no quota exceeded: Redis could not count.
    #[tokio::test]
    async fn a_fail_closed_denial_is_reduced_capacity_without_policies() {
        let response = too_many(&limits(), &denied(0, DecidedBy::FailClosed));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let body = body(response).await;
        assert_eq!(
            body["type"],
            "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
        );
        assert!(body.get("violated-policies").is_none(), "{body}");
        assert_eq!(body["error"], "rate_limited");
    }

    #[tokio::test]
    async fn a_lockout_names_the_failed_auth_policies() {
        let response = locked_out(&limits(), Duration::from_millis(200));
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let body = body(response).await;
        assert_eq!(
            body["violated-policies"],
            serde_json::json!(["key.second", "key.day"])
        );
    }
}
