//! The retry budget: a token bucket shared by all calls of one client.
//!
//! Retries are only worth making while most calls succeed. When DynamoDB or
//! the network is down for good, every caller retrying up to its maximum
//! multiplies the load on a system that is already failing (a retry storm).
//! The budget caps retries across the client: each retry withdraws tokens and
//! each success deposits a token, so in steady state retries stay a fraction of
//! successes, as in Marc Brooker's "retry budget". Costs follow what a retry
//! does to a struggling service: a timeout (10) held a connection for the whole
//! timeout, a 5xx or a failed connect (5) hits a service that is failing.
//!
//! Throttles cost nothing by default. A throttle is DynamoDB's flow control,
//! not a failure: the table is serving its provisioned rate, the refusal is
//! decided before any work and consumes no capacity, and under overload the
//! throttles per success grow with the number of waiting callers, not with any
//! fault. Charging them drains the budget exactly when patient retrying works:
//! with `benches/throttled_writes.rs` (writes at twice a table's capacity),
//! charging throttles gave up many writes on an empty budget that free
//! throttles completed inside the same deadlines. Throttle retries stay
//! bounded by the backoff, the maximum attempts and the deadline; set
//! [`RetryCosts::throttling`] above zero to budget them as well.
//!
//! Unlike the AWS SDKs' retry quota, which refills only on success, the bucket
//! also refills with time. A batch worker whose every call is throttled for a
//! minute makes no successes, so a success-only bucket would stay empty and
//! the worker would never retry again; with a time refill it retries at a slow,
//! bounded rate until capacity returns.

use std::sync::Mutex;

use tokio::time::Instant;

use crate::error::ConfigError;
use crate::retry::ErrorKind;

/// Tokens withdrawn per retry, by kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryCosts {
    /// Cost of retrying after throttling or contention for an item (default
    /// 0: see the module docs).
    pub throttling: u32,
    /// Cost of retrying after a 5xx or a failed connect (default 5).
    pub transient: u32,
    /// Cost of retrying after a timeout or a lost connection (default 10).
    pub ambiguous: u32,
}

impl Default for RetryCosts {
    fn default() -> Self {
        RetryCosts {
            throttling: 0,
            transient: 5,
            ambiguous: 10,
        }
    }
}

impl RetryCosts {
    /// The cost of retrying after a failure of this kind.
    pub fn for_kind(&self, kind: &ErrorKind) -> u32 {
        match kind {
            // Contention is the item's flow control, as throttling is the
            // table's: a sign of load, not of a failing service.
            ErrorKind::Throttling(_) | ErrorKind::Contention(_) => self.throttling,
            ErrorKind::Ambiguous(_) => self.ambiguous,
            _ => self.transient,
        }
    }
}

/// A token bucket that retries draw from; see the module docs.
#[derive(Debug)]
pub struct RetryBudget {
    capacity: f64,
    costs: RetryCosts,
    per_success: f64,
    per_second: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled_at: Instant,
}

impl Default for RetryBudget {
    /// 500 tokens (100 retries after server errors in a row), one token back
    /// per success, 10 tokens per second (two server-error retries a second
    /// once empty); throttles free.
    fn default() -> Self {
        RetryBudget::builder().build().expect("valid defaults")
    }
}

impl RetryBudget {
    /// A builder starting from [`RetryBudget::default`]'s settings, each
    /// named: `RetryBudget::builder().capacity(500).per_success(1).per_second(10).build()?`.
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder {
            capacity: 500,
            costs: RetryCosts::default(),
            per_success: 1,
            per_second: 10,
        }
    }

    /// A budget that never runs out: every retry is allowed (up to the policy's
    /// maximum attempts and deadline).
    pub fn unlimited() -> RetryBudget {
        RetryBudget {
            capacity: f64::INFINITY,
            costs: RetryCosts::default(),
            per_success: 0.0,
            per_second: 0.0,
            state: Mutex::new(State {
                tokens: f64::INFINITY,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Takes the cost of one retry after a failure of `kind`; false, and nothing
    /// taken, when the budget cannot pay for it.
    pub fn try_withdraw(&self, kind: &ErrorKind) -> bool {
        let cost = f64::from(self.costs.for_kind(kind));
        let mut state = self.refilled();
        if state.tokens >= cost {
            state.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Records a successful call.
    pub fn deposit_success(&self) {
        let mut state = self.refilled();
        state.tokens = (state.tokens + self.per_success).min(self.capacity);
    }

    /// The tokens available now.
    pub fn level(&self) -> f64 {
        self.refilled().tokens
    }

    /// The state, refilled for the time passed since the last look.
    fn refilled(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the numbers inconsistent.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now
            .saturating_duration_since(state.refilled_at)
            .as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.capacity);
        state.refilled_at = now;
        state
    }
}

/// Builds a [`RetryBudget`].
#[derive(Debug, Clone)]
pub struct RetryBudgetBuilder {
    capacity: u32,
    costs: RetryCosts,
    per_success: u32,
    per_second: u32,
}

impl RetryBudgetBuilder {
    /// Tokens of a full budget (default 500). Must be at least the largest
    /// retry cost, so that a full budget allows one retry of every kind.
    pub fn capacity(mut self, tokens: u32) -> Self {
        self.capacity = tokens;
        self
    }

    /// Tokens each kind of retry costs (default [`RetryCosts::default`]).
    pub fn costs(mut self, costs: RetryCosts) -> Self {
        self.costs = costs;
        self
    }

    /// Tokens regained per successful call (default 1).
    pub fn per_success(mut self, tokens: u32) -> Self {
        self.per_success = tokens;
        self
    }

    /// Tokens regained per second (default 10).
    pub fn per_second(mut self, tokens: u32) -> Self {
        self.per_second = tokens;
        self
    }

    /// Checks the settings and builds a full budget.
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        let RetryBudgetBuilder {
            capacity,
            costs,
            per_success,
            per_second,
        } = self;
        let largest = costs.throttling.max(costs.transient).max(costs.ambiguous);
        if capacity < largest {
            return Err(ConfigError::invalid(
                "capacity",
                format!("{capacity} tokens cannot pay for one retry costing {largest}"),
            ));
        }
        Ok(RetryBudget {
            capacity: f64::from(capacity),
            costs,
            per_success: f64::from(per_success),
            per_second: f64::from(per_second),
            state: Mutex::new(State {
                tokens: f64::from(capacity),
                refilled_at: Instant::now(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::{Ambiguity, Throttle, ThrottleCode, Transient};
    use std::time::Duration;

    /// Throttles at 5 tokens, so the arithmetic below is easy to follow.
    fn costs() -> RetryCosts {
        RetryCosts {
            throttling: 5,
            ..RetryCosts::default()
        }
    }

    fn throttle() -> ErrorKind {
        ErrorKind::Throttling(Throttle::new(ThrottleCode::Throttling, vec![]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_sustained_outage_empties_the_budget_and_stops_retries() {
        let budget = RetryBudget::builder()
            .capacity(50)
            .costs(costs())
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap();
        let mut allowed = 0;
        while budget.try_withdraw(&throttle()) {
            allowed += 1;
            assert!(
                allowed <= 10,
                "50 tokens pay for exactly 10 throttle retries"
            );
        }
        assert_eq!(allowed, 10);
        assert!(!budget.try_withdraw(&throttle()));
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_cost_more_than_throttles() {
        let budget = RetryBudget::builder()
            .capacity(20)
            .costs(costs())
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap();
        assert!(budget.try_withdraw(&ErrorKind::Ambiguous(Ambiguity::Timeout)));
        assert_eq!(budget.level(), 10.0);
        assert!(budget.try_withdraw(&ErrorKind::Transient(Transient::ConnectFailed)));
        assert_eq!(budget.level(), 5.0);
        assert!(!budget.try_withdraw(&ErrorKind::Ambiguous(Ambiguity::ConnectionLost)));
        assert_eq!(budget.level(), 5.0, "a refused withdrawal takes nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn successes_refill_up_to_capacity() {
        let budget = RetryBudget::builder()
            .capacity(10)
            .costs(costs())
            .per_success(2)
            .per_second(0)
            .build()
            .unwrap();
        assert!(budget.try_withdraw(&throttle()));
        assert!(budget.try_withdraw(&throttle()));
        assert_eq!(budget.level(), 0.0);
        budget.deposit_success();
        budget.deposit_success();
        assert_eq!(budget.level(), 4.0);
        for _ in 0..100 {
            budget.deposit_success();
        }
        assert_eq!(budget.level(), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn time_refills_an_empty_budget_so_no_worker_starves_forever() {
        let budget = RetryBudget::builder()
            .capacity(10)
            .costs(costs())
            .per_success(1)
            .per_second(2)
            .build()
            .unwrap();
        assert!(budget.try_withdraw(&throttle()));
        assert!(budget.try_withdraw(&throttle()));
        assert!(!budget.try_withdraw(&throttle()));
        tokio::time::advance(Duration::from_millis(2600)).await;
        assert!(
            budget.try_withdraw(&throttle()),
            "2.6 s at 2 tokens/s pay for one retry"
        );
        assert!(!budget.try_withdraw(&throttle()));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(budget.level(), 10.0, "the refill stops at capacity");
    }

    #[test]
    fn a_budget_too_small_for_one_retry_is_rejected() {
        let err = RetryBudget::builder()
            .capacity(9)
            .costs(costs())
            .per_success(1)
            .per_second(1)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("capacity"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unlimited_budget_always_pays() {
        let budget = RetryBudget::unlimited();
        for _ in 0..10_000 {
            assert!(budget.try_withdraw(&ErrorKind::Ambiguous(Ambiguity::Timeout)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn by_default_throttles_are_free_and_server_errors_are_not() {
        let budget = RetryBudget::builder()
            .capacity(20)
            .per_success(1)
            .per_second(0)
            .build()
            .unwrap();
        for _ in 0..10_000 {
            assert!(budget.try_withdraw(&throttle()));
        }
        assert_eq!(budget.level(), 20.0);
        let error = ErrorKind::Transient(Transient::ServerError { status: 500 });
        let retries = (0..100).take_while(|_| budget.try_withdraw(&error)).count();
        assert_eq!(retries, 4);
        assert!(
            budget.try_withdraw(&throttle()),
            "an empty budget still lets throttles back off and retry"
        );
    }
}
