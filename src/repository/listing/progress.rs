//! What a listing has spent and where it is, and what it has learned of its
//! table's item size: the numbers each call's `Limit` is sized from.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::repository::codec::Item;
use crate::repository::listing::fetch::Fetched;
use crate::repository::page::ReadBudget;

/// The bytes an item of a table weighed in its last listing (0: none yet).
#[derive(Debug, Default)]
pub(crate) struct LearnedSize(AtomicU64);

impl LearnedSize {
    pub(super) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(super) fn store(&self, bytes: f64) {
        self.0.store(bytes.to_bits(), Ordering::Relaxed);
    }
}

/// The bytes one read unit pays for.
pub(super) fn unit_bytes(strong: bool) -> f64 {
    if strong { 4096.0 } else { 8192.0 }
}

/// What a listing has spent so far, and where it is.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) start: Option<Item>,
    pub(super) units: f64,
    pub(super) scanned: u64,
    pub(super) count: u64,
    pub(super) calls: u32,
}

/// What a listing assumes an item weighs before it has read any of its
/// table's: DynamoDB's 4 KB read unit.
const ASSUMED_ITEM_BYTES: f64 = 4096.0;

impl Progress {
    pub(super) fn budget_left(&self, budget: &ReadBudget) -> bool {
        self.calls < budget.calls && self.units < f64::from(budget.units)
    }

    /// The `Limit` of the next call: what the page still needs, and no more
    /// items than the budget's units pay for, at the cost per item this
    /// listing has seen, else at the item size last seen on this table,
    /// else at 4 KB an item. A `Limit` is the one lever DynamoDB gives on
    /// what a call reads (it counts items read, before the filter).
    pub(super) fn limit(
        &self,
        budget: &ReadBudget,
        wanted: usize,
        learned_bytes: f64,
        strong: bool,
    ) -> i32 {
        let per_item = if self.scanned > 0 && self.units > 0.0 {
            self.units / self.scanned as f64
        } else {
            let bytes = if learned_bytes > 0.0 {
                learned_bytes
            } else {
                ASSUMED_ITEM_BYTES
            };
            bytes / unit_bytes(strong)
        };
        let affordable = ((f64::from(budget.units) - self.units) / per_item).floor();
        (wanted.max(1) as f64).min(affordable.max(1.0)) as i32
    }

    pub(super) fn add(&mut self, fetched: &Fetched) {
        self.units += fetched.units;
        self.scanned += fetched.scanned;
        self.count += fetched.count;
        self.calls += 1;
        self.start = fetched.last_key.clone();
    }
}
