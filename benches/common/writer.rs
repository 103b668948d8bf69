//! The write the throttling benches offer: a ~400-byte PutItem (1 WCU) of its
//! own key, through the plain SDK or through dynagate, so that every variant
//! of a bench sends the same request.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use dynagate::{Operation, ResilientClient};

#[derive(Clone)]
enum Backend {
    Sdk(Client),
    Dynagate(ResilientClient),
}

/// One client under test and how it sends its writes.
#[derive(Clone)]
pub struct Writer {
    client: Backend,
    /// Whether requests ask for `ConsumedCapacity` and declare their units:
    /// a capacity gate needs both, and the other variants of the same bench
    /// then send the same request.
    capacity: bool,
}

impl Writer {
    /// The plain SDK, with the retry mode `retry`.
    pub fn sdk(config: &SdkConfig, retry: RetryConfig) -> Writer {
        let config = aws_sdk_dynamodb::config::Builder::from(config)
            .retry_config(retry)
            .build();
        Writer::sdk_config(config)
    }

    /// The plain SDK with the client configuration `config`.
    pub fn sdk_config(config: aws_sdk_dynamodb::Config) -> Writer {
        Writer {
            client: Backend::Sdk(Client::from_conf(config)),
            capacity: false,
        }
    }

    /// dynagate's client.
    pub fn dynagate(client: ResilientClient) -> Writer {
        Writer {
            client: Backend::Dynagate(client),
            capacity: false,
        }
    }

    /// Asks for `ReturnConsumedCapacity::Total` in every request, and tells
    /// dynagate that each write costs 1 WCU.
    pub fn with_consumed_capacity(mut self) -> Writer {
        self.capacity = true;
        self
    }

    /// `Ok` on success, else why the write was given up.
    pub async fn put(&self, table: &str, key: String) -> Result<(), String> {
        let payload = AttributeValue::S("x".repeat(400));
        let consumed = self.capacity.then_some(ReturnConsumedCapacity::Total);
        match &self.client {
            Backend::Sdk(sdk) => sdk
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(key))
                .item("payload", payload)
                .set_return_consumed_capacity(consumed)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_give_up(&e)),
            Backend::Dynagate(client) => {
                let mut operation = Operation::write("PutItem", table).idempotent();
                if self.capacity {
                    operation = operation.units(1.0);
                }
                client
                    .call(operation, |sdk| {
                        sdk.put_item()
                            .table_name(table)
                            .item("pk", AttributeValue::S(key.clone()))
                            .item("payload", payload.clone())
                            .set_return_consumed_capacity(consumed.clone())
                            .send()
                    })
                    .await
                    .map(|_| ())
                    .map_err(|e| e.reason().label().to_owned())
            }
        }
    }
}

/// Why the SDK gave a write up: `throttled` (out of attempts or of retry
/// quota), else DynamoDB's error code or the kind of failure.
fn sdk_give_up<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match (error.code(), error) {
        (Some("ProvisionedThroughputExceededException"), _) => "throttled".into(),
        (Some(code), _) => code.into(),
        (None, SdkError::TimeoutError(_)) => "timeout".into(),
        (None, SdkError::DispatchFailure(_)) => "dispatch_failure".into(),
        _ => "other".into(),
    }
}
