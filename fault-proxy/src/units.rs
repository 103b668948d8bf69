//! Capacity units as DynamoDB charges them.
//!
//! Writes cost 1 WCU per started 1 KB of item size (at least 1); transactional
//! writes cost twice that. Reads cost 1 RCU per started 4 KB when strongly
//! consistent, half that when eventually consistent (at least 0.5), and twice
//! the strong cost in a transaction. Costs are counted in half units so the
//! eventually consistent half is exact.

use std::ops::{Add, AddAssign};

/// An amount of capacity in half units (`HalfUnits::new(3)` is 1.5 units).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HalfUnits(u64);

impl HalfUnits {
    pub(crate) const fn new(halves: u64) -> HalfUnits {
        HalfUnits(halves)
    }

    pub(crate) const fn from_units(units: u64) -> HalfUnits {
        HalfUnits(units * 2)
    }

    /// The amount in units, for reporting.
    pub(crate) fn as_units(self) -> f64 {
        self.0 as f64 / 2.0
    }

    /// The amount in micro-units, the capacity model's resolution.
    pub(crate) fn micros(self) -> i64 {
        i64::try_from(self.0)
            .unwrap_or(i64::MAX / 500_000)
            .saturating_mul(500_000)
    }
}

impl Add for HalfUnits {
    type Output = HalfUnits;
    fn add(self, other: HalfUnits) -> HalfUnits {
        HalfUnits(self.0 + other.0)
    }
}

impl AddAssign for HalfUnits {
    fn add_assign(&mut self, other: HalfUnits) {
        self.0 += other.0;
    }
}

impl std::iter::Sum for HalfUnits {
    fn sum<I: Iterator<Item = HalfUnits>>(iter: I) -> HalfUnits {
        iter.fold(HalfUnits::default(), Add::add)
    }
}

/// How a read is served, which sets its price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consistency {
    Eventual,
    Strong,
    Transactional,
}

/// WCUs for writing an item of `size` bytes, `transactional` doubling it.
pub(crate) fn write_cost(size: u64, transactional: bool) -> HalfUnits {
    let units = size.div_ceil(1024).max(1);
    HalfUnits::from_units(if transactional { units * 2 } else { units })
}

/// RCUs for reading `size` bytes at `consistency`.
pub(crate) fn read_cost(size: u64, consistency: Consistency) -> HalfUnits {
    let blocks = size.div_ceil(4096).max(1);
    match consistency {
        Consistency::Eventual => HalfUnits::new(blocks),
        Consistency::Strong => HalfUnits::from_units(blocks),
        Consistency::Transactional => HalfUnits::from_units(blocks * 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_round_up_to_whole_kilobytes_with_a_minimum_of_one() {
        assert_eq!(write_cost(0, false).as_units(), 1.0);
        assert_eq!(write_cost(500, false).as_units(), 1.0);
        assert_eq!(write_cost(1024, false).as_units(), 1.0);
        assert_eq!(write_cost(1025, false).as_units(), 2.0);
        // Developer Guide: a 3.5 KB item costs 4 WCU.
        assert_eq!(write_cost(3584, false).as_units(), 4.0);
    }

    #[test]
    fn transactional_writes_cost_double() {
        assert_eq!(write_cost(500, true).as_units(), 2.0);
        assert_eq!(write_cost(3584, true).as_units(), 8.0);
    }

    #[test]
    fn reads_round_up_to_4_kb_and_eventual_consistency_halves_them() {
        assert_eq!(read_cost(0, Consistency::Strong).as_units(), 1.0);
        assert_eq!(read_cost(4096, Consistency::Strong).as_units(), 1.0);
        assert_eq!(read_cost(4097, Consistency::Strong).as_units(), 2.0);
        assert_eq!(read_cost(0, Consistency::Eventual).as_units(), 0.5);
        assert_eq!(read_cost(4097, Consistency::Eventual).as_units(), 1.0);
        // Developer Guide: a 7 KB item read strongly costs 2 RCU, eventually 1.
        assert_eq!(read_cost(7 * 1024, Consistency::Strong).as_units(), 2.0);
        assert_eq!(read_cost(7 * 1024, Consistency::Eventual).as_units(), 1.0);
        // Odd block counts keep their half unit.
        assert_eq!(read_cost(9000, Consistency::Eventual).as_units(), 1.5);
    }

    #[test]
    fn transactional_reads_cost_double_the_strong_price() {
        assert_eq!(read_cost(100, Consistency::Transactional).as_units(), 2.0);
        assert_eq!(read_cost(4097, Consistency::Transactional).as_units(), 4.0);
    }

    #[test]
    fn half_units_convert_to_micro_units() {
        assert_eq!(HalfUnits::new(1).micros(), 500_000);
        assert_eq!(HalfUnits::from_units(3).micros(), 3_000_000);
    }
}
