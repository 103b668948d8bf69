//! The DynamoDB client dynagate calls through: [`ResilientClient`].
//!
//! dynagate owns every retry. The AWS SDK retries on its own by default (the
//! standard mode makes up to 3 attempts), and stacking that under an
//! application-level retry loop multiplies attempts: 3 SDK attempts times 5
//! outer attempts is 15 calls for one request, exactly when DynamoDB is already
//! throttling. So the SDK client is built with its retries disabled, and the
//! timeouts of the shared configuration (connect, per attempt, per operation)
//! are kept as they are.

use std::future::Future;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemInput, GetItemOutput};

use crate::capacity::{CapacityGate, ConsumedCapacityInterceptor};
use crate::direct_get::DirectGet;
use crate::operation::Operation;
use crate::retry::{RetryError, RetryPolicy};

/// A DynamoDB client whose every call runs through dynagate's retry policy.
///
/// It wraps an `aws_sdk_dynamodb::Client` built by [`sdk_client`] (SDK retries
/// off, timeouts kept). Cloning is cheap and shares the SDK client, the retry
/// budget and the jitter's random number generator.
///
/// ```no_run
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use dynagate::{Operation, ResilientClient};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let dynamodb = ResilientClient::from_env().await;
/// let stored = dynamodb
///     .call(Operation::read("GetItem", "users"), |sdk| {
///         sdk.get_item()
///             .table_name("users")
///             .key("user_id", AttributeValue::S("ada".into()))
///             .send()
///     })
///     .await?;
/// println!("{:?}", stored.item());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ResilientClient {
    sdk: Client,
    policy: RetryPolicy,
    gate: Option<CapacityGate>,
    direct: Option<DirectGet>,
}

impl ResilientClient {
    /// Loads the standard AWS configuration chain (environment, profiles,
    /// `AWS_ENDPOINT_URL`, instance metadata) and uses the default
    /// [`RetryPolicy`].
    pub async fn from_env() -> ResilientClient {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        ResilientClient::new(&config, RetryPolicy::default())
    }

    /// A client from a shared AWS configuration and a retry policy.
    pub fn new(config: &SdkConfig, policy: RetryPolicy) -> ResilientClient {
        // The interceptor is idle unless a gate watches the attempt or a
        // usage meter is in scope; then it asks for ConsumedCapacity.
        let sdk = sdk_client(config)
            .config()
            .to_builder()
            .interceptor(ConsumedCapacityInterceptor)
            .build();
        ResilientClient {
            sdk: Client::from_conf(sdk),
            policy,
            gate: None,
            direct: None,
        }
    }

    /// Sends [`get_item`](ResilientClient::get_item) calls as one signed
    /// request each, without the SDK's orchestrator, once the SDK has sent a
    /// `get_item` on the same table (the first one per table still goes
    /// through the SDK, which shows the direct path its address, credentials
    /// and HTTP client; a GetItem sent through [`call`](ResilientClient::call),
    /// which may override the SDK's configuration, shows it nothing).
    ///
    /// It costs a fraction of the SDK's CPU per read (`benches/compare/`
    /// `compare.sh` and `profile_get.sh` measure the users API, which has it
    /// on) and answers in the SDK's types: the same output, the same errors,
    /// the same retries and capacity charges.
    /// What it leaves out of the SDK's pipeline: interceptors other than
    /// dynagate's own, the user agent, correction of the signing time for a
    /// skewed clock (a skewed request fails, is classified as clock skew, and
    /// is retried within the policy), and stalled-stream protection (the
    /// retry policy's deadline bounds every attempt). A client that signs
    /// with something other than SigV4 keeps the SDK path.
    pub fn with_direct_get(mut self) -> ResilientClient {
        let region = self
            .sdk
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        let (direct, capture) = DirectGet::new(region);
        let config = self.sdk.config().to_builder().interceptor(capture).build();
        self.sdk = Client::from_conf(config);
        self.direct = Some(direct);
        self
    }

    /// Puts every attempt of this client through a fleet
    /// [capacity gate](crate::capacity): it waits for its turn on its table's
    /// capacity, shared with every instance using the same Redis, and the
    /// `ConsumedCapacity` DynamoDB reports corrects the estimate.
    pub fn with_gate(mut self, gate: CapacityGate) -> ResilientClient {
        self.gate = Some(gate);
        self
    }

    /// The capacity gate, if the client has one.
    pub fn gate(&self) -> Option<&CapacityGate> {
        self.gate.as_ref()
    }

    /// The underlying SDK client (its retries are off). Calls made on it
    /// directly bypass dynagate's retries.
    pub fn sdk(&self) -> &Client {
        &self.sdk
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs one DynamoDB operation through the retry policy.
    ///
    /// `request` builds and sends the request; it is called once per attempt.
    /// The error says why the policy gave up, after how many attempts, and
    /// holds the last SDK error.
    pub async fn call<T, E, F, Fut>(
        &self,
        operation: Operation,
        mut request: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut(&Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &self.gate {
            Some(gate) => {
                self.policy
                    .run_gated(&operation, gate, || request(&self.sdk))
                    .await
            }
            None => self.policy.run(&operation, || request(&self.sdk)).await,
        }
    }
}

impl ResilientClient {
    /// Runs one GetItem through the retry policy: directly when
    /// [`with_direct_get`](ResilientClient::with_direct_get) is on and the
    /// table has been seen, through the SDK otherwise.
    pub async fn get_item(
        &self,
        operation: Operation,
        input: GetItemInput,
    ) -> Result<GetItemOutput, RetryError<GetItemError>> {
        self.call(operation, |sdk| {
            let input = input.clone();
            let direct = self.direct.clone();
            let sdk = sdk.clone();
            async move {
                let send = |input: GetItemInput| {
                    sdk.get_item()
                        .set_table_name(input.table_name)
                        .set_key(input.key)
                        .set_attributes_to_get(input.attributes_to_get)
                        .set_consistent_read(input.consistent_read)
                        .set_return_consumed_capacity(input.return_consumed_capacity)
                        .set_projection_expression(input.projection_expression)
                        .set_expression_attribute_names(input.expression_attribute_names)
                        .send()
                };
                match direct {
                    Some(direct) => match direct.send(input).await {
                        Ok(outcome) => outcome,
                        Err(not_yet) => direct.through_sdk(send(not_yet)).await,
                    },
                    None => send(input).await,
                }
            }
        })
        .await
    }
}

/// Builds an `aws_sdk_dynamodb::Client` from a shared AWS configuration, with
/// the SDK's own retries disabled.
///
/// Everything else comes from `config` unchanged: region, credentials, endpoint
/// (`AWS_ENDPOINT_URL` when it was loaded from the environment), HTTP client and
/// timeouts. Each call on the returned client makes exactly one attempt; a
/// throttled or failed attempt comes back to the caller as an error.
///
/// ```no_run
/// # async fn demo() {
/// let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
/// let dynamodb = dynagate::sdk_client(&config);
/// assert_eq!(dynamodb.config().retry_config().map(|r| r.max_attempts()), Some(1));
/// # }
/// ```
pub fn sdk_client(config: &SdkConfig) -> Client {
    let dynamodb_config = aws_sdk_dynamodb::config::Builder::from(config)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(dynamodb_config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;
    use aws_config::timeout::TimeoutConfig;
    use aws_sdk_dynamodb::config::Region;
    use std::time::Duration;

    fn shared_config(retry: RetryConfig) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .retry_config(retry)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_millis(750))
                    .operation_attempt_timeout(Duration::from_secs(2))
                    .build(),
            )
            .build()
    }

    /// A `call` future lives inside every caller's future (handlers,
    /// repository methods, spawned tasks); the SDK's own request future is
    /// several KB, so the loop must not hold it inline (it once did).
    #[test]
    fn a_call_future_stays_small() {
        let client = ResilientClient::new(
            &shared_config(RetryConfig::standard()),
            RetryPolicy::default(),
        );
        let sdk_request = client.sdk().get_item().table_name("t").send();
        let call = client.call(Operation::read("GetItem", "t"), |sdk| {
            sdk.get_item().table_name("t").send()
        });
        let (sdk_size, call_size) = (size_of_val(&sdk_request), size_of_val(&call));
        assert!(
            call_size < 8 * 1024 && call_size < sdk_size,
            "call future {call_size} bytes, SDK request future {sdk_size} bytes"
        );
    }

    #[test]
    fn sdk_retries_are_disabled_even_when_the_shared_config_asks_for_more() {
        let client = sdk_client(&shared_config(RetryConfig::standard().with_max_attempts(5)));
        let retry = client.config().retry_config().expect("retry config is set");
        assert_eq!(retry.max_attempts(), 1);
    }

    #[test]
    fn timeouts_and_region_of_the_shared_config_are_kept() {
        let client = sdk_client(&shared_config(RetryConfig::standard()));
        let timeouts = client.config().timeout_config().expect("timeouts are set");
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_millis(750)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            client.config().region().map(Region::as_ref),
            Some("eu-west-1")
        );
    }
}
