//! The reasons DynamoDB attaches to an error: the `reason` of a
//! `ThrottlingReasons` entry and the `Code` of a `CancellationReasons` entry.
//!
//! Sources: the DynamoDB API reference, `ThrottlingReason` ("ResourceType +
//! OperationType + LimitType", 16 values; the Developer Guide's "DynamoDB
//! throttling resolution guide" lists them) and the `TransactionCanceledException`
//! docs in `aws-sdk-dynamodb` 1.136 (`types/error/_transaction_canceled_exception.rs`:
//! the codes and their messages).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a request was throttled: the `reason` DynamoDB puts in `ThrottlingReasons`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each name is the wire name; the groups are documented
pub enum ThrottleReason {
    // Provisioned mode: the table's or index's provisioned capacity (bank included).
    TableReadProvisionedThroughputExceeded,
    TableWriteProvisionedThroughputExceeded,
    IndexReadProvisionedThroughputExceeded,
    IndexWriteProvisionedThroughputExceeded,
    // Either mode: one partition key value over the per-partition limit (a hot key).
    TableReadKeyRangeThroughputExceeded,
    TableWriteKeyRangeThroughputExceeded,
    IndexReadKeyRangeThroughputExceeded,
    IndexWriteKeyRangeThroughputExceeded,
    // On-demand mode: the per-table account quota of the region.
    TableReadAccountLimitExceeded,
    TableWriteAccountLimitExceeded,
    IndexReadAccountLimitExceeded,
    IndexWriteAccountLimitExceeded,
    // On-demand mode: the maximum throughput configured on the table or index.
    TableReadMaxOnDemandThroughputExceeded,
    TableWriteMaxOnDemandThroughputExceeded,
    IndexReadMaxOnDemandThroughputExceeded,
    IndexWriteMaxOnDemandThroughputExceeded,
}

impl ThrottleReason {
    /// All 16 reasons DynamoDB documents.
    pub const ALL: [ThrottleReason; 16] = {
        use ThrottleReason::*;
        [
            TableReadProvisionedThroughputExceeded,
            TableWriteProvisionedThroughputExceeded,
            IndexReadProvisionedThroughputExceeded,
            IndexWriteProvisionedThroughputExceeded,
            TableReadKeyRangeThroughputExceeded,
            TableWriteKeyRangeThroughputExceeded,
            IndexReadKeyRangeThroughputExceeded,
            IndexWriteKeyRangeThroughputExceeded,
            TableReadAccountLimitExceeded,
            TableWriteAccountLimitExceeded,
            IndexReadAccountLimitExceeded,
            IndexWriteAccountLimitExceeded,
            TableReadMaxOnDemandThroughputExceeded,
            TableWriteMaxOnDemandThroughputExceeded,
            IndexReadMaxOnDemandThroughputExceeded,
            IndexWriteMaxOnDemandThroughputExceeded,
        ]
    };

    /// The wire name, e.g. `TableWriteProvisionedThroughputExceeded`.
    pub fn as_str(self) -> &'static str {
        use ThrottleReason::*;
        match self {
            TableReadProvisionedThroughputExceeded => "TableReadProvisionedThroughputExceeded",
            TableWriteProvisionedThroughputExceeded => "TableWriteProvisionedThroughputExceeded",
            IndexReadProvisionedThroughputExceeded => "IndexReadProvisionedThroughputExceeded",
            IndexWriteProvisionedThroughputExceeded => "IndexWriteProvisionedThroughputExceeded",
            TableReadKeyRangeThroughputExceeded => "TableReadKeyRangeThroughputExceeded",
            TableWriteKeyRangeThroughputExceeded => "TableWriteKeyRangeThroughputExceeded",
            IndexReadKeyRangeThroughputExceeded => "IndexReadKeyRangeThroughputExceeded",
            IndexWriteKeyRangeThroughputExceeded => "IndexWriteKeyRangeThroughputExceeded",
            TableReadAccountLimitExceeded => "TableReadAccountLimitExceeded",
            TableWriteAccountLimitExceeded => "TableWriteAccountLimitExceeded",
            IndexReadAccountLimitExceeded => "IndexReadAccountLimitExceeded",
            IndexWriteAccountLimitExceeded => "IndexWriteAccountLimitExceeded",
            TableReadMaxOnDemandThroughputExceeded => "TableReadMaxOnDemandThroughputExceeded",
            TableWriteMaxOnDemandThroughputExceeded => "TableWriteMaxOnDemandThroughputExceeded",
            IndexReadMaxOnDemandThroughputExceeded => "IndexReadMaxOnDemandThroughputExceeded",
            IndexWriteMaxOnDemandThroughputExceeded => "IndexWriteMaxOnDemandThroughputExceeded",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<ThrottleReason> {
        ThrottleReason::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The table-capacity reason for a read or a write.
    pub fn table(write: bool) -> ThrottleReason {
        if write {
            ThrottleReason::TableWriteProvisionedThroughputExceeded
        } else {
            ThrottleReason::TableReadProvisionedThroughputExceeded
        }
    }

    /// The table's on-demand account-quota reason for a read or a write.
    pub fn account(write: bool) -> ThrottleReason {
        if write {
            ThrottleReason::TableWriteAccountLimitExceeded
        } else {
            ThrottleReason::TableReadAccountLimitExceeded
        }
    }

    /// True for the `Index...` reasons, whose resource is an index ARN.
    pub fn is_index(self) -> bool {
        self.as_str().starts_with("Index")
    }
}

impl fmt::Display for ThrottleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ThrottleReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ThrottleReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        ThrottleReason::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown throttling reason {name:?} (expected <Table|Index><Read|Write>\
                 <ProvisionedThroughputExceeded|KeyRangeThroughputExceeded|AccountLimitExceeded|\
                 MaxOnDemandThroughputExceeded>)"
            ))
        })
    }
}

/// A throttling reason a rule injects, with the index an `Index...` reason
/// names. In JSON: `"TableWriteKeyRangeThroughputExceeded"` or
/// `{"reason": "IndexReadProvisionedThroughputExceeded", "index": "by-email"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "ReasonRepr")]
#[non_exhaustive]
pub struct InjectedReason {
    /// The reason.
    pub reason: ThrottleReason,
    /// The index of an `Index...` reason (required for those).
    pub index: Option<String>,
}

impl InjectedReason {
    /// A table reason, or an index reason without its index (refused by validation).
    pub fn new(reason: ThrottleReason) -> InjectedReason {
        InjectedReason {
            reason,
            index: None,
        }
    }

    /// An `Index...` reason on `index`.
    pub fn on_index(reason: ThrottleReason, index: impl Into<String>) -> InjectedReason {
        InjectedReason {
            reason,
            index: Some(index.into()),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ReasonRepr {
    Name(ThrottleReason),
    Full {
        reason: ThrottleReason,
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<String>,
    },
}

// By hand rather than `untagged`, whose error hides which name was wrong.
impl<'de> Deserialize<'de> for InjectedReason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            reason: ThrottleReason,
            #[serde(default)]
            index: Option<String>,
        }
        use serde::de::Error;
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(name) => ThrottleReason::deserialize(
                serde::de::value::StrDeserializer::<D::Error>::new(&name),
            )
            .map(InjectedReason::new),
            object @ serde_json::Value::Object(_) => serde_json::from_value::<Full>(object)
                .map(|f| InjectedReason {
                    reason: f.reason,
                    index: f.index,
                })
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "a throttling reason is a name or {{\"reason\": ..., \"index\": ...}}, not {other}"
            ))),
        }
    }
}

impl From<InjectedReason> for ReasonRepr {
    fn from(r: InjectedReason) -> Self {
        match r.index {
            None => ReasonRepr::Name(r.reason),
            index => ReasonRepr::Full {
                reason: r.reason,
                index,
            },
        }
    }
}

/// The `Code` of one `CancellationReasons` entry of a
/// `TransactionCanceledException`, one per item of the transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CancellationCode {
    /// The item did not cause the cancellation (`"None"`, the literal string).
    None,
    /// A condition expression did not hold.
    ConditionalCheckFailed,
    /// An item collection grew past its size limit.
    ItemCollectionSizeLimitExceeded,
    /// Another transaction holds the item.
    TransactionConflict,
    /// The table's provisioned throughput was exceeded.
    ProvisionedThroughputExceeded,
    /// An on-demand table was throttled while it scales.
    ThrottlingError,
    /// The item failed validation.
    ValidationError,
}

impl CancellationCode {
    /// The wire name, e.g. `TransactionConflict`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancellationCode::None => "None",
            CancellationCode::ConditionalCheckFailed => "ConditionalCheckFailed",
            CancellationCode::ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceeded",
            CancellationCode::TransactionConflict => "TransactionConflict",
            CancellationCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            CancellationCode::ThrottlingError => "ThrottlingError",
            CancellationCode::ValidationError => "ValidationError",
        }
    }

    /// The `Message` DynamoDB sends with the code (one of them where it has
    /// several); `None` has none, and DynamoDB omits the field.
    pub fn message(self) -> Option<&'static str> {
        Some(match self {
            CancellationCode::None => return None,
            CancellationCode::ConditionalCheckFailed => "The conditional request failed",
            CancellationCode::ItemCollectionSizeLimitExceeded => "Collection size exceeded",
            CancellationCode::TransactionConflict => "Transaction is ongoing for the item",
            CancellationCode::ProvisionedThroughputExceeded => crate::inject::PROVISIONED_MESSAGE,
            CancellationCode::ThrottlingError => crate::inject::ON_DEMAND_MESSAGE,
            CancellationCode::ValidationError => "One or more parameter values were invalid.",
        })
    }
}

impl fmt::Display for CancellationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
