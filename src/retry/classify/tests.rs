//! Classification of DynamoDB's answers, code by code.

use super::*;
use std::time::{Duration, SystemTime};

const PTEE_HOT_KEY: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "message":"Throughput exceeds the current capacity for one or more partition keys.",
    "ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded",
    "resource":"arn:aws:dynamodb:us-east-1:123456789012:table/users"}]}"#;

fn kind(code: &str, status: u16, body: &str) -> ErrorKind {
    classify_service_error(Answer {
        code: Some(code),
        status,
        body: body.as_bytes(),
        date: None,
    })
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
    let ErrorKind::Throttling(t) = kind("ProvisionedThroughputExceededException", 400, body) else {
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
    let conflicts = r#"{"CancellationReasons":[{"Code":"None"},{"Code":"TransactionConflict"}]}"#;
    assert_eq!(
        kind("TransactionCanceledException", 400, conflicts),
        ErrorKind::Contention(Contention::CanceledByConflict)
    );
    let condition =
        r#"{"CancellationReasons":[{"Code":"ThrottlingError"},{"Code":"ConditionalCheckFailed"}]}"#;
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

/// The references retry `TransactionInProgressException` (`aws-runtime`'s
/// `THROTTLING_ERRORS`); DynamoDB answers it to a transaction's retry with
/// the same `ClientRequestToken` while the first attempt still runs.
#[test]
fn a_transaction_in_progress_is_contention_retried_and_not_applied() {
    let k = kind("TransactionInProgressException", 400, "{}");
    assert_eq!(k, ErrorKind::Contention(Contention::TransactionInProgress));
    assert!(k.is_retryable() && !k.may_have_applied());
}

/// The DynamoDB model marks `ReplicatedWriteConflictException` retryable.
#[test]
fn a_replicated_write_conflict_is_contention() {
    let k = kind("ReplicatedWriteConflictException", 400, "{}");
    assert_eq!(
        k,
        ErrorKind::Contention(Contention::ReplicatedWriteConflict)
    );
    assert!(k.is_retryable() && !k.may_have_applied());
}

/// Item contention is not capacity throttling: the gate cuts its rate only
/// for `ErrorKind::Throttling`.
#[test]
fn transaction_conflicts_are_contention_not_throttling() {
    let k = kind("TransactionConflictException", 400, "{}");
    assert_eq!(k, ErrorKind::Contention(Contention::TransactionConflict));
    assert!(!matches!(k, ErrorKind::Throttling(_)));
    assert_eq!(k.label(), "contention");
}

/// `ThrottlingException`'s reasons are `throttlingReasons` in the model and
/// the SDK's deserializer (`shape_throttling_exception.rs`).
#[test]
fn a_throttling_exception_keeps_its_lower_case_reasons() {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "throttlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded",
        "resource":"arn:aws:dynamodb:us-east-1:123456789012:table/users"}]}"#;
    let ErrorKind::Throttling(t) = kind("ThrottlingException", 400, body) else {
        panic!()
    };
    assert_eq!(t.reasons().len(), 1);
    assert!(t.is_hot_key(), "an on-demand hot key stays a hot key");
}

/// `LimitExceededException` is in `aws-runtime`'s `THROTTLING_ERRORS`; a
/// 429 is throttling to the AWS SDK for Java v2
/// (`SdkServiceException::isThrottlingException`).
#[test]
fn limit_exceeded_and_a_bare_429_are_throttling() {
    assert!(matches!(
        kind("LimitExceededException", 400, "{}"),
        ErrorKind::Throttling(t) if t.code() == ThrottleCode::LimitExceeded
    ));
    assert!(matches!(
        kind("", 429, ""),
        ErrorKind::Throttling(t) if t.code() == ThrottleCode::TooManyRequests
    ));
    assert!(matches!(
        kind("SlowDown", 503, ""),
        ErrorKind::Throttling(t) if t.code().as_str() == "SlowDown"
    ));
}

fn skewed_by(code: &str, skew: Duration, ahead: bool) -> ErrorKind {
    let now = SystemTime::now();
    let date = if ahead { now + skew } else { now - skew };
    classify_service_error(Answer {
        code: Some(code),
        status: 400,
        body: b"{}",
        date: Some(date),
    })
}

/// `aws-runtime`'s `service_clock_skew.rs`: a signature error with more than
/// 4 minutes between the response's `Date` and the local clock is retried
/// (the SDK signs the next attempt with the measured skew).
#[test]
fn a_signature_error_is_retried_only_when_the_date_shows_skew() {
    for code in [
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "RequestTimeTooSkewed",
        "AuthFailure",
    ] {
        for ahead in [true, false] {
            let k = skewed_by(code, Duration::from_secs(10 * 60), ahead);
            assert_eq!(k, ErrorKind::Transient(Transient::ClockSkew), "{code}");
            assert!(k.is_retryable() && !k.may_have_applied());
            let k = skewed_by(code, Duration::from_secs(60), ahead);
            assert_eq!(k, ErrorKind::Permanent, "{code}: a real signature error");
        }
        assert_eq!(kind(code, 400, "{}"), ErrorKind::Permanent, "no Date");
    }
}

#[test]
fn a_date_header_is_read_as_an_http_date() {
    let date = http_date("Tue, 01 Dec 2026 22:58:02 GMT").unwrap();
    let since = date.duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(since.as_secs(), 1_796_165_882);
    assert_eq!(http_date("yesterday"), None);
}

/// Only connect-phase errors prove a request was never sent.
#[test]
fn unreachable_on_an_open_connection_is_not_proof_of_never_sent() {
    use std::io::{Error, ErrorKind as Io};
    for kind in [
        Io::HostUnreachable,
        Io::NetworkUnreachable,
        Io::ConnectionReset,
    ] {
        assert!(!never_sent(&Error::from(kind)), "{kind:?}");
    }
    for kind in [Io::ConnectionRefused, Io::AddrNotAvailable] {
        assert!(never_sent(&Error::from(kind)), "{kind:?}");
    }
}
