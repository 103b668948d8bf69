//! Every check of one request decided together: the model. `gcra_all.lua` is
//! the same function for Redis, and `tests/limiter_script.rs` checks that both
//! agree.
//!
//! A request may be checked against several subjects at once (the client's
//! address, its API key, the route), each with its own limits and cost. Each
//! [`Part`] is judged exactly as [`decide`](crate::limiter::gcra::decide)
//! judges it alone, so its verdict does not depend on the others. Then:
//!
//! - the request is admitted when every part that is not independent is
//!   allowed, and only then do those parts take their costs: all or nothing;
//! - an independent part (a limit in shadow mode) takes its cost whenever its
//!   own buckets hold it, whatever the others decided, and never keeps the
//!   request from being admitted;
//! - clamps of a backward clock step are written as `decide` writes them.
//!
//! Every bucket is read before any is written: two parts naming the same
//! bucket both judge the stored TAT, and the later part's write wins. Give
//! each part its own buckets.

use crate::limiter::decision::Verdict;
use crate::limiter::gcra::{Judged, judge};
use crate::limiter::quota::Quota;

/// One check of a request for [`decide_all`]: its quotas, the stored TATs of
/// their buckets (as for [`decide`](crate::limiter::gcra::decide)), updated in
/// place, its cost, and whether it is decided on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(unreachable_pub)] // public through `test_util` (feature test-util)
pub struct Part {
    /// The quotas, at least one.
    pub quotas: Vec<Quota>,
    /// One stored TAT per quota; `None` is a full bucket.
    pub tats: Vec<Option<u64>>,
    /// Tokens to take from every bucket of this part.
    pub cost: u64,
    /// Decided on its own: takes its cost when its buckets hold it, and never
    /// keeps the request from being admitted.
    pub independent: bool,
}

/// Decides every part of one request at time `now` (microseconds): one
/// verdict per part, in order, each the one [`decide`] would give that part
/// alone, and whether the request is admitted (every part that is not
/// independent allowed). Moves the TATs of the parts that took their cost
/// (see the module docs).
///
/// [`decide`]: crate::limiter::gcra::decide
///
/// # Panics
///
/// When a part has no quota, or a number of TATs other than its quotas'.
#[allow(unreachable_pub)] // public through `test_util` (feature test-util)
pub fn decide_all(now: u64, parts: &mut [Part]) -> (Vec<Verdict>, bool) {
    let judged: Vec<Judged> = parts
        .iter()
        .map(|part| judge(now, &part.quotas, &part.tats, part.cost))
        .collect();
    let admitted = parts
        .iter()
        .zip(&judged)
        .all(|(part, judged)| part.independent || judged.allowed());
    for (part, judged) in parts.iter_mut().zip(&judged) {
        judged.write(&mut part.tats, admitted || part.independent);
    }
    let verdicts: Vec<Verdict> = judged.into_iter().map(|j| j.verdict).collect();
    (verdicts, admitted)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::limiter::decision::Outcome;
    use crate::limiter::gcra::decide;

    const START: u64 = 1_780_000_000_000_000;

    /// `capacity` tokens, one a second.
    fn quota(capacity: u64) -> Quota {
        Quota::per_second(1).burst(capacity).unwrap()
    }

    fn part(capacities: &[u64], cost: u64, independent: bool) -> Part {
        Part {
            quotas: capacities.iter().map(|&c| quota(c)).collect(),
            tats: vec![None; capacities.len()],
            cost,
            independent,
        }
    }

    #[test]
    fn a_denial_of_one_part_leaves_every_other_bucket_untouched() {
        let mut parts = [
            part(&[10], 1, false),
            part(&[5, 20], 3, false),
            part(&[2], 3, false),
        ];
        let (verdicts, admitted) = decide_all(START, &mut parts);
        assert!(!admitted);
        assert_eq!(verdicts[2].outcome, Outcome::Never, "3 > a burst of 2");
        assert_eq!(verdicts[0].outcome, Outcome::Allowed, "it held its cost");
        assert_eq!(
            (verdicts[1].outcome, verdicts[1].remaining),
            (Outcome::Allowed, 2),
            "the remaining it would have had: 5 - 3"
        );
        assert!(
            parts.iter().all(|p| p.tats.iter().all(Option::is_none)),
            "nothing taken: {parts:?}"
        );
        parts[2].cost = 2;
        let (verdicts, admitted) = decide_all(START, &mut parts);
        assert!(admitted);
        assert_eq!(
            verdicts.iter().map(|v| v.remaining).collect::<Vec<_>>(),
            [9, 2, 0]
        );
        assert_eq!(
            parts[1].tats,
            [Some(START + 3_000_000); 2],
            "its own cost, 3"
        );
        assert_eq!(parts[2].tats, [Some(START + 2_000_000)], "its own cost, 2");
    }

    #[test]
    fn an_independent_part_takes_what_it_holds_and_never_decides_the_request() {
        let mut parts = [part(&[1], 1, false), part(&[3], 2, true)];
        let (verdicts, admitted) = decide_all(START, &mut parts);
        assert!(admitted);
        assert_eq!(verdicts[1].remaining, 1);
        let (verdicts, admitted) = decide_all(START, &mut parts);
        assert!(!admitted, "the first part is spent");
        assert!(matches!(verdicts[0].outcome, Outcome::Denied { .. }));
        assert_eq!(
            verdicts[1].outcome,
            Outcome::Denied {
                retry_after: Duration::from_secs(1)
            },
            "the shadow bucket holds 1 of 2"
        );
        assert_eq!(
            parts[1].tats,
            [Some(START + 2_000_000)],
            "a denial takes nothing"
        );
        let later = START + 1_000_000;
        let (verdicts, admitted) = decide_all(later, &mut parts);
        assert!(
            admitted,
            "the shadow part holds 2 of its 3 and is not asked to"
        );
        assert_eq!(verdicts[1].outcome, Outcome::Allowed);
        assert_eq!(parts[1].tats, [Some(later + 3_000_000)], "it took its 2");

        // Denied request, allowed shadow part: the shadow bucket really runs out.
        let mut parts = [part(&[1], 5, false), part(&[3], 1, true)];
        for _ in 0..3 {
            assert!(!decide_all(START, &mut parts).1, "5 > 1: never");
        }
        assert_eq!(
            parts[1].tats,
            [Some(START + 3_000_000)],
            "3 taken by 3 refused requests"
        );
        assert_eq!(parts[0].tats, [None]);
    }

    fn quotas() -> impl Strategy<Value = Vec<Quota>> {
        prop::collection::vec(
            (1u64..=20, 1u64..=10, 1u64..=3_000).prop_map(|(capacity, tokens, ms)| {
                Quota::per_period(tokens, Duration::from_millis(ms))
                    .burst(capacity)
                    .unwrap()
            }),
            1..=3,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Each verdict is the one `decide` gives the part alone; the request
        /// is admitted exactly when every dependent part is allowed; a
        /// dependent part's buckets move only when it is; an independent
        /// part's buckets move exactly as `decide` moves them alone.
        #[test]
        fn every_part_is_judged_alone_and_only_admissions_take(
            shapes in prop::collection::vec((quotas(), any::<bool>()), 1..=4),
            steps in prop::collection::vec(
                (0u64..2_000_000, prop::collection::vec(0u64..12, 4)), 1..40),
        ) {
            let mut parts: Vec<Part> = shapes
                .into_iter()
                .map(|(quotas, independent)| Part {
                    tats: vec![None; quotas.len()],
                    quotas,
                    cost: 0,
                    independent,
                })
                .collect();
            let mut now = START;
            for (dt, costs) in steps {
                now += dt;
                for (part, cost) in parts.iter_mut().zip(costs) {
                    part.cost = cost;
                }
                let alone: Vec<(Verdict, Vec<Option<u64>>)> = parts
                    .iter()
                    .map(|p| {
                        let mut tats = p.tats.clone();
                        (decide(now, &p.quotas, &mut tats, p.cost), tats)
                    })
                    .collect();
                let before = parts.clone();
                let (verdicts, admitted) = decide_all(now, &mut parts);
                let dependents_allowed = parts
                    .iter()
                    .zip(&verdicts)
                    .all(|(p, v)| p.independent || v.outcome == Outcome::Allowed);
                prop_assert_eq!(admitted, dependents_allowed);
                for ((part, verdict), ((alone_verdict, alone_tats), old)) in
                    parts.iter().zip(&verdicts).zip(alone.iter().zip(&before))
                {
                    prop_assert_eq!(verdict, alone_verdict);
                    if part.independent || admitted {
                        prop_assert_eq!(&part.tats, alone_tats);
                    } else {
                        // Not admitted: only a clamp may move a bucket, and
                        // time only moves forward here.
                        prop_assert_eq!(&part.tats, &old.tats);
                    }
                }
            }
        }
    }
}
