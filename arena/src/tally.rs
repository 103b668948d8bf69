//! Counting what happened: the legitimate population's outcomes, latencies
//! and per-second series, and each attack's answers by status.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::outcome::{Outcome, status_label};

/// The `p`-th percentile (0 to 100) of `sorted`, nearest-rank: the smallest
/// value with at least `p`% of the values at or below it. `None` when empty.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One second of legitimate traffic: requests that ended in it, and how
/// many of them succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Second {
    pub requests: u64,
    pub successes: u64,
}

/// The legitimate population's record.
#[derive(Debug, Default)]
pub struct LegitTally {
    /// Time to outcome of every request, in microseconds, failures included.
    latencies_us: Vec<u32>,
    by_status: BTreeMap<String, u64>,
    by_outcome: BTreeMap<&'static str, u64>,
    /// Failures by why (`503 unavailable: ...`), to tell their causes apart.
    by_why: BTreeMap<String, u64>,
    /// Indexed by the second (from the start of the phase) the request ended in.
    seconds: Vec<Second>,
}

impl LegitTally {
    /// One request that ended `ended` after the start, taking `took`.
    pub fn record(
        &mut self,
        ended: Duration,
        took: Duration,
        status: Option<u16>,
        why: Option<&str>,
        outcome: Outcome,
    ) {
        if let Some(why) = why.filter(|_| !outcome.is_success()) {
            *self.by_why.entry(why.to_owned()).or_default() += 1;
        }
        self.latencies_us
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        *self.by_status.entry(status_label(status)).or_default() += 1;
        *self.by_outcome.entry(outcome_label(outcome)).or_default() += 1;
        let second = ended.as_secs() as usize;
        if self.seconds.len() <= second {
            self.seconds.resize(second + 1, Second::default());
        }
        self.seconds[second].requests += 1;
        self.seconds[second].successes += u64::from(outcome.is_success());
    }

    /// Requests recorded.
    pub fn requests(&self) -> u64 {
        self.latencies_us.len() as u64
    }

    /// Requests that succeeded (2xx or deserved 4xx).
    pub fn successes(&self) -> u64 {
        self.by_outcome.get("success").copied().unwrap_or(0)
            + self.by_outcome.get("deserved").copied().unwrap_or(0)
    }

    /// The per-second series.
    pub fn seconds(&self) -> &[Second] {
        &self.seconds
    }

    /// The summary as JSON: counts, success rate, p50/p99 in ms, the series.
    pub fn to_json(&self) -> Value {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let ms = |p| percentile(&sorted, p).map(|us| f64::from(us) / 1000.0);
        let requests = self.requests();
        json!({
            "requests": requests,
            "successes": self.successes(),
            "success_rate": (requests > 0).then(|| self.successes() as f64 / requests as f64),
            "p50_ms": ms(50.0),
            "p99_ms": ms(99.0),
            "by_status": self.by_status,
            "by_outcome": self.by_outcome,
            "failures_by_why": self.by_why,
            "per_second": self.seconds().iter()
                .map(|s| json!({"requests": s.requests, "successes": s.successes}))
                .collect::<Vec<_>>(),
        })
    }
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Deserved => "deserved",
        Outcome::Refused => "refused",
        Outcome::ServerError => "server_error",
        Outcome::NoAnswer => "no_answer",
    }
}

/// One attack's record: answers by status, and the sends it skipped because
/// too many of its requests were still waiting for an answer.
#[derive(Debug, Default)]
pub struct AttackTally {
    pub by_status: BTreeMap<String, u64>,
    /// Server errors by why.
    pub server_errors_by_why: BTreeMap<String, u64>,
    pub skipped: u64,
}

impl AttackTally {
    /// One answer.
    pub fn record(&mut self, status: Option<u16>, why: Option<&str>) {
        *self.by_status.entry(status_label(status)).or_default() += 1;
        if let Some(why) = why.filter(|_| status.is_some_and(|s| s >= 500)) {
            *self.server_errors_by_why.entry(why.to_owned()).or_default() += 1;
        }
    }

    /// Requests that got an answer or none.
    pub fn sent(&self) -> u64 {
        self.by_status.values().sum()
    }

    /// Answers with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        server_errors(&self.by_status)
    }

    /// The record as JSON.
    pub fn to_json(&self) -> Value {
        json!({"sent": self.sent(), "skipped": self.skipped, "by_status": self.by_status,
               "server_errors": self.server_errors(),
               "server_errors_by_why": self.server_errors_by_why})
    }
}

/// The 5xx answers among counts by status label.
pub fn server_errors(by_status: &BTreeMap<String, u64>) -> u64 {
    by_status
        .iter()
        .filter(|(status, _)| status.starts_with('5') && status.len() == 3)
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn failures_count_in_the_rate_and_in_the_latencies() {
        let mut tally = LegitTally::default();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        tally.record(ms(100), ms(5), Some(200), None, Outcome::Success);
        tally.record(
            ms(900),
            ms(7),
            Some(404),
            Some("404 not_found"),
            Outcome::Deserved,
        );
        tally.record(s(2), ms(3000), None, None, Outcome::NoAnswer);
        tally.record(
            s(2),
            ms(1),
            Some(429),
            Some("429 rate_limited"),
            Outcome::Refused,
        );
        assert_eq!(tally.requests(), 4);
        assert_eq!(tally.successes(), 2);
        assert_eq!(
            tally.seconds(),
            &[
                Second {
                    requests: 2,
                    successes: 2
                },
                Second::default(),
                Second {
                    requests: 2,
                    successes: 0
                },
            ]
        );
        let json = tally.to_json();
        assert_eq!(json["success_rate"], 0.5);
        assert_eq!(json["p99_ms"], 3000.0, "the timeout is in the tail");
        assert_eq!(json["by_status"]["none"], 1);
        assert_eq!(
            json["failures_by_why"],
            json!({"429 rate_limited": 1}),
            "deserved is no failure"
        );
    }

    #[test]
    fn attack_tallies_count_server_errors() {
        let mut tally = AttackTally::default();
        for status in [Some(503), Some(500), Some(401), None, Some(201)] {
            tally.record(status, Some("why"));
        }
        assert_eq!(tally.server_errors_by_why["why"], 2);
        assert_eq!(tally.sent(), 5);
        assert_eq!(tally.server_errors(), 2);
    }
}
