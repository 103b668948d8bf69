//! Every error of the users API becomes a response here, in one place: the
//! client gets RFC 9457 problem details (`application/problem+json`, see
//! [`dynagate::http::Problem`]) with the right status, the `error` code and
//! the `message` of the API's earlier shape among its members, and never
//! internals (those go to the log).

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dynagate::http::{Problem, ProblemType, error_response};
use dynagate::repository::RepositoryError;
use http::StatusCode;
use http::header::{CONTENT_TYPE, RETRY_AFTER};

/// What went wrong with a request.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the input is wrong; the message says how.
    InvalidInput(String),
    /// 400: a list cursor that cannot be used; the message says why.
    InvalidCursor(String),
    /// 404.
    NotFound,
    /// 409: the user already exists.
    Conflict(String),
    /// 412: `If-Match` names a version that is not the stored one.
    VersionMismatch { current: Option<u64> },
    /// 413.
    TooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 422: the caller used this `Idempotency-Key` for another request.
    IdempotencyKeyReused,
    /// 428: the request must carry `If-Match`.
    PreconditionRequired,
    /// 503, `temporary-reduced-capacity`: DynamoDB is throttling or
    /// unreachable, or the capacity gate shed the request; retry after the
    /// delay.
    Unavailable(Duration),
    /// 500: a server fault, logged with its details.
    Internal(String),
}

impl<T: std::fmt::Debug> From<RepositoryError<T>> for ApiError {
    fn from(error: RepositoryError<T>) -> ApiError {
        if let Some(wait) = error.retry_after() {
            tracing::warn!(error = %error, "DynamoDB unavailable");
            return ApiError::Unavailable(wait);
        }
        match error {
            RepositoryError::NotFound => ApiError::NotFound,
            RepositoryError::Conflict { .. } => {
                ApiError::Conflict("a user with this user_id already exists".into())
            }
            RepositoryError::VersionMismatch { current, .. } => {
                ApiError::VersionMismatch { current }
            }
            RepositoryError::TokenReused { .. } => ApiError::IdempotencyKeyReused,
            RepositoryError::InvalidKey(m) | RepositoryError::InvalidItem(m) => {
                ApiError::InvalidInput(m)
            }
            RepositoryError::ItemTooLarge { .. } => ApiError::TooLarge,
            RepositoryError::Cursor(e) => ApiError::InvalidCursor(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            ApiError::InvalidInput(m) => (StatusCode::BAD_REQUEST, "invalid_input", m.clone()),
            ApiError::InvalidCursor(m) => (StatusCode::BAD_REQUEST, "invalid_cursor", m.clone()),
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no user with this user_id".into(),
            ),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::VersionMismatch { current } => (
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                match current {
                    Some(v) => format!(
                        "the user changed: it is at version {v}; GET it and retry with If-Match: \"{v}\""
                    ),
                    None => "the user no longer exists".into(),
                },
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the request body is too large".into(),
            ),
            ApiError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            ApiError::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; send a new key with a new request".into(),
            ),
            ApiError::PreconditionRequired => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition_required",
                "send If-Match with the ETag of the version you are changing".into(),
            ),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is busy; retry after the Retry-After delay".into(),
            ),
            ApiError::Internal(details) => {
                tracing::error!(%details, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the server failed; retry later".into(),
                )
            }
        };
        let mut problem = Problem::new(status, code, message);
        if let ApiError::Unavailable(_) = self {
            problem = problem.with_type(ProblemType::TemporaryReducedCapacity);
        }
        let mut response = problem.into_response();
        if let ApiError::Unavailable(wait) = self {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

/// Error responses that axum or tower produced as plain text (a body over
/// the limit, a wrong method) become the API's error shape; the API's own
/// problems (and any JSON error body) pass as they are.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.starts_with(Problem::CONTENT_TYPE.as_bytes()) || v.starts_with(b"application/json")
    });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request",
    };
    let message = status
        .canonical_reason()
        .unwrap_or("request failed")
        .to_lowercase();
    let (mut parts, _) = response.into_parts();
    let rebuilt = error_response(status, code, &message);
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.extend(rebuilt.headers().clone());
    Response::from_parts(parts, rebuilt.into_body())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;
    use crate::model::ErrorBody;

    async fn problem(error: ApiError) -> (Response, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // What is sent is what the OpenAPI document's `ErrorBody` describes:
        // read into it and written back, nothing is lost or added.
        let documented: ErrorBody = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&documented).unwrap(), json);
        (Response::from_parts(parts, Body::empty()), json)
    }

    #[tokio::test]
    async fn a_throttled_database_is_temporary_reduced_capacity_with_retry_after() {
        let (response, body) = problem(ApiError::Unavailable(Duration::from_millis(1500))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.headers()[RETRY_AFTER], "2");
        assert_eq!(
            body["type"],
            "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
        );
        assert_eq!(body["title"], "Temporary Reduced Capacity");
        assert_eq!(body["status"], 503);
        assert_eq!(body["error"], "unavailable");
        assert_eq!(body["detail"], body["message"]);
    }

    #[tokio::test]
    async fn other_errors_are_about_blank_titled_by_their_status() {
        let (response, body) = problem(ApiError::VersionMismatch { current: Some(3) }).await;
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert!(response.headers().get(RETRY_AFTER).is_none());
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Precondition Failed");
        assert_eq!(body["status"], 412);
        assert_eq!(body["error"], "version_mismatch");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("If-Match: \"3\"")
        );
        assert_eq!(body["detail"], body["message"]);

        // Internals stay in the log.
        let (_, body) = problem(ApiError::Internal("socket closed by 10.0.0.7".into())).await;
        assert_eq!(body["title"], "Internal Server Error");
        assert!(!body.to_string().contains("10.0.0.7"));
    }
}
