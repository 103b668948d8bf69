//! The wire errors the proxy answers with, shaped exactly as DynamoDB sends
//! them: a status, `Content-Type: application/x-amz-json-1.0`, an
//! `x-amzn-RequestId` header and a JSON body with `__type` and `message`.

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A kind of error the proxy injects by probability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// HTTP 400 `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`
    /// with `ThrottlingReasons` (table read or write, by operation).
    ProvisionedThroughputExceeded,
    /// HTTP 400 `com.amazon.coral.availability#ThrottlingException`.
    Throttling,
    /// HTTP 500 `com.amazonaws.dynamodb.v20120810#InternalServerError`.
    InternalServerError,
    /// HTTP 503 `com.amazonaws.dynamodb.v20120810#ServiceUnavailable`.
    ServiceUnavailable,
}

impl ErrorKind {
    /// Every kind, in the order the proxy draws them for a request.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::ProvisionedThroughputExceeded,
        ErrorKind::Throttling,
        ErrorKind::InternalServerError,
        ErrorKind::ServiceUnavailable,
    ];

    /// The name used in configuration and statistics, e.g. `internal_server_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ProvisionedThroughputExceeded => "provisioned_throughput_exceeded",
            ErrorKind::Throttling => "throttling",
            ErrorKind::InternalServerError => "internal_server_error",
            ErrorKind::ServiceUnavailable => "service_unavailable",
        }
    }

    /// Parses a configuration name or the DynamoDB error code
    /// (`ThrottlingException`, `InternalServerError`, ...).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|kind| {
            name == kind.as_str()
                || name == kind.code()
                || name == kind.code().trim_end_matches("Exception")
        })
    }

    fn code(self) -> &'static str {
        match self {
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::InternalServerError => "InternalServerError",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was throttled: the `reason` DynamoDB puts in `ThrottlingReasons`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThrottleReason {
    /// The table's read capacity (bank included) is exhausted.
    TableReadProvisionedThroughputExceeded,
    /// The table's write capacity (bank included) is exhausted.
    TableWriteProvisionedThroughputExceeded,
    /// One partition key value is read faster than the per-key limit.
    TableReadKeyRangeThroughputExceeded,
    /// One partition key value is written faster than the per-key limit.
    TableWriteKeyRangeThroughputExceeded,
}

impl ThrottleReason {
    /// The wire name, e.g. `TableWriteProvisionedThroughputExceeded`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleReason::TableReadProvisionedThroughputExceeded => {
                "TableReadProvisionedThroughputExceeded"
            }
            ThrottleReason::TableWriteProvisionedThroughputExceeded => {
                "TableWriteProvisionedThroughputExceeded"
            }
            ThrottleReason::TableReadKeyRangeThroughputExceeded => {
                "TableReadKeyRangeThroughputExceeded"
            }
            ThrottleReason::TableWriteKeyRangeThroughputExceeded => {
                "TableWriteKeyRangeThroughputExceeded"
            }
        }
    }

    /// The table-capacity reason for a read or a write.
    pub fn table(write: bool) -> ThrottleReason {
        if write {
            ThrottleReason::TableWriteProvisionedThroughputExceeded
        } else {
            ThrottleReason::TableReadProvisionedThroughputExceeded
        }
    }
}

impl fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const PROVISIONED_MESSAGE: &str = "The level of configured provisioned throughput for the table was exceeded. \
     Consider increasing your provisioning level with the UpdateTable API.";

/// The response body type the proxy sends for the answers it makes itself.
pub(crate) type FullBody = Full<Bytes>;

/// The `ProvisionedThroughputExceededException` DynamoDB answers when a table
/// is throttled, naming the table's ARN in `ThrottlingReasons`.
pub(crate) fn throttled(reason: ThrottleReason, region: &str, table: &str) -> Response<FullBody> {
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": PROVISIONED_MESSAGE,
        "ThrottlingReasons": [{
            "reason": reason.as_str(),
            "resource": table_arn(region, table),
        }],
    });
    json_response(StatusCode::BAD_REQUEST, &body)
}

/// The error response for an injected `kind`; `write` picks the throttling
/// reason of an injected `ProvisionedThroughputExceededException`.
pub(crate) fn injected(
    kind: ErrorKind,
    write: bool,
    region: &str,
    table: &str,
) -> Response<FullBody> {
    let (status, type_name, message) = match kind {
        ErrorKind::ProvisionedThroughputExceeded => {
            return throttled(ThrottleReason::table(write), region, table);
        }
        ErrorKind::Throttling => (
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.availability#ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
        ErrorKind::InternalServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
        ),
        ErrorKind::ServiceUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        ),
    };
    json_response(status, &json!({"__type": type_name, "message": message}))
}

/// `arn:aws:dynamodb:<region>:000000000000:table/<name>`, the account being
/// DynamoDB Local's.
pub(crate) fn table_arn(region: &str, table: &str) -> String {
    format!("arn:aws:dynamodb:{region}:000000000000:table/{table}")
}

/// The region of a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/20240101/eu-west-1/dynamodb/aws4_request`), if any.
pub(crate) fn region_from_authorization(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    let region = scope.split('/').nth(2)?;
    (!region.is_empty()).then_some(region)
}

/// A JSON response with DynamoDB's content type and a fresh request id.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<FullBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert("x-amzn-requestid", request_id());
    response
}

/// 52 upper-case letters and digits, the shape of DynamoDB's request ids.
/// Drawn from the thread RNG so the seeded fault RNG stays reproducible.
fn request_id() -> HeaderValue {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let id: String = (0..52)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    HeaderValue::from_str(&id).expect("ASCII letters and digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<FullBody>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn throttled_response_matches_dynamodb() {
        let response = throttled(
            ThrottleReason::TableWriteProvisionedThroughputExceeded,
            "eu-west-1",
            "users",
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-amz-json-1.0"
        );
        assert_eq!(response.headers()["x-amzn-requestid"].len(), 52);
        let body = body_json(response).await;
        assert_eq!(
            body["__type"],
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
        );
        assert_eq!(body["message"], PROVISIONED_MESSAGE);
        assert_eq!(
            body["ThrottlingReasons"],
            json!([{
                "reason": "TableWriteProvisionedThroughputExceeded",
                "resource": "arn:aws:dynamodb:eu-west-1:000000000000:table/users"
            }])
        );
    }

    #[tokio::test]
    async fn injected_kinds_have_their_status_and_type() {
        let cases = [
            (
                ErrorKind::Throttling,
                400,
                "com.amazon.coral.availability#ThrottlingException",
            ),
            (
                ErrorKind::InternalServerError,
                500,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
            ),
            (
                ErrorKind::ServiceUnavailable,
                503,
                "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
            ),
        ];
        for (kind, status, type_name) in cases {
            let response = injected(kind, true, "us-east-1", "t");
            assert_eq!(response.status().as_u16(), status, "{kind}");
            assert_eq!(body_json(response).await["__type"], type_name);
        }
        let read = body_json(injected(
            ErrorKind::ProvisionedThroughputExceeded,
            false,
            "us-east-1",
            "t",
        ))
        .await;
        assert_eq!(
            read["ThrottlingReasons"][0]["reason"],
            "TableReadProvisionedThroughputExceeded"
        );
    }

    #[test]
    fn region_comes_from_the_credential_scope() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-central-1/dynamodb/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(region_from_authorization(header), Some("eu-central-1"));
        assert_eq!(region_from_authorization("Bearer xyz"), None);
    }

    #[test]
    fn error_kinds_parse_from_config_names_and_codes() {
        assert_eq!(ErrorKind::parse("throttling"), Some(ErrorKind::Throttling));
        assert_eq!(
            ErrorKind::parse("ThrottlingException"),
            Some(ErrorKind::Throttling)
        );
        assert_eq!(
            ErrorKind::parse("ProvisionedThroughputExceeded"),
            Some(ErrorKind::ProvisionedThroughputExceeded)
        );
        assert_eq!(
            ErrorKind::parse("InternalServerError"),
            Some(ErrorKind::InternalServerError)
        );
        assert_eq!(ErrorKind::parse("teapot"), None);
    }
}
