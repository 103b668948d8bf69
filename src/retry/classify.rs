//! What a failed DynamoDB call means for a retry: the classification step.
//!
//! Every outcome of an attempt maps to one [`ErrorKind`]. The kind decides
//! whether a retry can help, how long to back off and what the retry costs from
//! the budget, and, for writes, whether the request may already have been
//! applied. Classification reads the error code, the HTTP status and the error
//! body DynamoDB sent (`ThrottlingReasons`, `CancellationReasons`), so it works
//! the same for every operation.

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::retry::kind::{
    Ambiguity, ErrorKind, Throttle, ThrottleCode, ThrottlingReason, Transient,
};

/// Classifies the outcome of one SDK call.
pub fn classify<E>(error: &SdkError<E, HttpResponse>) -> ErrorKind
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match error {
        SdkError::ServiceError(context) => {
            let raw = context.raw();
            classify_service_error(
                context.err().code(),
                raw.status().as_u16(),
                raw.body().bytes().unwrap_or_default(),
            )
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
/// request cannot have reached DynamoDB.
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
            if matches!(
                io.kind(),
                Io::ConnectionRefused
                    | Io::AddrNotAvailable
                    | Io::HostUnreachable
                    | Io::NetworkUnreachable
            ) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Classifies an answer DynamoDB sent, from its error code, HTTP status and body.
pub(crate) fn classify_service_error(code: Option<&str>, status: u16, body: &[u8]) -> ErrorKind {
    let throttle = |code| ErrorKind::Throttling(Throttle::new(code, throttling_reasons(body)));
    match code.unwrap_or_default() {
        "ProvisionedThroughputExceededException" => {
            throttle(ThrottleCode::ProvisionedThroughputExceeded)
        }
        "ThrottlingException" | "Throttling" => throttle(ThrottleCode::Throttling),
        "RequestLimitExceeded" => throttle(ThrottleCode::RequestLimitExceeded),
        "TransactionConflictException" => throttle(ThrottleCode::TransactionConflict),
        "TransactionCanceledException" => classify_cancellation(body),
        "ConditionalCheckFailedException" => ErrorKind::Conflict,
        "InternalServerError" | "ServiceUnavailable" | "ServiceUnavailableException" => {
            ErrorKind::Transient(Transient::ServerError {
                status: if status >= 500 { status } else { 500 },
            })
        }
        _ if status >= 500 => ErrorKind::Transient(Transient::ServerError { status }),
        _ => ErrorKind::Permanent,
    }
}

/// A cancelled transaction is throttling when every item that failed, failed
/// for throttling or a conflict with another transaction; any other reason
/// (a condition, validation) makes retrying pointless.
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
    let retryable = |c: &&str| {
        matches!(
            *c,
            "ThrottlingError" | "ProvisionedThroughputExceeded" | "TransactionConflict"
        )
    };
    if !codes.is_empty() && codes.iter().all(retryable) {
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

fn throttling_reasons(body: &[u8]) -> Vec<ThrottlingReason> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    json.get("ThrottlingReasons")
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
mod tests {
    use super::*;

    const PTEE_HOT_KEY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message":"Throughput exceeds the current capacity for one or more partition keys.",
        "ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded",
        "resource":"arn:aws:dynamodb:us-east-1:123456789012:table/users"}]}"#;

    fn kind(code: &str, status: u16, body: &str) -> ErrorKind {
        classify_service_error(Some(code), status, body.as_bytes())
    }

    #[test]
    fn throughput_errors_are_throttling_and_keep_their_reasons() {
        let k = kind("ProvisionedThroughputExceededException", 400, PTEE_HOT_KEY);
        let ErrorKind::Throttling(t) = &k else {
            panic!("{k:?}")
        };
        assert_eq!(t.code(), ThrottleCode::ProvisionedThroughputExceeded);
        assert_eq!(t.reasons().len(), 1);
        assert_eq!(
            t.reasons()[0].resource.as_deref(),
            Some("arn:aws:dynamodb:us-east-1:123456789012:table/users")
        );
        assert!(t.is_hot_key(), "a key-range limit is a hot key");
        assert!(!t.reasons()[0].is_read());
        assert_eq!(t.label(), "TableWriteKeyRangeThroughputExceeded");
        assert!(k.is_retryable() && !k.may_have_applied());
    }

    #[test]
    fn a_table_wide_throttle_is_not_a_hot_key() {
        let body = r#"{"ThrottlingReasons":[{"reason":"TableReadProvisionedThroughputExceeded"}]}"#;
        let ErrorKind::Throttling(t) = kind("ProvisionedThroughputExceededException", 400, body)
        else {
            panic!()
        };
        assert!(!t.is_hot_key());
        assert!(t.reasons()[0].is_read());
        // Without reasons the label falls back to the code.
        let ErrorKind::Throttling(t) = kind("ThrottlingException", 400, "{}") else {
            panic!()
        };
        assert_eq!(t.label(), "ThrottlingException");
        assert!(!t.is_hot_key());
    }

    #[test]
    fn every_throttling_code_is_throttling() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "TransactionConflictException",
        ] {
            assert!(
                matches!(kind(code, 400, "{}"), ErrorKind::Throttling(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn a_cancelled_transaction_is_throttling_only_when_every_failure_is() {
        let throttled = r#"{"CancellationReasons":[{"Code":"None"},{"Code":"ThrottlingError"},{"Code":"TransactionConflict"}]}"#;
        assert!(matches!(
            kind("TransactionCanceledException", 400, throttled),
            ErrorKind::Throttling(t) if t.code() == ThrottleCode::TransactionCanceled
        ));
        let condition = r#"{"CancellationReasons":[{"Code":"ThrottlingError"},{"Code":"ConditionalCheckFailed"}]}"#;
        assert_eq!(
            kind("TransactionCanceledException", 400, condition),
            ErrorKind::Conflict
        );
        let validation = r#"{"CancellationReasons":[{"Code":"ValidationError"}]}"#;
        assert_eq!(
            kind("TransactionCanceledException", 400, validation),
            ErrorKind::Permanent
        );
        assert_eq!(
            kind("TransactionCanceledException", 400, "not json"),
            ErrorKind::Permanent
        );
    }

    #[test]
    fn server_errors_are_transient_and_may_have_applied() {
        for (code, status) in [
            ("InternalServerError", 500),
            ("ServiceUnavailable", 503),
            ("SomethingNew", 502),
        ] {
            let k = kind(code, status, "{}");
            assert_eq!(
                k,
                ErrorKind::Transient(Transient::ServerError { status }),
                "{code}"
            );
            assert!(k.is_retryable() && k.may_have_applied());
        }
    }

    #[test]
    fn client_errors_are_permanent_and_a_failed_condition_is_a_conflict() {
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ItemCollectionSizeLimitExceededException",
        ] {
            assert_eq!(kind(code, 400, "{}"), ErrorKind::Permanent, "{code}");
        }
        let k = kind("ConditionalCheckFailedException", 400, "{}");
        assert_eq!(k, ErrorKind::Conflict);
        assert!(!k.is_retryable());
    }
}
