//! Problem details (RFC 9457): the one error shape of dynagate's HTTP side.
//!
//! Every error answer is `Content-Type: application/problem+json` (RFC 9457
//! section 6.1) with the standard members `type`, `title`, `status` and
//! `detail` (section 3.1) and two extension members (section 3.2), `error`
//! (a stable machine-readable code) and `message` (the same text as
//! `detail`), which are the whole of the shape dynagate answered before, so
//! clients that read `error` and `message` keep working:
//!
//! ```json
//! {
//!   "type": "https://iana.org/assignments/http-problem-types#quota-exceeded",
//!   "title": "Quota Exceeded",
//!   "status": 429,
//!   "detail": "too many requests; retry after the Retry-After delay",
//!   "error": "rate_limited",
//!   "message": "too many requests; retry after the Retry-After delay",
//!   "violated-policies": ["key.second"]
//! }
//! ```
//!
//! The `type`s are the three problem types of the IETF RateLimit draft
//! (draft-ietf-httpapi-ratelimit-headers-11, section 5, registered with the
//! titles of its section 10.2) where they fit, and `about:blank` (RFC 9457
//! section 4.2.1) for every other error: the status code and `error` say all
//! there is, and a URI of the API's own would have to resolve to
//! documentation (RFC 9457 section 3.1.1) that a library cannot host.

use axum::body::Body;
use axum::response::IntoResponse;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

/// What kind of problem an answer reports: its `type` member and the
/// `title` that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemType {
    /// `about:blank` (RFC 9457 section 4.2.1): the problem has no more
    /// semantics than its status code; the title is the status's reason
    /// phrase.
    Blank,
    /// The request exceeds one or more quota policies
    /// (draft-ietf-httpapi-ratelimit-headers-11, section 5.1).
    QuotaExceeded {
        /// The names of the policies that refused, as `RateLimit-Policy`
        /// names them (`<namespace>.<limit>`): the `violated-policies`
        /// extension member.
        violated_policies: Vec<String>,
    },
    /// The server cannot serve the request now because its capacity is
    /// temporarily reduced, e.g. the database throttles or the capacity gate
    /// sheds (draft-ietf-httpapi-ratelimit-headers-11, section 5.2).
    TemporaryReducedCapacity,
    /// The server detected a pattern of requests that suggests unintentional
    /// or malicious behaviour, e.g. a key used from too many addresses
    /// (draft-ietf-httpapi-ratelimit-headers-11, section 5.3).
    AbnormalUsageDetected,
}

impl ProblemType {
    /// The `type` member: a URI that identifies the problem type.
    pub fn uri(&self) -> &'static str {
        match self {
            ProblemType::Blank => "about:blank",
            ProblemType::QuotaExceeded { .. } => {
                "https://iana.org/assignments/http-problem-types#quota-exceeded"
            }
            ProblemType::TemporaryReducedCapacity => {
                "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"
            }
            ProblemType::AbnormalUsageDetected => {
                "https://iana.org/assignments/http-problem-types#abnormal-usage-detected"
            }
        }
    }

    /// The `title` member: the same for every occurrence of the type (RFC
    /// 9457 section 3.1.3); the draft's registered titles for its types.
    pub fn title(&self, status: StatusCode) -> &'static str {
        match self {
            ProblemType::Blank => status.canonical_reason().unwrap_or("Error"),
            ProblemType::QuotaExceeded { .. } => "Quota Exceeded",
            ProblemType::TemporaryReducedCapacity => "Temporary Reduced Capacity",
            ProblemType::AbnormalUsageDetected => "Abnormal Usage Detected",
        }
    }
}

/// One error answer, as RFC 9457 problem details.
///
/// ```
/// use dynagate::http::{Problem, ProblemType};
/// use http::StatusCode;
///
/// let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down")
///     .with_type(ProblemType::QuotaExceeded { violated_policies: vec!["key.second".into()] });
/// let body: serde_json::Value = serde_json::from_str(&problem.to_json()).unwrap();
/// assert_eq!(body["title"], "Quota Exceeded");
/// assert_eq!(body["violated-policies"][0], "key.second");
/// assert_eq!(body["error"], "rate_limited");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    status: StatusCode,
    problem_type: ProblemType,
    code: String,
    detail: String,
}

/// The wire form; the field order is the order clients see.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "type")]
    problem_type: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    error: &'a str,
    message: &'a str,
    #[serde(rename = "violated-policies", skip_serializing_if = "Option::is_none")]
    violated_policies: Option<&'a [String]>,
}

impl Problem {
    /// The media type of every problem answer (RFC 9457 section 6.1).
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    /// An `about:blank` problem: `code` is the stable machine-readable
    /// `error`, `detail` what was wrong and what to do, for the client, never
    /// internals.
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            problem_type: ProblemType::Blank,
            code: code.into(),
            detail: detail.into(),
        }
    }

    /// The same problem, of a more specific type.
    pub fn with_type(mut self, problem_type: ProblemType) -> Problem {
        self.problem_type = problem_type;
        self
    }

    /// The status code, sent both as the answer's status and as `status`.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem's type.
    pub fn problem_type(&self) -> &ProblemType {
        &self.problem_type
    }

    /// The `error` member: a stable machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The `detail` (and `message`) member.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The body: the problem as a JSON object.
    pub fn to_json(&self) -> String {
        let violated_policies = match &self.problem_type {
            ProblemType::QuotaExceeded { violated_policies } => Some(violated_policies.as_slice()),
            _ => None,
        };
        let wire = Wire {
            problem_type: self.problem_type.uri(),
            title: self.problem_type.title(self.status),
            status: self.status.as_u16(),
            detail: &self.detail,
            error: &self.code,
            message: &self.detail,
            violated_policies,
        };
        // Strings and an integer always serialize.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.to_json()));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(Problem::CONTENT_TYPE),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(problem: &Problem) -> serde_json::Value {
        serde_json::from_str(&problem.to_json()).unwrap()
    }

    #[test]
    fn a_blank_problem_is_titled_by_its_status_and_keeps_error_and_message() {
        let problem = Problem::new(StatusCode::UNAUTHORIZED, "invalid_api_key", "not valid");
        assert_eq!(
            json(&problem),
            serde_json::json!({
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "not valid",
                "error": "invalid_api_key",
                "message": "not valid",
            })
        );
        // Clients see the members in RFC 9457's order, the extensions last.
        assert!(
            problem
                .to_json()
                .starts_with(r#"{"type":"about:blank","title":"#)
        );
    }

    #[test]
    fn quota_exceeded_names_the_violated_policies() {
        let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "wait")
            .with_type(ProblemType::QuotaExceeded {
                violated_policies: vec!["key.day".into()],
            });
        let body = json(&problem);
        assert_eq!(
            body["type"],
            "https://iana.org/assignments/http-problem-types#quota-exceeded"
        );
        assert_eq!(body["title"], "Quota Exceeded");
        assert_eq!(body["status"], 429);
        assert_eq!(body["violated-policies"], serde_json::json!(["key.day"]));
        assert_eq!(body["error"], "rate_limited");
        assert_eq!(body["detail"], body["message"]);
    }

    #[test]
    fn the_capacity_and_abuse_types_carry_no_policies() {
        for (kind, uri, title) in [
            (
                ProblemType::TemporaryReducedCapacity,
                "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity",
                "Temporary Reduced Capacity",
            ),
            (
                ProblemType::AbnormalUsageDetected,
                "https://iana.org/assignments/http-problem-types#abnormal-usage-detected",
                "Abnormal Usage Detected",
            ),
        ] {
            let body = json(&Problem::new(StatusCode::FORBIDDEN, "x", "y").with_type(kind));
            assert_eq!(body["type"], uri);
            assert_eq!(body["title"], title);
            assert_eq!(body["status"], 403);
            assert!(body.get("violated-policies").is_none(), "{body}");
        }
    }

    #[tokio::test]
    async fn the_response_has_the_problem_media_type_and_the_same_status() {
        let problem = Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route");
        let response = problem.clone().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert_eq!(body, problem.to_json().as_bytes());
    }
}
