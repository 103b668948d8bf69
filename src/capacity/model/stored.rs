//! A bucket's hash as the script leaves it, and its expiry.

/// The fields only a cut writes, all three together: absent until the
/// bucket's first cut (and the script reads that as "does not exist").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    /// `rate`, as stored: 14 significant digits.
    pub rate: f64,
    /// `at`: the clock (µs) at the cut.
    pub at: f64,
    /// `epoch`: how many cuts.
    pub epoch: i64,
}

/// The fields of a spell of waits above the target, both together, table
/// bucket only: absent until a wait is above the target, deleted when a
/// spell ends before it stood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spell {
    /// `above`: when the spell began (µs), CoDel's `first_above_time`.
    pub above: f64,
    /// `last`: the last time a wait was above the target (µs).
    pub last: f64,
}

/// One bucket's hash as the script leaves it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hash {
    /// `tat`, as stored: a whole number of µs.
    pub tat: f64,
    /// `rate`, `at` and `epoch`.
    pub cut: Option<Cut>,
    /// `above` and `last`.
    pub spell: Option<Spell>,
    /// `large`, table bucket only: the `tat` (whole µs) right after the last
    /// large call (or small call judged by `small`) was admitted; never
    /// deleted, meaningless an interval after it has passed (and so is
    /// `small`).
    pub large: Option<f64>,
    /// `small`, table bucket only: while large calls count, the `tat`
    /// (whole µs) of the small calls admitted meanwhile, as if they had the
    /// bucket to themselves.
    pub small: Option<f64>,
    /// The TTL (ms) the last write gave the key.
    pub ttl_ms: u64,
    /// The clock (ms) at the last write.
    pub written_ms: u64,
}

/// Drops `hash` when its TTL has run out at `now` (µs); true when it did.
pub fn expire(hash: &mut Option<Hash>, now: u64) -> bool {
    let gone = hash.is_some_and(|h| now / 1000 > h.written_ms + h.ttl_ms);
    if gone {
        *hash = None;
    }
    gone
}
