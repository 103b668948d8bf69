//! The smallest program that shows the local stack working with dynagate.
//!
//! It writes a user into the `users` table through dynagate's
//! `ResilientClient` (one retry layer: backoff with jitter, a retry budget, a
//! deadline), reads it back, and counts its own runs in Redis.
//! `./dev.sh run` starts the stack and runs it; by hand:
//!
//! ```text
//! stack/stack.sh start
//! eval "$(stack/stack.sh env)"
//! cargo run --example hello_stack
//! ```
//!
//! Endpoints come from the standard variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! the AWS credential chain) and `REDIS_URL`.

use std::error::Error;
use std::process::ExitCode;

use aws_sdk_dynamodb::types::AttributeValue;
use dynagate::retry::RetryPolicy;
use dynagate::{Operation, ResilientClient};
use redis::AsyncCommands;

const TABLE: &str = "users";

const HINT: &str = "start the stack with `stack/stack.sh start` and load its \
                    settings with `eval \"$(stack/stack.sh env)\"`, or run `./dev.sh run`";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamodb = ResilientClient::new(&config, RetryPolicy::default());
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());

    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_connection_manager()
        .await
        .map_err(|e| format!("Redis at {redis_url}: {e}; {HINT}"))?;
    let run: i64 = redis.incr("dynagate:hello_stack:runs", 1).await?;

    // A full-item put is idempotent: repeating it stores the same item.
    let put = Operation::write("PutItem", TABLE).idempotent();
    dynamodb
        .call(put, |sdk| {
            sdk.put_item()
                .table_name(TABLE)
                .item("user_id", AttributeValue::S("ada".into()))
                .item("email", AttributeValue::S("ada@example.com".into()))
                .item("name", AttributeValue::S("Ada Lovelace".into()))
                .item("run", AttributeValue::N(run.to_string()))
                .send()
        })
        .await
        .map_err(|e| format!("{e}; {HINT}"))?;

    let user = dynamodb
        .call(Operation::read("GetItem", TABLE), |sdk| {
            sdk.get_item()
                .table_name(TABLE)
                .key("user_id", AttributeValue::S("ada".into()))
                .consistent_read(true)
                .send()
        })
        .await?
        .item
        .ok_or("the user just written is missing")?;

    let text = |name: &str| {
        user.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    println!(
        "DynamoDB at {}",
        config.endpoint_url().unwrap_or("the AWS default endpoint")
    );
    println!(
        "  users/ada -> name={:?} email={:?}",
        text("name"),
        text("email")
    );
    println!("Redis at {redis_url}");
    println!("  this example has run {run} time(s) against this Redis");
    Ok(())
}
