//! The tables the bench prints (and writes to its result file).

use crate::common::cpu::per_success;
use crate::common::results::{Results, say};
use crate::outcome::Outcome;

pub(crate) fn print_totals(results: &mut Results, outcomes: &[Outcome]) {
    say!(
        results,
        "| variant | goodput | successful writes/s | succeeded / offered | attempts / success | throttled \
         | give-ups | p50 success | p99 success | p50 all | p99 all | wall | client CPU / success \
         | DynamoDB Local CPU / success | give-up reasons |"
    );
    say!(
        results,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for o in outcomes {
        say!(
            results,
            "| {} | {:.1} % | {:.1} | {} / {} | {:.2} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} s | {} | {} | {} |",
            o.variant.name(),
            100.0 * o.goodput(),
            o.writes_per_second(),
            o.succeeded,
            o.offered,
            o.attempts_per_success(),
            o.throttled,
            o.give_ups(),
            o.percentile_ms(50.0),
            o.percentile_ms(99.0),
            o.outcome_percentile_ms(50.0),
            o.outcome_percentile_ms(99.0),
            o.wall_seconds,
            per_success(Some(o.client_ticks), o.succeeded),
            per_success(o.server_ticks, o.succeeded),
            o.give_ups
                .iter()
                .map(|(reason, n)| format!("{reason} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    for o in outcomes.iter().filter(|o| o.late_ms > 0) {
        say!(
            results,
            "(a worker of {} started {} ms after the common start)",
            o.variant.name(),
            o.late_ms
        );
    }
}

pub(crate) fn print_timeline(results: &mut Results, outcome: &Outcome) {
    say!(results);
    say!(results, "{}, per second:", outcome.variant.name());
    say!(results);
    say!(
        results,
        "| second | capacity (WCU/s) | offered | successful writes | throttled | gate rate (WCU/s) |"
    );
    say!(results, "|---:|---:|---:|---:|---:|---:|");
    for s in &outcome.timeline {
        let rate = s.gate_rate.map_or("-".to_owned(), |r| format!("{r:.1}"));
        say!(
            results,
            "| {} | {} | {} | {} | {} | {rate} |",
            s.second,
            s.capacity,
            s.offered,
            s.succeeded,
            s.throttled
        );
    }
}

pub(crate) fn print_ratios(results: &mut Results, ours: &Outcome, theirs: &Outcome) {
    let ratio = |a: f64, b: f64| match a / b {
        r if !r.is_finite() => "-".to_owned(),
        r if r > 0.0 && r < 0.01 => format!("{r:.4}x"),
        r => format!("{r:.2}x"),
    };
    say!(
        results,
        "{} vs {}: {} goodput, {} attempts per success, {} throttled, {} give-ups, {} p99 success, \
         {} p99 all, {} client CPU per success",
        ours.variant.name(),
        theirs.variant.name(),
        ratio(ours.goodput(), theirs.goodput()),
        ratio(ours.attempts_per_success(), theirs.attempts_per_success()),
        ratio(ours.throttled as f64, theirs.throttled as f64),
        ratio(ours.give_ups() as f64, theirs.give_ups() as f64),
        ratio(ours.percentile_ms(99.0), theirs.percentile_ms(99.0)),
        ratio(
            ours.outcome_percentile_ms(99.0),
            theirs.outcome_percentile_ms(99.0)
        ),
        ratio(
            ours.client_cpu_per_success(),
            theirs.client_cpu_per_success()
        ),
    );
}
