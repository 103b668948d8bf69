//! What a failed DynamoDB call means for a retry: the classification step.
//!
//! Every outcome of an attempt maps to one [`ErrorKind`]. The kind decides
//! whether a retry can help, how long to back off and what the retry costs from
//! the budget, and, for writes, whether the request may already have been
//! applied. Classification reads the error code, the HTTP status, the `Date`
//! header and the error body DynamoDB sent (`ThrottlingReasons`,
//! `CancellationReasons`), so it works the same for every operation.
//!
//! The references, read code by code (the versions in `Cargo.lock`):
//! `aws-runtime` 1.10.2 `retries/classifiers.rs` (`THROTTLING_ERRORS`,
//! `TRANSIENT_ERRORS`) and `service_clock_skew.rs` (clock-skew codes, the
//! 4-minute threshold); `aws-smithy-runtime` 1.16.2 `HttpStatusCodeClassifier`
//! (500, 502, 503, 504); botocore's `retries/standard.py`; the AWS SDK for
//! Java v2 (`SdkServiceException::isThrottlingException`: a 429 is
//! throttling); the DynamoDB API model in `aws-sdk-dynamodb` 1.136
//! (`ThrottlingException` carries `throttlingReasons`, lower-case t,
//! `ProvisionedThroughputExceededException` and `RequestLimitExceeded` carry
//! `ThrottlingReasons`; `ReplicatedWriteConflictException` is retryable).
//! dynagate is stricter than the SDKs where DynamoDB's documentation says so:
//! a 5xx may have applied a write, and contention is not capacity.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::retry::kind::{
    Ambiguity, Contention, ErrorKind, Throttle, ThrottleCode, ThrottlingReason, Transient,
};

/// The error codes `aws-runtime` lists in `THROTTLING_ERRORS` that DynamoDB's
/// own model does not name; all of them are throttling to every AWS SDK.
const OTHER_THROTTLING_CODES: &[&str] = &[
    "ThrottledException",
    "RequestThrottledException",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Signature rejections that a wrong local clock causes (`aws-runtime`'s
/// `CLOCK_SKEW_ERROR_CODES`, without `AccessDeniedException`, which DynamoDB
/// uses for missing permissions far more often than for skew).
const CLOCK_SKEW_CODES: &[&str] = &[
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestTimeTooSkewed",
    "AuthFailure",
];

/// Below this skew a signature error is a real signature error
/// (`aws-runtime`'s `SKEW_DETECTION_THRESHOLD`).
const SKEW_THRESHOLD: Duration = Duration::from_secs(4 * 60);

/// What DynamoDB answered, as far as classification reads it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Answer<'a> {
    pub(crate) code: Option<&'a str>,
    pub(crate) status: u16,
    pub(crate) body: &'a [u8],
    /// The server's clock, from the `Date` header.
    pub(crate) date: Option<SystemTime>,
}

/// Classifies the outcome of one SDK call.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ErrorKind
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let raw = context.raw();
            classify_service_error(Answer {
                code: context.err().code(),
                status: raw.status().as_u16(),
                body: raw.body().bytes().unwrap_or_default(),
                date: raw.headers().get("date").and_then(http_date),
            })
        }
        SdkError::TimeoutError(_) => ErrorKind::Ambiguous(Ambiguity::Timeout),
        SdkError::DispatchFailure(failure) => {
            if failure.is_user() {
                ErrorKind::Permanent
            } else if never_sent(error) {
                ErrorKind::Transient(Transient::ConnectFailed)
            } else if failure.is_timeout() {
                ErrorKind::Ambiguous(Ambiguity::Timeout)
            } else {
                ErrorKind::Ambiguous(Ambiguity::ConnectionLost)
            }
        }
        SdkError::ResponseError(_) => ErrorKind::Ambiguous(Ambiguity::UnreadableResponse),
        // Construction failures and anything a future SDK adds: not retryable.
        _ => ErrorKind::Permanent,
    }
}

/// True when the error chain shows the connection was never established, so the
/// request cannot have reached DynamoDB: the HTTP client says the connect
/// failed, or the socket error is one only `connect` gives (refused, no local
/// address). `HostUnreachable` and `NetworkUnreachable` alone prove nothing:
/// Linux reports them on an established connection too (an ICMP error for a
/// TCP segment already in flight), after the request may have been sent.
fn never_sent(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(hyper_error) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && hyper_error.is_connect()
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as Io;
            if matches!(io.kind(), Io::ConnectionRefused | Io::AddrNotAvailable) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// An HTTP `Date` (IMF-fixdate), as DynamoDB sends it.
fn http_date(value: &str) -> Option<SystemTime> {
    use aws_sdk_dynamodb::primitives::{DateTime, DateTimeFormat};
    let parsed = DateTime::from_str(value, DateTimeFormat::HttpDate).ok()?;
    SystemTime::try_from(parsed).ok()
}

/// Classifies an answer DynamoDB sent, from its error code, HTTP status,
/// `Date` and body.
pub(crate) fn classify_service_error(answer: Answer<'_>) -> ErrorKind {
    let Answer {
        code, status, body, ..
    } = answer;
    let throttle = |code| ErrorKind::Throttling(Throttle::new(code, throttling_reasons(body)));
    match code.unwrap_or_default() {
        "ProvisionedThroughputExceededException" => {
            throttle(ThrottleCode::ProvisionedThroughputExceeded)
        }
        "ThrottlingException" | "Throttling" => throttle(ThrottleCode::Throttling),
        "RequestLimitExceeded" => throttle(ThrottleCode::RequestLimitExceeded),
        "LimitExceededException" => throttle(ThrottleCode::LimitExceeded),
        "TooManyRequestsException" => throttle(ThrottleCode::TooManyRequests),
        "TransactionConflictException" => ErrorKind::Contention(Contention::TransactionConflict),
        "TransactionInProgressException" => {
            ErrorKind::Contention(Contention::TransactionInProgress)
        }
        "ReplicatedWriteConflictException" => {
            ErrorKind::Contention(Contention::ReplicatedWriteConflict)
        }
        "TransactionCanceledException" => classify_cancellation(body),
        "ConditionalCheckFailedException" => ErrorKind::Conflict,
        "InternalServerError" | "ServiceUnavailable" | "ServiceUnavailableException" => {
            ErrorKind::Transient(Transient::ServerError {
                status: if status >= 500 { status } else { 500 },
            })
        }
        other if CLOCK_SKEW_CODES.contains(&other) => {
            if skewed(answer.date) {
                ErrorKind::Transient(Transient::ClockSkew)
            } else {
                ErrorKind::Permanent
            }
        }
        other => match OTHER_THROTTLING_CODES.iter().find(|c| **c == other) {
            Some(code) => throttle(ThrottleCode::Other { code }),
            None if status == 429 => throttle(ThrottleCode::TooManyRequests),
            None if status >= 500 => ErrorKind::Transient(Transient::ServerError { status }),
            None => ErrorKind::Permanent,
        },
    }
}

/// True when the server's clock and ours differ by more than the threshold.
fn skewed(server: Option<SystemTime>) -> bool {
    let Some(server) = server else {
        return false;
    };
    let now = SystemTime::now();
    let skew = server
        .duration_since(now)
        .or_else(|_| now.duration_since(server))
        .unwrap_or_default();
    skew > SKEW_THRESHOLD
}

/// A cancelled transaction is retried when every item that failed, failed for
/// throttling or a conflict with another transaction; any other reason (a
/// condition, validation) makes retrying pointless. Conflicts alone are
/// contention; with any throttling among them it is throttling, so the
/// capacity gate hears of the throttle.
fn classify_cancellation(body: &[u8]) -> ErrorKind {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let codes: Vec<&str> = json
        .get("CancellationReasons")
        .and_then(|r| r.as_array())
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(|r| r.get("Code").and_then(|c| c.as_str()))
                .filter(|c| *c != "None")
                .collect()
        })
        .unwrap_or_default();
    let throttled = |c: &&str| matches!(*c, "ThrottlingError" | "ProvisionedThroughputExceeded");
    let conflict = |c: &&str| *c == "TransactionConflict";
    if !codes.is_empty() && codes.iter().all(conflict) {
        ErrorKind::Contention(Contention::CanceledByConflict)
    } else if !codes.is_empty() && codes.iter().all(|c| throttled(c) || conflict(c)) {
        ErrorKind::Throttling(Throttle::new(
            ThrottleCode::TransactionCanceled,
            throttling_reasons(body),
        ))
    } else if codes.contains(&"ConditionalCheckFailed") {
        ErrorKind::Conflict
    } else {
        ErrorKind::Permanent
    }
}

/// The reasons of a throttle. DynamoDB's model spells the member
/// `ThrottlingReasons` on `ProvisionedThroughputExceededException` and
/// `RequestLimitExceeded` but `throttlingReasons` on `ThrottlingException`
/// (see the SDK's `shape_throttling_exception.rs`): both are read.
fn throttling_reasons(body: &[u8]) -> Vec<ThrottlingReason> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    json.get("ThrottlingReasons")
        .or_else(|| json.get("throttlingReasons"))
        .and_then(|r| r.as_array())
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(|r| {
                    Some(ThrottlingReason {
                        reason: r.get("reason")?.as_str()?.to_owned(),
                        resource: r
                            .get("resource")
                            .and_then(|v| v.as_str())
                            .map(str::to_owned),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
