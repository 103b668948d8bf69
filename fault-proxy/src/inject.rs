//! The wire errors the proxy answers with, shaped exactly as DynamoDB sends
//! them: a status, `Content-Type: application/x-amz-json-1.0`, an
//! `x-amzn-RequestId` and a `Date` header, and a JSON body with `__type` and
//! `message` (plus `ThrottlingReasons`, `throttlingReasons` or
//! `CancellationReasons` where DynamoDB's model has them). The one exception
//! is the bare HTTP 429, which stands for a front end that answers before
//! DynamoDB does: no error code, no body.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::dates::{amz_date, http_date};
pub(crate) use crate::reasons::ThrottleReason;
use crate::reasons::{CancellationCode, InjectedReason};
use crate::rules::ErrorShape;

/// A kind of error the proxy injects by probability.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// HTTP 400 `com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException`
    /// with `ThrottlingReasons` (the rule's `throttling_reasons`, else table
    /// read or write by operation).
    ProvisionedThroughputExceeded,
    /// HTTP 400 `ThrottlingException`: without `throttling_reasons`,
    /// `com.amazon.coral.availability#ThrottlingException` (a control-plane or
    /// account rate); with them, `com.amazonaws.dynamodb.v20120810#ThrottlingException`
    /// carrying `throttlingReasons` (lower-case t), as on-demand tables answer.
    Throttling,
    /// HTTP 500 `com.amazonaws.dynamodb.v20120810#InternalServerError`.
    InternalServerError,
    /// HTTP 503 `com.amazonaws.dynamodb.v20120810#ServiceUnavailable`.
    ServiceUnavailable,
    /// HTTP 400 `TransactionConflictException`.
    TransactionConflict,
    /// HTTP 400 `TransactionInProgressException`.
    TransactionInProgress,
    /// HTTP 400 `TransactionCanceledException` with `CancellationReasons`
    /// (the rule's `cancellation_reasons`, else one `TransactionConflict`).
    TransactionCanceled,
    /// HTTP 400 `ReplicatedWriteConflictException`.
    ReplicatedWriteConflict,
    /// HTTP 400 `LimitExceededException`.
    LimitExceeded,
    /// HTTP 400 `RequestLimitExceeded` with `ThrottlingReasons` (the rule's
    /// `throttling_reasons`, else the table's account limit by operation).
    RequestLimitExceeded,
    /// A bare HTTP 429: no error code, an empty body.
    TooManyRequests,
    /// HTTP 400 `com.amazon.coral.service#InvalidSignatureException` whose
    /// `Date` is off by the rule's `clock_skew_seconds`: "Signature expired"
    /// past DynamoDB's 5-minute window, a signature mismatch within it.
    InvalidSignature,
}

impl ErrorKind {
    /// Every kind, in the order the proxy draws them for a request.
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::ProvisionedThroughputExceeded,
        ErrorKind::Throttling,
        ErrorKind::InternalServerError,
        ErrorKind::ServiceUnavailable,
        ErrorKind::TransactionConflict,
        ErrorKind::TransactionInProgress,
        ErrorKind::TransactionCanceled,
        ErrorKind::ReplicatedWriteConflict,
        ErrorKind::LimitExceeded,
        ErrorKind::RequestLimitExceeded,
        ErrorKind::TooManyRequests,
        ErrorKind::InvalidSignature,
    ];

    /// The name used in configuration and statistics, e.g. `internal_server_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ProvisionedThroughputExceeded => "provisioned_throughput_exceeded",
            ErrorKind::Throttling => "throttling",
            ErrorKind::InternalServerError => "internal_server_error",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::TransactionConflict => "transaction_conflict",
            ErrorKind::TransactionInProgress => "transaction_in_progress",
            ErrorKind::TransactionCanceled => "transaction_canceled",
            ErrorKind::ReplicatedWriteConflict => "replicated_write_conflict",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::RequestLimitExceeded => "request_limit_exceeded",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::InvalidSignature => "invalid_signature",
        }
    }

    /// Parses a configuration name or the DynamoDB error code
    /// (`ThrottlingException`, `InternalServerError`, ...; `429` for the bare 429).
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|kind| {
            name == kind.as_str()
                || name == kind.code()
                || name == kind.code().trim_end_matches("Exception")
        })
    }

    /// The error code (`__type` without its namespace); `429` for the bare 429.
    fn code(self) -> &'static str {
        match self {
            ErrorKind::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ErrorKind::Throttling => "ThrottlingException",
            ErrorKind::InternalServerError => "InternalServerError",
            ErrorKind::ServiceUnavailable => "ServiceUnavailable",
            ErrorKind::TransactionConflict => "TransactionConflictException",
            ErrorKind::TransactionInProgress => "TransactionInProgressException",
            ErrorKind::TransactionCanceled => "TransactionCanceledException",
            ErrorKind::ReplicatedWriteConflict => "ReplicatedWriteConflictException",
            ErrorKind::LimitExceeded => "LimitExceededException",
            ErrorKind::RequestLimitExceeded => "RequestLimitExceeded",
            ErrorKind::TooManyRequests => "429",
            ErrorKind::InvalidSignature => "InvalidSignatureException",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const DYNAMODB: &str = "com.amazonaws.dynamodb.v20120810#";

pub(crate) const PROVISIONED_MESSAGE: &str = "The level of configured provisioned throughput for the table was exceeded. \
     Consider increasing your provisioning level with the UpdateTable API.";

/// The message of an on-demand throttle (the `ThrottlingError` cancellation
/// reason's, in `aws-sdk-dynamodb`'s `TransactionCanceledException` docs).
pub(crate) const ON_DEMAND_MESSAGE: &str = "Throughput exceeds the current capacity of your table or index. \
     DynamoDB is automatically scaling your table or index so please try again shortly. \
     If exceptions persist, check if you have a hot key: \
     https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html.";

/// DynamoDB's SigV4 window: a signature dated further from its clock than
/// this is expired (the "- 5 min." of its "Signature expired" message,
/// quoted in aws-sdk-js-v3 issue 7605).
const SIGNATURE_WINDOW: Duration = Duration::from_secs(5 * 60);

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

/// What an injected error's shape depends on besides its kind.
pub(crate) struct Injection<'a> {
    /// The request is a write (picks the default throttling reasons).
    pub(crate) write: bool,
    /// The region of the request's credential scope.
    pub(crate) region: &'a str,
    /// The request's (first) table.
    pub(crate) table: &'a str,
    /// The rule's reasons and clock skew.
    pub(crate) shape: &'a ErrorShape,
    /// The request's `X-Amz-Date` (`20240101T000000Z`), for the
    /// "Signature expired" message.
    pub(crate) signed_at: Option<&'a str>,
}

/// The error response for an injected `kind`.
pub(crate) fn injected(kind: ErrorKind, at: &Injection<'_>) -> Response<FullBody> {
    let reasons = |default: ThrottleReason| -> Value {
        let configured = at.shape.throttling_reasons.as_deref();
        let default = [InjectedReason::new(default)];
        let list = configured.unwrap_or(&default);
        Value::Array(list.iter().map(|r| reason_json(r, at)).collect())
    };
    let error = |code: &str, message: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"__type": format!("{DYNAMODB}{code}"), "message": message}),
        )
    };
    match kind {
        ErrorKind::ProvisionedThroughputExceeded => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "__type": format!("{DYNAMODB}ProvisionedThroughputExceededException"),
                "message": PROVISIONED_MESSAGE,
                "ThrottlingReasons": reasons(ThrottleReason::table(at.write)),
            }),
        ),
        ErrorKind::Throttling if at.shape.throttling_reasons.is_some() => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "__type": format!("{DYNAMODB}ThrottlingException"),
                "message": ON_DEMAND_MESSAGE,
                // Lower-case t: the model's member name on ThrottlingException
                // (aws-sdk-dynamodb 1.136, `shape_throttling_exception.rs`).
                "throttlingReasons": reasons(ThrottleReason::table(at.write)),
            }),
        ),
        ErrorKind::Throttling => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "__type": "com.amazon.coral.availability#ThrottlingException",
                "message": "Rate of requests exceeds the allowed throughput.",
            }),
        ),
        ErrorKind::InternalServerError => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"__type": format!("{DYNAMODB}InternalServerError"), "message": "Internal server error"}),
        ),
        ErrorKind::ServiceUnavailable => json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "__type": format!("{DYNAMODB}ServiceUnavailable"),
                "message": "The request has failed due to a temporary failure of the server.",
            }),
        ),
        ErrorKind::TransactionConflict => error(
            "TransactionConflictException",
            "Transaction is ongoing for the item",
        ),
        ErrorKind::TransactionInProgress => error(
            "TransactionInProgressException",
            "Transaction is in progress for the ClientRequestToken",
        ),
        ErrorKind::TransactionCanceled => canceled(at.shape.cancellation_reasons.as_deref()),
        ErrorKind::ReplicatedWriteConflict => error(
            "ReplicatedWriteConflictException",
            "Replicated write conflict: the item is being modified in another region",
        ),
        ErrorKind::LimitExceeded => error(
            "LimitExceededException",
            "Too many control plane operations are in progress at once",
        ),
        ErrorKind::RequestLimitExceeded => json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "__type": format!("{DYNAMODB}RequestLimitExceeded"),
                "message": "Throughput exceeds the current throughput limit for your account. \
                            Please contact AWS Support at https://aws.amazon.com/support request a limit increase",
                "ThrottlingReasons": reasons(ThrottleReason::account(at.write)),
            }),
        ),
        ErrorKind::TooManyRequests => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
                .headers_mut()
                .insert(http::header::DATE, http_date(SystemTime::now()));
            response
        }
        ErrorKind::InvalidSignature => invalid_signature(at),
    }
}

/// A `ThrottlingReasons` entry; an `Index...` reason names the index's ARN.
fn reason_json(reason: &InjectedReason, at: &Injection<'_>) -> Value {
    let table = table_arn(at.region, at.table);
    let resource = match (&reason.index, reason.reason.is_index()) {
        (Some(index), true) => format!("{table}/index/{index}"),
        _ => table,
    };
    json!({"reason": reason.reason.as_str(), "resource": resource})
}

/// `TransactionCanceledException` as DynamoDB sends it: capital-M `Message`
/// listing the codes, one `CancellationReasons` entry per item, `Message`
/// omitted for `None` (captures in aws-sdk-net issue 1292, erlcloud PR 607).
fn canceled(codes: Option<&[CancellationCode]>) -> Response<FullBody> {
    let codes = codes.unwrap_or(&[CancellationCode::TransactionConflict]);
    let listed: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|code| match code.message() {
            Some(message) => json!({"Code": code.as_str(), "Message": message}),
            None => json!({"Code": code.as_str()}),
        })
        .collect();
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "__type": format!("{DYNAMODB}TransactionCanceledException"),
            "CancellationReasons": reasons,
            "Message": format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                listed.join(", ")
            ),
        }),
    )
}

/// A signature rejection from a server whose clock is `clock_skew_seconds`
/// ahead of the client's (behind when negative). DynamoDB uses the coral
/// namespace for it (a captured answer: `{"__type":
/// "com.amazon.coral.service#InvalidSignatureException", ...}` with HTTP 400).
fn invalid_signature(at: &Injection<'_>) -> Response<FullBody> {
    let now = SystemTime::now();
    let skew = at.shape.clock_skew_seconds.unwrap_or(0);
    let magnitude = Duration::from_secs(skew.unsigned_abs());
    let server = if skew >= 0 {
        now + magnitude
    } else {
        now - magnitude
    };
    let signed = at
        .signed_at
        .map_or_else(|| amz_date(now), |date| date.to_owned());
    let message = if magnitude <= SIGNATURE_WINDOW {
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
            .to_owned()
    } else if skew > 0 {
        format!(
            "Signature expired: {signed} is now earlier than {} ({} - 5 min.)",
            amz_date(server - SIGNATURE_WINDOW),
            amz_date(server)
        )
    } else {
        format!(
            "Signature not yet current: {signed} is still later than {} ({} + 5 min.)",
            amz_date(server + SIGNATURE_WINDOW),
            amz_date(server)
        )
    };
    let mut response = json_response(
        StatusCode::BAD_REQUEST,
        &json!({"__type": "com.amazon.coral.service#InvalidSignatureException", "message": message}),
    );
    response
        .headers_mut()
        .insert(http::header::DATE, http_date(server));
    response
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

/// A JSON response with DynamoDB's content type, a fresh request id and the
/// current `Date`.
pub(crate) fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<FullBody> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert("x-amzn-requestid", request_id());
    headers.insert(http::header::DATE, http_date(SystemTime::now()));
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
mod tests;
