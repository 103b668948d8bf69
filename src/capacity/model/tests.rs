//! The model on its own: pacing, refusals, cuts, expiry.

use super::*;

const START: u64 = 1_780_000_000_000_000;
const SECOND: u64 = 1_000_000;

/// 10 units/s, floor 2, climbing 1 unit/s per second, no burst; hot keys
/// between 1 and 4; no shedding (the target is beyond any wait here).
const B: Bounds = Bounds {
    max_rate: 10.0,
    min_rate: 2.0,
    increase: 1.0,
    burst_us: 0.0,
    key_max: 4.0,
    key_min: 1.0,
    target_us: 1e12,
    interval_us: 100_000.0,
};

fn take(now: u64, table: &mut Option<Hash>, key: Option<&mut Option<Hash>>) -> Reserve {
    reserve(now, &B, table, key, 1.0, 1e9)
}

#[test]
fn calls_at_one_instant_are_paced_one_unit_time_apart() {
    let mut table = None;
    let waits: Vec<i64> = (0..4)
        .map(|_| take(START, &mut table, None).wait_us)
        .collect();
    assert_eq!(waits, [0, 100_000, 200_000, 300_000]);
    assert_eq!(table.unwrap().tat, (START + 400_000) as f64);
    let s = state(START, &B, &mut table);
    assert_eq!((s.rate_milli, s.epoch, s.backlog_us), (10_000, 0, 400_000));
}

#[test]
fn a_refusal_writes_nothing() {
    let mut table = None;
    take(START, &mut table, None);
    take(START, &mut table, None);
    let before = table;
    let r = reserve(START, &B, &mut table, None, 1.0, 150_000.0);
    assert_eq!(r.reply(), [0, 200_000, 10_000, 0, -1, 0]);
    assert_eq!(table, before);
}

#[test]
fn the_calls_of_one_epoch_cut_the_rate_once() {
    let mut table = None;
    let epoch = take(START, &mut table, None).epoch;
    let first = throttle(START, &B, &mut table, None, epoch, 0.5, Scope::Table);
    assert_eq!(first.reply(), [1, 5_000]);
    let second = throttle(START, &B, &mut table, None, epoch, 0.5, Scope::Table);
    assert_eq!(second.reply(), [0, 5_000], "admitted in the old epoch");
    assert_eq!(table.unwrap().cut.unwrap().epoch, 1);
    let newer = take(START, &mut table, None).epoch;
    assert_eq!(newer, 1);
    let third = throttle(START, &B, &mut table, None, newer, 0.5, Scope::Table);
    assert_eq!(third.reply(), [1, 2_500]);
}

#[test]
fn cuts_stop_at_the_floor() {
    let mut table = None;
    for epoch in 0..5 {
        throttle(START, &B, &mut table, None, epoch, 0.5, Scope::Table);
    }
    assert_eq!(state(START, &B, &mut table).rate_milli, 2_000);
}

#[test]
fn a_cut_rate_climbs_back_linearly_to_the_ceiling() {
    let mut table = None;
    throttle(START, &B, &mut table, None, 0, 0.5, Scope::Table);
    let at = |dt| state(START + dt, &B, &mut table.clone()).rate_milli;
    assert_eq!(
        [at(0), at(SECOND), at(3 * SECOND / 2), at(60 * SECOND)],
        [5_000, 6_000, 6_500, 10_000]
    );
}

#[test]
fn a_stored_rate_keeps_fourteen_digits() {
    let mut table = None;
    throttle(START, &B, &mut table, None, 0, 1.0 / 3.0, Scope::Table);
    assert_eq!(table.unwrap().cut.unwrap().rate, 3.3333333333333);
}

#[test]
fn a_hot_key_gets_its_own_bucket_at_its_first_throttle() {
    let (mut table, mut key) = (None, None);
    assert_eq!(take(START, &mut table, Some(&mut key)).key_epoch, -1);
    assert_eq!(key, None, "no bucket before a hot-key throttle");
    let cut = throttle(START, &B, &mut table, Some(&mut key), -1, 0.5, Scope::Key);
    assert_eq!(cut.reply(), [1, 2_000], "the key's ceiling (4), halved");
    assert_eq!(
        state(START, &B, &mut table).rate_milli,
        10_000,
        "table untouched"
    );
    // The key bucket, at 2 units/s, is idle: the next call waits only
    // for the table; the one after waits for the key (half a second).
    let next = take(START, &mut table, Some(&mut key));
    assert_eq!(next.reply(), [1, 100_000, 10_000, 0, 1, 0]);
    assert_eq!(take(START, &mut table, Some(&mut key)).wait_us, 500_000);
    let other = take(START, &mut table, None);
    assert_eq!(
        other.wait_us, 300_000,
        "calls naming no key pace on the table only"
    );
}

#[test]
fn a_hash_expires_a_second_after_it_is_paid_and_back_at_its_ceiling() {
    let mut table = None;
    throttle(START, &B, &mut table, None, 0, 0.5, Scope::Table);
    // 5 units/s below the ceiling at 1 unit/s per second: 5 s, then 1 s.
    assert_eq!(table.unwrap().ttl_ms, 6_000);
    let mut kept = table;
    assert!(!expire(&mut kept, START + 6 * SECOND));
    assert!(expire(&mut kept, START + 6 * SECOND + 1_000));
    assert_eq!(state(START + 7 * SECOND, &B, &mut table).epoch, 0);
}

/// The units of the calls that start (admitted at `now + wait`) within each
/// second-long window, less the window's last call: the most any window
/// carried beyond what one call adds.
fn busiest_second(starts: &mut [(f64, f64)]) -> f64 {
    starts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut busiest = 0.0f64;
    let (mut first, mut sum) = (0, 0.0);
    for last in 0..starts.len() {
        sum += starts[last].1;
        while starts[first].0 <= starts[last].0 - SECOND as f64 {
            sum -= starts[first].1;
            first += 1;
        }
        busiest = busiest.max(sum - starts[last].1);
    }
    busiest
}

/// Three times the rate for 5 s, calls of 1 to 4 units at uneven instants
/// (a fixed sequence): the start instants and units of the admitted ones.
fn overload(burst_us: f64) -> Vec<(f64, f64)> {
    let b = Bounds { burst_us, ..B };
    let mut table = None;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut now = START;
    let mut starts = Vec::new();
    while now < START + 5 * SECOND {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let units = (1 + seed % 4) as f64;
        let r = reserve(now, &b, &mut table, None, units, 2e6);
        if r.admitted {
            starts.push(((now as i64 + r.wait_us) as f64, units));
        }
        // 2.5 units a call on average, 12 calls a second: 30 units/s.
        now += 1 + seed % 166_666;
    }
    starts
}

#[test]
fn without_a_burst_no_second_carries_more_than_the_rate_and_one_call() {
    let mut paced = overload(0.0);
    // 5 s at 10 units/s, and the 2 s the last admitted may wait.
    let units: f64 = paced.iter().map(|(_, u)| u).sum();
    assert!(units >= 50.0, "the rate was used: {units} units");
    let busiest = busiest_second(&mut paced);
    assert!(
        busiest <= 10.0,
        "{busiest} units before a window's last call"
    );
    // A half-second burst lets the first second carry more.
    let busiest = busiest_second(&mut overload(500_000.0));
    assert!(busiest > 10.0, "{busiest}");
}
