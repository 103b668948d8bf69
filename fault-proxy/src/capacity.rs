//! The capacity model: token buckets per table (and per partition key value)
//! that refill at the provisioned rate and bank unused capacity.
//!
//! Time is a parameter (`now`), so the model is a pure function of the
//! instants it is shown; the server passes `tokio::time::Instant::now()`,
//! which tests can pause. Amounts are integers in micro-units so that refills
//! and half-unit reads never drift through floating point.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::inject::ThrottleReason;
use crate::rules::{Capacity, HotKey};
use crate::units::HalfUnits;

/// Whether a charge is for reading or writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// One table's charge: its cost, and the partition key value it falls on when
/// the table has a hot-key limit.
#[derive(Clone, Debug)]
pub(crate) struct Charge<'a> {
    pub(crate) table: &'a str,
    pub(crate) capacity: Option<&'a Capacity>,
    pub(crate) hot_key: Option<&'a HotKey>,
    pub(crate) key_value: Option<String>,
    pub(crate) cost: HalfUnits,
}

#[derive(Debug)]
struct TableState {
    capacity: Option<Capacity>,
    read: Option<Bucket>,
    write: Option<Bucket>,
    hot_key: Option<HotKey>,
    hot: HashMap<(Direction, String), Bucket>,
}

/// Every table's buckets. Rules may change at run time: a table's buckets are
/// reconfigured lazily, keeping their bank, the next time the table is used.
#[derive(Debug, Default)]
pub(crate) struct CapacityModel {
    tables: HashMap<String, TableState>,
}

/// Beyond this many tracked keys per table, keys whose bucket is full again
/// (so forgetting them changes nothing) are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

impl CapacityModel {
    fn table(&mut self, now: Instant, charge: &Charge<'_>) -> &mut TableState {
        let state = self
            .tables
            .entry(charge.table.to_owned())
            .or_insert_with(|| TableState {
                capacity: None,
                read: None,
                write: None,
                hot_key: None,
                hot: HashMap::new(),
            });
        if state.capacity.as_ref() != charge.capacity {
            let new = charge.capacity.cloned();
            let spec = new.as_ref();
            let initial = |c: &Capacity, d| match d {
                Direction::Read => c.initial_read_units,
                Direction::Write => c.initial_write_units,
            };
            for (bucket, direction) in [
                (&mut state.read, Direction::Read),
                (&mut state.write, Direction::Write),
            ] {
                let rate = spec.and_then(|c| match direction {
                    Direction::Read => c.read_units_per_second,
                    Direction::Write => c.write_units_per_second,
                });
                *bucket = match (bucket.take(), rate, spec) {
                    (Some(mut b), Some(rate), Some(c)) => {
                        b.reconfigure(now, rate, c.burst_seconds);
                        Some(b)
                    }
                    (None, Some(rate), Some(c)) => Some(Bucket::new(
                        rate,
                        c.burst_seconds,
                        initial(c, direction),
                        now,
                    )),
                    _ => None,
                };
            }
            state.capacity = new;
        }
        if state.hot_key.as_ref() != charge.hot_key {
            state.hot_key = charge.hot_key.cloned();
            state.hot.clear();
        }
        state
    }

    /// Takes every write charge, or none: a charge fails when its table's
    /// bank cannot pay, or its key's per-second limit is used up.
    pub(crate) fn try_write(
        &mut self,
        now: Instant,
        charges: &[Charge<'_>],
    ) -> Result<(), (String, ThrottleReason)> {
        // Several charges (a transaction) may fall on one table or key: sum them.
        let mut table_totals: HashMap<&str, HalfUnits> = HashMap::new();
        let mut key_totals: HashMap<(&str, &str), HalfUnits> = HashMap::new();
        for charge in charges {
            *table_totals.entry(charge.table).or_default() += charge.cost;
            if let Some(key) = &charge.key_value {
                *key_totals.entry((charge.table, key.as_str())).or_default() += charge.cost;
            }
        }
        for charge in charges {
            let state = self.table(now, charge);
            if let Some(bucket) = &mut state.write
                && !bucket.can_pay(now, table_totals[charge.table])
            {
                return Err((
                    charge.table.to_owned(),
                    ThrottleReason::TableWriteProvisionedThroughputExceeded,
                ));
            }
            if let (Some(key), Some(hot)) = (&charge.key_value, state.hot_key.clone()) {
                let bucket = hot_bucket(state, &hot, Direction::Write, key, now);
                if !bucket.can_pay(now, key_totals[&(charge.table, key.as_str())]) {
                    return Err((
                        charge.table.to_owned(),
                        ThrottleReason::TableWriteKeyRangeThroughputExceeded,
                    ));
                }
            }
        }
        for charge in charges {
            let state = self.table(now, charge);
            if let Some(bucket) = &mut state.write {
                bucket.charge(now, charge.cost);
            }
            if let (Some(key), Some(hot)) = (&charge.key_value, state.hot_key.clone()) {
                hot_bucket(state, &hot, Direction::Write, key, now).charge(now, charge.cost);
            }
        }
        Ok(())
    }

    /// Whether a read of `charge.table` (and key) is admitted: reads are
    /// refused while the bank is in debt. `charge.cost` is ignored.
    pub(crate) fn admit_read(
        &mut self,
        now: Instant,
        charge: &Charge<'_>,
    ) -> Result<(), ThrottleReason> {
        let state = self.table(now, charge);
        if let Some(bucket) = &mut state.read
            && !bucket.is_solvent(now)
        {
            return Err(ThrottleReason::TableReadProvisionedThroughputExceeded);
        }
        if let (Some(key), Some(hot)) = (&charge.key_value, state.hot_key.clone())
            && !hot_bucket(state, &hot, Direction::Read, key, now).is_solvent(now)
        {
            return Err(ThrottleReason::TableReadKeyRangeThroughputExceeded);
        }
        Ok(())
    }

    /// Charges a read after its response, into debt if need be. Returns
    /// whether a bucket was charged (the table's reads are limited).
    pub(crate) fn charge_read(&mut self, now: Instant, charge: &Charge<'_>) -> bool {
        let state = self.table(now, charge);
        if let (Some(key), Some(hot)) = (&charge.key_value, state.hot_key.clone()) {
            hot_bucket(state, &hot, Direction::Read, key, now).charge(now, charge.cost);
        }
        match &mut state.read {
            Some(bucket) => {
                bucket.charge(now, charge.cost);
                true
            }
            None => false,
        }
    }

    /// The banked units of a table's (read, write) buckets at `now`.
    #[cfg(test)]
    pub(crate) fn levels(&mut self, now: Instant, table: &str) -> (Option<f64>, Option<f64>) {
        match self.tables.get_mut(table) {
            Some(state) => (
                state.read.as_mut().map(|b| b.level(now)),
                state.write.as_mut().map(|b| b.level(now)),
            ),
            None => (None, None),
        }
    }
}

fn hot_bucket<'s>(
    state: &'s mut TableState,
    hot: &HotKey,
    direction: Direction,
    key: &str,
    now: Instant,
) -> &'s mut Bucket {
    let rate = match direction {
        Direction::Read => hot.read_units_per_second,
        Direction::Write => hot.write_units_per_second,
    };
    if state.hot.len() >= MAX_TRACKED_KEYS {
        state.hot.retain(|_, bucket| !bucket.is_full(now));
    }
    // DynamoDB's per-partition limit is a rate, not a bank: one second's worth,
    // full at first.
    state
        .hot
        .entry((direction, key.to_owned()))
        .or_insert_with(|| Bucket::new(rate, 1, u64::from(rate), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn units(u: u64) -> HalfUnits {
        HalfUnits::from_units(u)
    }

    fn charge<'a>(
        table: &'a str,
        capacity: &'a Capacity,
        hot: Option<&'a HotKey>,
        key: Option<&str>,
        cost: u64,
    ) -> Charge<'a> {
        Charge {
            table,
            capacity: Some(capacity),
            hot_key: hot,
            key_value: key.map(str::to_owned),
            cost: units(cost),
        }
    }

    #[test]
    fn transactions_take_all_or_nothing() {
        let t0 = Instant::now();
        let a = Capacity::new(None, Some(10)).with_initial_units(0, 3);
        let b = Capacity::new(None, Some(10)).with_initial_units(0, 1);
        let mut model = CapacityModel::default();
        let both = [
            charge("a", &a, None, None, 2),
            charge("b", &b, None, None, 2),
        ];
        assert_eq!(
            model.try_write(t0, &both),
            Err((
                "b".to_owned(),
                ThrottleReason::TableWriteProvisionedThroughputExceeded
            ))
        );
        assert_eq!(
            model.levels(t0, "a"),
            (None, Some(3.0)),
            "nothing taken from a"
        );
        // Two charges on one table are summed: 2 + 2 > 3.
        let twice = [
            charge("a", &a, None, None, 2),
            charge("a", &a, None, None, 2),
        ];
        assert!(model.try_write(t0, &twice).is_err());
        assert!(model.try_write(t0, &twice[..1]).is_ok());
        assert_eq!(model.levels(t0, "a"), (None, Some(1.0)));
    }

    #[test]
    fn hot_keys_are_limited_per_key_value() {
        let t0 = Instant::now();
        let capacity = Capacity::new(Some(1000), Some(1000)).with_initial_units(1000, 1000);
        let hot = HotKey::new("pk").with_units(2, 3);
        let mut model = CapacityModel::default();
        for _ in 0..3 {
            assert!(
                model
                    .try_write(t0, &[charge("t", &capacity, Some(&hot), Some("k1"), 1)])
                    .is_ok()
            );
        }
        assert_eq!(
            model.try_write(t0, &[charge("t", &capacity, Some(&hot), Some("k1"), 1)]),
            Err((
                "t".to_owned(),
                ThrottleReason::TableWriteKeyRangeThroughputExceeded
            ))
        );
        assert!(
            model
                .try_write(t0, &[charge("t", &capacity, Some(&hot), Some("k2"), 1)])
                .is_ok()
        );

        let read = charge("t", &capacity, Some(&hot), Some("k1"), 3);
        assert!(model.admit_read(t0, &read).is_ok());
        model.charge_read(t0, &read);
        assert_eq!(
            model.admit_read(t0, &read),
            Err(ThrottleReason::TableReadKeyRangeThroughputExceeded)
        );
        assert!(
            model.admit_read(t0 + secs(0.5), &read).is_ok(),
            "debt of 1 repaid at 2/s"
        );
    }

    #[test]
    fn changed_rules_reconfigure_the_table_lazily() {
        let t0 = Instant::now();
        let fast = Capacity::new(Some(100), Some(100)).with_initial_units(0, 50);
        let slow = Capacity::new(Some(100), Some(1)).with_burst_seconds(2);
        let mut model = CapacityModel::default();
        assert!(
            model
                .try_write(t0, &[charge("t", &fast, None, None, 10)])
                .is_ok()
        );
        assert!(
            model
                .try_write(t0, &[charge("t", &slow, None, None, 3)])
                .is_err(),
            "bank cut to 2"
        );
        assert!(
            model
                .try_write(t0, &[charge("t", &slow, None, None, 2)])
                .is_ok()
        );
        let unlimited = Charge {
            capacity: None,
            ..charge("t", &slow, None, None, 100)
        };
        assert!(model.try_write(t0, &[unlimited]).is_ok());
    }
}
