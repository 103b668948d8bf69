//! A `Repository<Doc>` over a test table, shared by the `repository*` test
//! binaries.

use dynagate::ResilientClient;
use dynagate::repository::{KeySchema, KeyType, Repository, WriteToken};
use dynagate::retry::RetryPolicy;
use serde::{Deserialize, Serialize};

use super::TestTable;

/// Field names that are DynamoDB reserved words: every expression must go
/// through expression attribute names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    pub pk: String,
    pub name: String,
    pub status: String,
    pub size: u32,
    #[serde(default)]
    pub version: u64,
}

/// A `Doc` under key `pk`, not yet stored.
pub fn doc(pk: &str, name: &str) -> Doc {
    Doc {
        pk: pk.into(),
        name: name.into(),
        status: "active".into(),
        size: 3,
        version: 0,
    }
}

/// A `Repository<Doc>` on `table`, keyed by the string `pk`, default retries.
pub async fn repository(table: &TestTable) -> Repository<Doc> {
    let client = ResilientClient::new(&super::sdk_config().await, RetryPolicy::default());
    Repository::new(
        client,
        table.name(),
        KeySchema::partition("pk", KeyType::String),
    )
}

/// A write token from a literal the test knows to be valid.
pub fn token(s: &str) -> WriteToken {
    WriteToken::new(s).unwrap()
}
