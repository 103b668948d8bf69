//! What the classifier answers: the kinds of failure and what each means
//! for a retry (can it help, how long to wait, may a write have applied).

use std::fmt;

/// What a failed attempt means for retrying it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// DynamoDB refused the request for capacity. Nothing was applied;
    /// retrying after a backoff helps, and the capacity gate slows down.
    Throttling(Throttle),
    /// Another write held the item (a transaction conflict, a transaction
    /// still in progress, a conflicting write in another region). Nothing was
    /// applied; retrying helps. Not capacity: the capacity gate never cuts
    /// its rate for it.
    Contention(Contention),
    /// A failure a retry usually fixes: a 5xx answer or a connection that
    /// could not be opened.
    Transient(Transient),
    /// No answer arrived after the request was sent: it may or may not have
    /// been applied.
    Ambiguous(Ambiguity),
    /// A condition expression did not hold (`ConditionalCheckFailedException`).
    /// Not retried; for idempotent writes the repository tells a real conflict
    /// from its own earlier attempt.
    Conflict,
    /// Retrying cannot help: validation, missing table, access denied, ...
    Permanent,
}

impl ErrorKind {
    /// Whether another attempt can succeed where this one failed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorKind::Throttling(_)
                | ErrorKind::Contention(_)
                | ErrorKind::Transient(_)
                | ErrorKind::Ambiguous(_)
        )
    }

    /// Whether the failed attempt may have changed the table anyway.
    ///
    /// True for ambiguous outcomes and for 5xx answers (DynamoDB documents that
    /// a request answered with a server error may have succeeded); false for
    /// throttling, which is decided before the request is executed, and for
    /// connections that never opened.
    pub fn may_have_applied(&self) -> bool {
        matches!(
            self,
            ErrorKind::Ambiguous(_) | ErrorKind::Transient(Transient::ServerError { .. })
        )
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::Throttling(_) => "throttling",
            ErrorKind::Contention(_) => "contention",
            ErrorKind::Transient(_) => "transient",
            ErrorKind::Ambiguous(Ambiguity::Timeout) => "timeout",
            ErrorKind::Ambiguous(_) => "ambiguous",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Permanent => "permanent",
        }
    }
}

/// The kinds of transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transient {
    /// DynamoDB answered with a 5xx status (`InternalServerError`,
    /// `ServiceUnavailable`, ...).
    ServerError {
        /// The HTTP status.
        status: u16,
    },
    /// The connection could not be opened; the request was never sent.
    ConnectFailed,
    /// DynamoDB rejected the signature (`InvalidSignatureException`,
    /// `SignatureDoesNotMatch`, `RequestTimeTooSkewed`, `AuthFailure`) and
    /// its `Date` shows the local clock off by more than 4 minutes. Nothing
    /// was applied; the SDK signs the next attempt with the measured skew
    /// (`aws-runtime`'s `service_clock_skew.rs`), so a retry can succeed.
    ClockSkew,
}

/// The kinds of contention for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Contention {
    /// `TransactionConflictException`: the item is part of another
    /// transaction.
    TransactionConflict,
    /// `TransactionCanceledException` whose every reason is
    /// `TransactionConflict`.
    CanceledByConflict,
    /// `TransactionInProgressException`: the same `ClientRequestToken` is
    /// still being processed (a retry overtook its first attempt).
    TransactionInProgress,
    /// `ReplicatedWriteConflictException`: a conflicting write to the item in
    /// another region of a multi-region strongly consistent table.
    ReplicatedWriteConflict,
}

impl Contention {
    /// The error code DynamoDB answered with.
    pub fn as_str(&self) -> &'static str {
        match self {
            Contention::TransactionConflict => "TransactionConflictException",
            Contention::CanceledByConflict => "TransactionCanceledException",
            Contention::TransactionInProgress => "TransactionInProgressException",
            Contention::ReplicatedWriteConflict => "ReplicatedWriteConflictException",
        }
    }
}

/// Why an outcome is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ambiguity {
    /// The attempt timed out after the request was sent.
    Timeout,
    /// The connection broke after the request was sent.
    ConnectionLost,
    /// A response arrived but could not be read.
    UnreadableResponse,
}

/// A throttling answer, with the reasons DynamoDB gave for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    code: ThrottleCode,
    reasons: Vec<ThrottlingReason>,
}

impl Throttle {
    /// A throttle with its error code and reasons.
    pub fn new(code: ThrottleCode, reasons: Vec<ThrottlingReason>) -> Throttle {
        Throttle { code, reasons }
    }

    /// The error code DynamoDB answered with.
    pub fn code(&self) -> ThrottleCode {
        self.code
    }

    /// The `ThrottlingReasons` DynamoDB sent (empty when it sent none).
    pub fn reasons(&self) -> &[ThrottlingReason] {
        &self.reasons
    }

    /// True when every reason is a per-partition-key limit
    /// (`KeyRangeThroughputExceeded`): one hot key, not a table-wide overload.
    pub fn is_hot_key(&self) -> bool {
        !self.reasons.is_empty() && self.reasons.iter().all(ThrottlingReason::is_key_range)
    }

    /// A short label for metrics: the first reason, else the error code.
    pub fn label(&self) -> &str {
        self.reasons
            .first()
            .map_or(self.code.as_str(), |r| r.reason.as_str())
    }
}

/// The error codes that mean "throttled".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThrottleCode {
    /// `ProvisionedThroughputExceededException`: a table or index is over its
    /// provisioned (or on-demand maximum) throughput.
    ProvisionedThroughputExceeded,
    /// `ThrottlingException`: control-plane or account rate.
    Throttling,
    /// `RequestLimitExceeded`: the account's on-demand request limit.
    RequestLimitExceeded,
    /// `LimitExceededException`: too many control-plane operations at once.
    LimitExceeded,
    /// A bare HTTP 429, or `TooManyRequestsException`.
    TooManyRequests,
    /// `TransactionCanceledException` whose every reason is throttling, or
    /// throttling and transaction conflicts.
    TransactionCanceled,
    /// Another code the AWS SDKs treat as throttling (`aws-runtime`'s
    /// `THROTTLING_ERRORS`: `ThrottledException`, `SlowDown`, ...).
    Other {
        /// The code as the service spelled it.
        code: &'static str,
    },
}

impl ThrottleCode {
    /// The error code as DynamoDB spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ThrottleCode::ProvisionedThroughputExceeded => "ProvisionedThroughputExceededException",
            ThrottleCode::Throttling => "ThrottlingException",
            ThrottleCode::RequestLimitExceeded => "RequestLimitExceeded",
            ThrottleCode::LimitExceeded => "LimitExceededException",
            ThrottleCode::TooManyRequests => "TooManyRequestsException",
            ThrottleCode::TransactionCanceled => "TransactionCanceledException",
            ThrottleCode::Other { code } => code,
        }
    }
}

impl fmt::Display for ThrottleCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of DynamoDB's `ThrottlingReasons`, such as
/// `TableWriteKeyRangeThroughputExceeded` on `arn:aws:dynamodb:...:table/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlingReason {
    /// `<Table|Index><Read|Write><Limit>`, e.g. `TableReadProvisionedThroughputExceeded`.
    pub reason: String,
    /// The ARN of the throttled table or index.
    pub resource: Option<String>,
}

impl ThrottlingReason {
    /// True for a per-partition-key limit (a hot key).
    pub fn is_key_range(&self) -> bool {
        self.reason.ends_with("KeyRangeThroughputExceeded")
    }

    /// True when reads were throttled, false for writes or an unknown reason.
    pub fn is_read(&self) -> bool {
        self.reason.starts_with("TableRead") || self.reason.starts_with("IndexRead")
    }
}
