//! DynamoDB for the tests: the SDK configuration and a table of each test's own.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use super::env::{dynamodb_endpoint, env_or, is_loopback, require_reachable, unique_name};

/// The shared AWS configuration the tests use: the standard chain, with static
/// dummy credentials and a default region when the endpoint is local.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = dynamodb_endpoint();
    require_reachable("DynamoDB", &endpoint, 80);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).endpoint_url(&endpoint);
    if is_loopback(&endpoint) {
        loader = loader
            .credentials_provider(Credentials::new(
                "dynagatelocal",
                "dynagatelocal",
                None,
                None,
                "dynagate-tests",
            ))
            .region(Region::new(env_or("AWS_REGION", "us-east-1")));
    }
    loader.load().await
}

/// The tests' AWS configuration pointed at `endpoint` instead (a fault proxy).
pub async fn sdk_config_via(endpoint: &str) -> SdkConfig {
    sdk_config()
        .await
        .to_builder()
        .endpoint_url(endpoint)
        .build()
}

/// A DynamoDB client built the way dynagate builds it (SDK retries disabled).
pub async fn dynamodb() -> Client {
    dynagate::sdk_client(&sdk_config().await)
}

/// A table of its own for one test, deleted when the test ends, pass or fail.
///
/// Its key is a string partition key `pk` and, when asked for, a string sort
/// key `sk`; billing is on demand.
#[derive(Debug)]
pub struct TestTable {
    client: Client,
    name: String,
    deleted: bool,
}

impl TestTable {
    pub async fn create(test: &str) -> TestTable {
        Self::create_with(test, false).await
    }

    pub async fn create_with_sort_key(test: &str) -> TestTable {
        Self::create_with(test, true).await
    }

    /// A table whose string partition key is named `partition_key`.
    pub async fn create_with_key(test: &str, partition_key: &str) -> TestTable {
        Self::create_table(test, partition_key, false).await
    }

    async fn create_with(test: &str, sort_key: bool) -> TestTable {
        Self::create_table(test, "pk", sort_key).await
    }

    async fn create_table(test: &str, partition_key: &str, sort_key: bool) -> TestTable {
        Self::create_shaped(test, |request| {
            let request = request
                .attribute_definitions(string_attribute(partition_key))
                .key_schema(key(partition_key, KeyType::Hash));
            if sort_key {
                request
                    .attribute_definitions(string_attribute("sk"))
                    .key_schema(key("sk", KeyType::Range))
            } else {
                request
            }
        })
        .await
    }

    /// A table whose keys and indexes `shape` declares (name and billing
    /// mode are set here).
    pub async fn create_shaped(
        test: &str,
        shape: impl FnOnce(CreateTableFluentBuilder) -> CreateTableFluentBuilder,
    ) -> TestTable {
        // The table's own client sets up and checks what is stored; it is
        // never the client under test. It retries (SDK standard mode, 10
        // attempts) so that a check survives a server injecting throttles:
        // LocalStack's DYNAMODB_ERROR_PROBABILITY throttles Scan too, and a
        // single-attempt verification Scan failed the ledger test there.
        // Against DynamoDB Local nothing throttles it, so nothing changes.
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk_config().await)
            .retry_config(
                aws_sdk_dynamodb::config::retry::RetryConfig::standard().with_max_attempts(10),
            )
            .build();
        let client = Client::from_conf(config);
        let name = unique_name(&format!("dg-{test}"));
        let request = client
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest);
        shape(request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating test table {name}: {e:?}"));
        TestTable {
            client,
            name,
            deleted: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes the table now and fails the test if that does not work.
    pub async fn delete(mut self) {
        self.deleted = true;
        self.client
            .delete_table()
            .table_name(&self.name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("deleting test table {}: {e:?}", self.name));
    }
}

impl Drop for TestTable {
    /// A test that panics never reaches `delete`; the table still goes. The SDK
    /// client belongs to the test's runtime, which may be unwinding, so the
    /// deletion runs on a runtime and client of its own.
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let name = std::mem::take(&mut self.name);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                let client = dynamodb().await;
                if let Err(e) = client.delete_table().table_name(&name).send().await {
                    eprintln!("cleanup: could not delete test table {name}: {e:?}");
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition")
}

pub fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("key schema element")
}
