//! The retry loop with paused time and a seeded random number generator.

// The SDK's error type is large; the scripts below hold many of them.
#![allow(clippy::result_large_err)]

use super::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use tokio::time::Instant;

use crate::operation::Operation;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::get_item::GetItemError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use std::cell::Cell;
use std::collections::VecDeque;

type Error = SdkError<GetItemError, HttpResponse>;

fn service(code: &str, status: u16, body: &str) -> Error {
    let meta = ErrorMetadata::builder().code(code).message("test").build();
    SdkError::service_error(
        GetItemError::generic(meta),
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(body.to_owned()),
        ),
    )
}

fn throttled() -> Error {
    service(
        "ProvisionedThroughputExceededException",
        400,
        r#"{"ThrottlingReasons":[{"reason":"TableWriteProvisionedThroughputExceeded"}]}"#,
    )
}

fn internal() -> Error {
    service("InternalServerError", 500, "{}")
}

fn timed_out() -> Error {
    SdkError::timeout_error("attempt timeout")
}

fn policy() -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .seed(42)
        .budget(Arc::new(RetryBudget::unlimited()))
}

/// Runs `policy` over a script of attempt outcomes (then successes), counting calls.
async fn run_script(
    policy: &RetryPolicy,
    operation: &Operation,
    script: Vec<Result<&'static str, Error>>,
) -> (Result<&'static str, RetryError<GetItemError>>, u32) {
    let script = std::cell::RefCell::new(VecDeque::from(script));
    let calls = Cell::new(0);
    let result = policy
        .run(operation, || {
            calls.set(calls.get() + 1);
            let next = script.borrow_mut().pop_front().unwrap_or(Ok("done"));
            async move { next }
        })
        .await;
    (result, calls.get())
}

fn get() -> Operation {
    Operation::read("GetItem", "users")
}

mod loop_behaviour;
mod recorded_metrics;
