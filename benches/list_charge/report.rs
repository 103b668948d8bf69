//! The variants side by side, and the goals met or not.

use std::collections::BTreeMap;

use crate::bench::{Bench, Variant};
use crate::common::results::{Results, say};
use crate::load::Answer;
use crate::run::Outcome;

/// Issue 15's goal for the getter.
const GETTER_GOAL: f64 = 0.99;

fn kinds(counts: &BTreeMap<Answer, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(answer, n)| format!("{}: {n}", answer.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// The most the lister may consume per second under the charge-on quota:
/// R, plus its burst spread over the window.
fn lister_bound(bench: &Bench, outcome: &Outcome) -> f64 {
    bench.read_units as f64 + bench.read_burst as f64 / outcome.window.as_secs_f64()
}

pub(crate) fn print(results: &mut Results, bench: &Bench, outcomes: &[Outcome]) {
    let header: Vec<&str> = outcomes.iter().map(|o| o.variant.name()).collect();
    say!(results, "| | {} |", header.join(" | "));
    say!(results, "|---|{}", "---:|".repeat(outcomes.len()));
    let mut row = |label: &str, cell: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = outcomes.iter().map(cell).collect();
        say!(results, "| {label} | {} |", cells.join(" | "));
    };
    row("read-unit quota per key (per second, burst)", &|o| {
        let (rate, burst) = o.quota;
        if o.variant == Variant::ChargeOff {
            format!("{rate}, {burst} (never binds)")
        } else {
            format!("{rate}, {burst}")
        }
    });
    row("measured window (s)", &|o| {
        format!("{:.1}", o.window.as_secs_f64())
    });
    row("**lister** read units consumed /s (proxy, Scan)", &|o| {
        format!("{:.1}", o.per_second(o.scans.read_units))
    });
    row(
        &format!(
            "goal: lister at most R + burst / window (R = {}, burst = {})",
            bench.read_units, bench.read_burst
        ),
        &|o| {
            let bound = lister_bound(bench, o);
            let met = o.per_second(o.scans.read_units) <= bound;
            let note = if o.variant == Variant::ChargeOff {
                " (comparison)"
            } else {
                ""
            };
            format!("{} (≤ {bound:.1}){note}", verdict(met))
        },
    );
    row("lister pages /s (200)", &|o| {
        format!("{:.2}", o.per_second(o.listed.pages as f64))
    });
    row("lister pages that stopped at their read budget", &|o| {
        o.listed.budget_pages.to_string()
    });
    row("lister users listed /s", &|o| {
        format!("{:.0}", o.per_second(o.listed.users as f64))
    });
    row("lister walks to the last page", &|o| {
        o.listed.passes.to_string()
    });
    row("lister requests /s", &|o| {
        format!("{:.0}", o.per_second(o.listed.requests() as f64))
    });
    row("lister answers other than 200", &|o| {
        kinds(&o.listed.refused)
    });
    row("**getter** GETs sent", &|o| o.got.sent.to_string());
    row("getter success rate (2xx)", &|o| {
        format!("{:.2} %", o.got.success_rate() * 100.0)
    });
    row("goal: getter at least 99 %", &|o| {
        verdict(o.got.success_rate() >= GETTER_GOAL).to_owned()
    });
    row("getter answers other than 2xx", &|o| kinds(&o.got.failed));
    row("getter read units consumed /s (proxy, GetItem)", &|o| {
        format!("{:.1}", o.per_second(o.gets.read_units))
    });
    row(
        &format!(
            "**table** read units consumed /s (capacity {})",
            bench.capacity
        ),
        &|o| format!("{:.1}", o.per_second(o.table.read_units)),
    );
    row("throttled at the proxy: Scan / GetItem", &|o| {
        format!(
            "{} / {}",
            o.scans.throttled_total(),
            o.gets.throttled_total()
        )
    });
    row("requests answered /s (both callers)", &|o| {
        format!("{:.0}", o.per_second(o.requests() as f64))
    });
    row("process CPU, cores busy", &|o| {
        format!("{:.2}", o.per_second(o.cpu.as_secs_f64()))
    });
    row("process CPU per request (ms)", &|o| {
        format!(
            "{:.2}",
            o.cpu.as_secs_f64() * 1000.0 / o.requests().max(1) as f64
        )
    });
}
