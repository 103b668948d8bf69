use super::*;
use http_body_util::BodyExt;

use crate::reasons::{CancellationCode, InjectedReason};

fn inject(kind: ErrorKind, write: bool, shape: &ErrorShape) -> Response<FullBody> {
    injected(
        kind,
        &Injection {
            write,
            region: "us-east-1",
            table: "t",
            shape,
            signed_at: None,
        },
    )
}

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
        let response = inject(kind, true, &ErrorShape::default());
        assert_eq!(response.status().as_u16(), status, "{kind}");
        assert_eq!(body_json(response).await["__type"], type_name);
    }
    let read = body_json(inject(
        ErrorKind::ProvisionedThroughputExceeded,
        false,
        &ErrorShape::default(),
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

fn date_of(response: &Response<FullBody>) -> SystemTime {
    let value = response.headers()["date"].to_str().unwrap();
    httpdate::parse_http_date(value).unwrap()
}

fn off_by(a: SystemTime, b: SystemTime) -> Duration {
    a.duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap_or_default()
}

#[tokio::test]
async fn contention_and_limit_kinds_have_dynamodbs_shapes() {
    let cases = [
        (
            ErrorKind::TransactionConflict,
            "TransactionConflictException",
        ),
        (
            ErrorKind::TransactionInProgress,
            "TransactionInProgressException",
        ),
        (
            ErrorKind::ReplicatedWriteConflict,
            "ReplicatedWriteConflictException",
        ),
        (ErrorKind::LimitExceeded, "LimitExceededException"),
    ];
    for (kind, code) in cases {
        let response = inject(kind, true, &ErrorShape::default());
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{kind}");
        assert_eq!(
            response.headers()["content-type"],
            "application/x-amz-json-1.0"
        );
        assert!(off_by(date_of(&response), SystemTime::now()) < Duration::from_secs(5));
        let body = body_json(response).await;
        assert_eq!(
            body["__type"],
            format!("com.amazonaws.dynamodb.v20120810#{code}")
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(ErrorKind::parse(code), Some(kind));
        assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
    }
}

#[tokio::test]
async fn a_cancellation_lists_its_reason_codes() {
    let shape = ErrorShape {
        cancellation_reasons: Some(vec![
            CancellationCode::None,
            CancellationCode::TransactionConflict,
        ]),
        ..ErrorShape::default()
    };
    let response = inject(ErrorKind::TransactionCanceled, true, &shape);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = body_json(response).await;
    assert_eq!(
        body,
        json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "CancellationReasons": [
                {"Code": "None"},
                {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
            ],
            "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
        })
    );
    let default = body_json(inject(
        ErrorKind::TransactionCanceled,
        true,
        &ErrorShape::default(),
    ))
    .await;
    assert_eq!(
        default["CancellationReasons"],
        json!([{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}])
    );
}

#[tokio::test]
async fn throttling_with_reasons_is_the_on_demand_shape() {
    let shape = ErrorShape {
        throttling_reasons: Some(vec![
            InjectedReason::new(ThrottleReason::TableWriteKeyRangeThroughputExceeded),
            InjectedReason::on_index(
                ThrottleReason::IndexWriteMaxOnDemandThroughputExceeded,
                "gsi",
            ),
        ]),
        ..ErrorShape::default()
    };
    let body = body_json(inject(ErrorKind::Throttling, true, &shape)).await;
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#ThrottlingException"
    );
    assert!(body.get("ThrottlingReasons").is_none(), "lower-case t only");
    assert_eq!(
        body["throttlingReasons"],
        json!([
            {"reason": "TableWriteKeyRangeThroughputExceeded",
             "resource": "arn:aws:dynamodb:us-east-1:000000000000:table/t"},
            {"reason": "IndexWriteMaxOnDemandThroughputExceeded",
             "resource": "arn:aws:dynamodb:us-east-1:000000000000:table/t/index/gsi"},
        ])
    );
    let plain = body_json(inject(ErrorKind::Throttling, true, &ErrorShape::default())).await;
    assert_eq!(
        plain["__type"],
        "com.amazon.coral.availability#ThrottlingException"
    );
    assert!(plain.get("throttlingReasons").is_none());
}

#[tokio::test]
async fn every_throttling_reason_goes_on_the_wire_as_named() {
    for kind in [
        ErrorKind::ProvisionedThroughputExceeded,
        ErrorKind::RequestLimitExceeded,
        ErrorKind::Throttling,
    ] {
        for reason in ThrottleReason::ALL {
            let injected_reason = if reason.is_index() {
                InjectedReason::on_index(reason, "i")
            } else {
                InjectedReason::new(reason)
            };
            let shape = ErrorShape {
                throttling_reasons: Some(vec![injected_reason]),
                ..ErrorShape::default()
            };
            let body = body_json(inject(kind, false, &shape)).await;
            let field = if kind == ErrorKind::Throttling {
                "throttlingReasons"
            } else {
                "ThrottlingReasons"
            };
            assert_eq!(body[field][0]["reason"], reason.as_str(), "{kind}");
            assert_eq!(ThrottleReason::parse(reason.as_str()), Some(reason));
        }
    }
    assert_eq!(ThrottleReason::ALL.len(), 16);
    let names: std::collections::HashSet<_> =
        ThrottleReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), 16, "no name twice");
}

#[tokio::test]
async fn request_limit_exceeded_defaults_to_the_account_limit() {
    let response = inject(
        ErrorKind::RequestLimitExceeded,
        true,
        &ErrorShape::default(),
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = body_json(response).await;
    assert_eq!(
        body["__type"],
        "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded"
    );
    assert_eq!(
        body["ThrottlingReasons"][0]["reason"],
        "TableWriteAccountLimitExceeded"
    );
}

#[tokio::test]
async fn a_bare_429_has_no_error_code() {
    let response = inject(ErrorKind::TooManyRequests, true, &ErrorShape::default());
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("x-amzn-requestid").is_none());
    assert!(off_by(date_of(&response), SystemTime::now()) < Duration::from_secs(5));
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(bytes.is_empty());
    assert_eq!(ErrorKind::parse("429"), Some(ErrorKind::TooManyRequests));
}

#[tokio::test]
async fn a_signature_rejection_carries_the_skewed_date() {
    let skewed = |seconds| ErrorShape {
        clock_skew_seconds: Some(seconds),
        ..ErrorShape::default()
    };
    let ahead = inject(ErrorKind::InvalidSignature, true, &skewed(600));
    assert_eq!(ahead.status(), StatusCode::BAD_REQUEST);
    let skew = date_of(&ahead).duration_since(SystemTime::now()).unwrap();
    assert!(
        skew > Duration::from_secs(595) && skew <= Duration::from_secs(600),
        "{skew:?}"
    );
    let body = body_json(ahead).await;
    assert_eq!(
        body["__type"],
        "com.amazon.coral.service#InvalidSignatureException"
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("Signature expired: "), "{message}");
    assert!(message.ends_with(" - 5 min.)"), "{message}");

    let behind = inject(ErrorKind::InvalidSignature, true, &skewed(-600));
    let skew = SystemTime::now().duration_since(date_of(&behind)).unwrap();
    assert!(skew >= Duration::from_secs(599), "{skew:?}");
    let message = body_json(behind).await["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with("Signature not yet current: "),
        "{message}"
    );

    let small = inject(ErrorKind::InvalidSignature, true, &skewed(60));
    assert!(off_by(date_of(&small), SystemTime::now()) < Duration::from_secs(65));
    let message = body_json(small).await["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("The request signature we calculated does not match"));
}
