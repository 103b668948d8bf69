//! The plain AWS SDK configurations the throttling benches hold dynagate
//! against, built as an application would build them, and a line saying
//! what each resolved to (read back from the built client configuration, so
//! the result file shows the numbers the SDK used, not numbers typed here).
//!
//! The newer retry behaviour: the registry's SDK (aws-config 1.13.0,
//! aws-sdk-dynamodb 1.136.0, aws-smithy-runtime 1.16.2, aws-smithy-types
//! 1.9.3) has "Retry Behavior 2.1", but no `BehaviorVersion` selects it
//! (`aws-smithy-runtime-api-1.20.0/src/client/behavior_version.rs`: the
//! latest, `v2026_01_12`, enables retries by default and a 3.1 s connect
//! timeout). It is opt-in: `AWS_NEW_RETRIES_2026=true` makes aws-config put
//! `RetrySpec::v2_1()` on the shared config
//! (`aws-config-1.13.0/src/default_provider/retry_config.rs`); DynamoDB's
//! config then sets a 25 ms base backoff for non-throttling errors and 4
//! attempts unless the application set its own retry config
//! (`aws-sdk-dynamodb-1.136.0/src/config.rs`, `From<&SdkConfig>`); the
//! retry quota charges 14 tokens a retry and 5 a throttling retry
//! (`aws-smithy-runtime-1.16.2/src/client/retries/strategy/standard.rs`,
//! `token_bucket_for_spec`). [`SdkBaseline::RetryBehavior21`] builds that.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_smithy_types::retry::RetrySpec;
use dynagate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

/// Where the newer retry behaviour stands in the SDK this bench is built
/// with, for the result file (the module doc cites the files).
pub const RETRY_BEHAVIOR_NOTE: &str = "Retry Behavior 2.1 is opt-in in this SDK \
    (AWS_NEW_RETRIES_2026=true); no BehaviorVersion selects it \
    (benches/common/sdk_baseline.rs cites the SDK files checked)";

/// The SDK's version, for a result file's header.
pub fn sdk_version() -> (&'static str, &'static str) {
    ("aws-sdk-dynamodb", aws_sdk_dynamodb::meta::PKG_VERSION)
}

/// One plain-SDK client configuration under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SdkBaseline {
    /// Standard retry mode with dynagate's default budget: its maximum
    /// attempts and its per-operation deadline as the operation timeout.
    SameBudget,
    /// Standard retry mode with the SDK's defaults (3 attempts).
    Standard,
    /// Standard retry mode under Retry Behavior 2.1, as
    /// `AWS_NEW_RETRIES_2026=true` enables it (see the module doc).
    RetryBehavior21,
    /// Adaptive retry mode with the SDK's defaults: a client-side rate
    /// limiter in front of the standard retries.
    Adaptive,
}

impl SdkBaseline {
    /// Every baseline, the fair fight first.
    pub const ALL: [SdkBaseline; 4] = [
        SdkBaseline::SameBudget,
        SdkBaseline::Standard,
        SdkBaseline::RetryBehavior21,
        SdkBaseline::Adaptive,
    ];

    /// The baseline's name in a result table.
    pub fn name(self) -> &'static str {
        match self {
            SdkBaseline::SameBudget => "AWS SDK, standard retry mode, same budget as dynagate",
            SdkBaseline::Standard => "AWS SDK, standard retry mode (defaults)",
            SdkBaseline::RetryBehavior21 => "AWS SDK, Retry Behavior 2.1 (AWS_NEW_RETRIES_2026)",
            SdkBaseline::Adaptive => "AWS SDK, adaptive retry mode (defaults)",
        }
    }

    /// A short name, for table names and retry partitions.
    pub fn slug(self) -> &'static str {
        match self {
            SdkBaseline::SameBudget => "sdk-same-budget",
            SdkBaseline::Standard => "sdk-standard",
            SdkBaseline::RetryBehavior21 => "sdk-retry-2-1",
            SdkBaseline::Adaptive => "sdk-adaptive",
        }
    }

    /// The DynamoDB client configuration of this baseline on top of
    /// `shared` (endpoint, region, credentials).
    pub fn config(self, shared: &SdkConfig) -> aws_sdk_dynamodb::Config {
        let builder = match self {
            SdkBaseline::SameBudget => {
                // The same numbers dynagate's default policy runs with, read
                // from it rather than typed again.
                let policy = RetryPolicy::builder().build().expect("default policy");
                aws_sdk_dynamodb::config::Builder::from(shared)
                    .retry_config(RetryConfig::standard().with_max_attempts(policy.max_attempts()))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(policy.deadline())
                            .build(),
                    )
            }
            SdkBaseline::Standard => aws_sdk_dynamodb::config::Builder::from(shared)
                .retry_config(RetryConfig::standard()),
            SdkBaseline::RetryBehavior21 => {
                // On the shared config, where aws-config puts it: DynamoDB's
                // own adjustments (25 ms, 4 attempts) apply only there.
                let shared = shared
                    .to_builder()
                    .retry_config(RetryConfig::standard().with_retry_spec(RetrySpec::v2_1()))
                    .build();
                aws_sdk_dynamodb::config::Builder::from(&shared)
            }
            SdkBaseline::Adaptive => aws_sdk_dynamodb::config::Builder::from(shared)
                .retry_config(RetryConfig::adaptive()),
        };
        // The retry quota and the adaptive rate limiter live in a process-wide
        // map keyed by retry partition: without its own partition a baseline
        // would inherit the bucket an earlier variant of the same process
        // drained (and that bucket's retry costs).
        builder
            .retry_partition(RetryPartition::new(format!(
                "dynagate-bench-{}",
                self.slug()
            )))
            .build()
    }

    /// What `config` resolved to: retry mode, attempts, backoffs, timeout.
    pub fn describe(self, config: &aws_sdk_dynamodb::Config) -> String {
        let Some(retry) = config.retry_config() else {
            return format!("{}: no retry configuration", self.name());
        };
        let spec = retry.retry_spec().map_or(String::new(), |spec| {
            format!(
                ", non-throttling base backoff {:?}",
                spec.non_throttling_initial_backoff()
            )
        });
        let timeout = config
            .timeout_config()
            .and_then(TimeoutConfig::operation_timeout)
            .map_or("none".to_owned(), |t| format!("{t:?}"));
        format!(
            "{}: {:?} mode, {} attempts, base backoff {:?}{spec}, max backoff {:?}, operation timeout {timeout}",
            self.name(),
            retry.mode(),
            retry.max_attempts(),
            retry.initial_backoff(),
            retry.max_backoff(),
        )
    }
}
