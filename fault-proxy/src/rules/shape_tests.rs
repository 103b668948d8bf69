//! The rule syntax of the error shapes: reasons, clock skew, limits.

use super::*;
use crate::reasons::ThrottleReason;

fn error_of(json: &str) -> String {
    RuleSet::from_json(json)
        .expect_err("invalid rules")
        .to_string()
}

#[test]
fn a_rule_names_the_new_kinds_with_their_reasons() {
    let rules = RuleSet::from_json(
        r#"[
          {"errors": {"throttling": 1.0},
           "throttling_reasons": ["TableWriteKeyRangeThroughputExceeded",
                                  {"reason": "IndexReadAccountLimitExceeded", "index": "by-email"}],
           "error_limit": 2},
          {"table": "t", "operation": "TransactWriteItems",
           "errors": {"transaction_canceled": 1.0},
           "cancellation_reasons": ["None", "TransactionConflict"]},
          {"table": "t", "operation": "GetItem",
           "errors": {"invalid_signature": 1.0, "too_many_requests": 0.5, "limit_exceeded": 0.1},
           "clock_skew_seconds": -600}
        ]"#,
    )
    .expect("valid rules");
    let put = rules.resolve("t", "PutItem");
    let reasons = put.shape.throttling_reasons.as_deref().unwrap();
    assert_eq!(
        reasons[0],
        InjectedReason::new(ThrottleReason::TableWriteKeyRangeThroughputExceeded)
    );
    assert_eq!(
        reasons[1],
        InjectedReason::on_index(ThrottleReason::IndexReadAccountLimitExceeded, "by-email")
    );
    assert_eq!(put.error_limit, Some(ErrorLimit { rule: 0, max: 2 }));

    let transact = rules.resolve("t", "TransactWriteItems");
    assert_eq!(transact.errors[&ErrorKind::TransactionCanceled], 1.0);
    assert_eq!(
        transact.shape.cancellation_reasons.as_deref(),
        Some(
            &[
                CancellationCode::None,
                CancellationCode::TransactionConflict
            ][..]
        )
    );
    assert!(
        transact.shape.throttling_reasons.is_some(),
        "inherited from *:*"
    );

    let get = rules.resolve("t", "GetItem");
    assert_eq!(get.shape.clock_skew_seconds, Some(-600));
    assert_eq!(get.errors[&ErrorKind::TooManyRequests], 0.5);
    assert_eq!(get.errors[&ErrorKind::LimitExceeded], 0.1);

    let json = serde_json::to_string(&rules).unwrap();
    assert_eq!(RuleSet::from_json(&json).unwrap(), rules, "{json}");
}

#[test]
fn invalid_shapes_say_what_is_wrong() {
    assert!(
        error_of(r#"[{"throttling_reasons": ["TableWriteHotKey"]}]"#)
            .contains("unknown throttling reason")
    );
    assert!(
        error_of(r#"[{"throttling_reasons": ["IndexWriteKeyRangeThroughputExceeded"]}]"#)
            .contains("names an index")
    );
    assert!(
        error_of(
            r#"[{"throttling_reasons": [{"reason": "TableWriteKeyRangeThroughputExceeded", "index": "i"}]}]"#
        )
        .contains("takes no index")
    );
    assert!(
        error_of(r#"[{"throttling_reasons": [{"reason": "TableWriteHotKey"}]}]"#)
            .contains("unknown throttling reason \"TableWriteHotKey\"")
    );
    assert!(error_of(r#"[{"throttling_reasons": [7]}]"#).contains("not 7"));
    assert!(error_of(r#"[{"throttling_reasons": []}]"#).contains("must not be empty"));
    assert!(error_of(r#"[{"cancellation_reasons": ["None"]}]"#).contains("other than None"));
    assert!(error_of(r#"[{"cancellation_reasons": ["Conflict"]}]"#).contains("unknown variant"));
    assert!(error_of(r#"[{"error_limit": -1}]"#).contains("invalid value"));
}
