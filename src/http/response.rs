//! The layer's answers: the one error shape, 401, 429 and 503, and the
//! `RateLimit` headers on every answer that a limit decided.

use axum::body::Body;
use http::header::{CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::http::headers::{rate_limit, rate_limit_policy, retry_after};
use crate::limiter::{Decision, Limits, Outcome};

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

/// The key store could not answer: 503, retry shortly.
pub(crate) fn auth_unavailable() -> Response<Body> {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the API key cannot be checked right now; retry shortly",
    );
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
pub(crate) fn locked_out(limits: &Limits, wait: std::time::Duration) -> Response<Body> {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed authentications from this address; retry after the Retry-After delay",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, retry_after(wait));
    response.headers_mut().insert(
        HeaderName::from_static("ratelimit-policy"),
        rate_limit_policy(limits),
    );
    response
}

/// A request a limit refused: 429 with `Retry-After`; or, when the request
/// costs more than the quota can ever hold, 403: waiting will never help, so
/// the answer must not say "retry later".
/// A subject in the penalty box: 429 until it is out, from local state.
pub(crate) fn penalty_boxed(wait: std::time::Duration) -> Response<Body> {
    let mut response = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests were denied in a row; retry after the Retry-After delay",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, retry_after(wait));
    response
}

/// A suspended key: 403; the reason says what was detected.
pub(crate) fn suspended(reason: &str) -> Response<Body> {
    error_response(
        StatusCode::FORBIDDEN,
        "suspended_api_key",
        &format!(
            "the API key is suspended for abnormal usage ({reason}); contact the API's operator"
        ),
    )
}

pub(crate) fn too_many(limits: &Limits, decision: &Decision) -> Response<Body> {
    if decision.outcome() == Outcome::Never {
        let mut response = error_response(
            StatusCode::FORBIDDEN,
            "cost_exceeds_quota",
            "this request costs more tokens than the quota's burst holds, so it can never be \
             admitted; ask for a larger quota",
        );
        add_headers(&mut response, limits, decision);
        return response;
    }
    let (message, wait) = match decision.outcome() {
        Outcome::Denied { retry_after } => (
            "too many requests; retry after the Retry-After delay",
            Some(retry_after),
        ),
        _ => ("too many requests", None),
    };
    let mut response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
    if let Some(wait) = wait {
        response
            .headers_mut()
            .insert(RETRY_AFTER, retry_after(wait));
    }
    add_headers(&mut response, limits, decision);
    response
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
