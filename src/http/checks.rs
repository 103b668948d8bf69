//! Every limit one request is checked against, decided in one call to the
//! limiter: the per-address ceiling, the caller's default limits, the
//! policies of its route, the capacity reservations. Shadow checks are
//! decided and counted, never enforced.

use std::sync::Arc;

use http::StatusCode;
use http::request::Parts;

use crate::http::charge::CapacityCharge;
use crate::http::layer::RateLimitConfig;
use crate::http::policy::{Per, Policy};
use crate::limiter::{Check, DecidedBy, Decision, Decisions, Limits, RateLimiter};

/// Why a check is part of the request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role<'a> {
    /// The per-address ceiling across keys.
    Ceiling,
    /// The caller's default limits (a key's, or the anonymous ones).
    Default,
    /// A route policy.
    Policy(&'a Policy),
    /// A capacity reservation.
    Charge(&'a CapacityCharge),
}

/// One check of the request. It borrows the layer's configuration and the
/// request's subjects: planning allocates nothing but the list, since it runs
/// on every request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Planned<'a> {
    pub(crate) role: Role<'a>,
    pub(crate) limits: &'a Limits,
    pub(crate) subject: &'a str,
    pub(crate) cost: u64,
    pub(crate) shadow: bool,
}

/// The checks of one request, in the order they are decided.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    pub(crate) checks: Vec<Planned<'a>>,
}

/// Who the request is for, once known.
pub(crate) struct Subjects<'a> {
    pub(crate) caller: &'a str,
    pub(crate) address: &'a str,
}

impl<'a> Plan<'a> {
    pub(crate) fn add(
        &mut self,
        role: Role<'a>,
        limits: &'a Limits,
        subject: &'a str,
        cost: u64,
        shadow: bool,
    ) {
        self.checks.push(Planned {
            role,
            limits,
            subject,
            cost,
            shadow,
        });
    }

    /// The policies of the request's route and the capacity reservations.
    pub(crate) fn add_route_and_charges(
        &mut self,
        config: &'a RateLimitConfig,
        parts: &Parts,
        pattern: Option<&str>,
        who: &Subjects<'a>,
    ) {
        for policy in config.policies.iter().filter(|p| p.applies(parts, pattern)) {
            let subject = match policy.per {
                Per::Caller => who.caller,
                Per::Address => who.address,
            };
            let shadow = policy.shadow || config.shadow;
            self.add(
                Role::Policy(policy),
                &policy.limits,
                subject,
                policy.cost,
                shadow,
            );
        }
        for charge in &config.charges {
            let units = charge.reservation(parts);
            // Nothing reserved, nothing to check: a read is not refused for
            // its caller's write units (what it consumes anyway is still
            // settled after the response).
            if units == 0 {
                continue;
            }
            self.add(
                Role::Charge(charge),
                &charge.limits,
                who.caller,
                units,
                config.shadow,
            );
        }
    }

    /// Decides every check in one call, and counts each decision.
    fn as_checks(&self) -> Vec<Check<'a>> {
        self.checks
            .iter()
            .map(|c| {
                let check = Check::new(c.limits, c.subject, c.cost);
                if c.shadow { check.independent() } else { check }
            })
            .collect()
    }

    pub(crate) async fn decide(&self, limiter: &Arc<dyn RateLimiter>) -> Decisions {
        let checks = self.as_checks();
        let decisions = limiter.check_all(&checks).await;
        for (planned, decision) in self.checks.iter().zip(&decisions.each) {
            count(planned, decision);
        }
        decisions
    }

    /// The first enforced check that denied, with its decision.
    pub(crate) fn denial<'d>(
        &'d self,
        decisions: &'d Decisions,
    ) -> Option<(&'d Planned<'a>, &'d Decision)> {
        self.checks
            .iter()
            .zip(&decisions.each)
            .find(|(planned, decision)| !planned.shadow && !decision.allowed())
    }

    /// The units this request reserved from `charge` (0 when it reserved none).
    pub(crate) fn reserved_from(&self, charge: &CapacityCharge) -> u64 {
        self.checks
            .iter()
            .find(|c| matches!(c.role, Role::Charge(planned) if std::ptr::eq(planned, charge)))
            .map_or(0, |c| c.cost)
    }

    /// After the response: refunds the policies that do not charge this
    /// answer. (Capacity charges settle on their own, from what was consumed.)
    pub(crate) fn refund_uncharged(&self, limiter: &Arc<dyn RateLimiter>, status: StatusCode) {
        for planned in &self.checks {
            let Role::Policy(policy) = planned.role else {
                continue;
            };
            if planned.shadow || policy.charges(status) {
                continue;
            }
            let (limiter, limits) = (Arc::clone(limiter), Arc::clone(&policy.limits));
            let (subject, tokens) = (planned.subject.to_owned(), -(planned.cost as i64));
            tokio::spawn(async move { limiter.settle(&limits, &subject, tokens).await });
        }
    }
}

/// `dynagate_http_decisions_total{policy, decision}`: `allow`, `deny`, or
/// `would_deny` for a shadow check (and a log line naming the subject: a
/// key's id or an address, never a key).
fn count(planned: &Planned<'_>, decision: &Decision) {
    if decision.decided_by() == DecidedBy::NotAsked {
        return; // the deny cache refused the request before this was asked
    }
    let label = match (decision.allowed(), planned.shadow) {
        (true, _) => "allow",
        (false, false) => "deny",
        (false, true) => "would_deny",
    };
    if label == "would_deny" {
        tracing::info!(
            policy = planned.limits.namespace(),
            subject = %planned.subject,
            "shadow mode: this request would have been denied"
        );
    }
    let register = || {
        metrics::counter!(
            "dynagate_http_decisions_total",
            "policy" => planned.limits.namespace().to_owned(),
            "decision" => label,
        )
    };
    if label == "allow" {
        planned.limits.handles().http_allow.increment(register);
    } else {
        register().increment(1);
    }
}
