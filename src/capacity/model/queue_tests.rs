//! The model's shedding of a standing queue (CoDel, RFC 8289): a burst
//! queues, a standing queue is kept within the target, a drained one
//! recovers.

use super::*;

const START: u64 = 1_780_000_000_000_000;
const MS: u64 = 1_000;

/// 100 units/s (a unit every 10 ms), no burst, target 10 ms, interval
/// 100 ms: the gate's defaults on a small table.
const Q: Bounds = Bounds {
    max_rate: 100.0,
    min_rate: 5.0,
    increase: 5.0,
    burst_us: 0.0,
    key_max: 100.0,
    key_min: 1.0,
    target_us: 10_000.0,
    interval_us: 100_000.0,
};

const MAX_WAIT: f64 = 1_000_000.0;

fn take(now: u64, table: &mut Option<Hash>) -> Reserve {
    reserve(now, &Q, table, None, 1.0, MAX_WAIT)
}

/// Offers a call every `every` from `from` until `until`; the replies with
/// the instant of each call.
fn offer(table: &mut Option<Hash>, from: u64, until: u64, every: u64) -> Vec<(u64, Reserve)> {
    (from..until)
        .step_by(every as usize)
        .map(|now| (now, take(now, table)))
        .collect()
}

#[test]
fn a_burst_within_an_interval_queues_up_to_max_wait() {
    let mut table = None;
    let replies: Vec<Reserve> = (0..30).map(|_| take(START, &mut table)).collect();
    assert!(replies.iter().all(|r| r.admitted && !r.standing));
    assert_eq!(replies[29].wait_us, 290_000, "queued, not shed");
    let spell = table.unwrap().spell.unwrap();
    assert_eq!((spell.above, spell.last), (START as f64, START as f64));
}

#[test]
fn a_wait_within_the_target_ends_a_spell_that_has_not_stood() {
    let mut table = None;
    for _ in 0..3 {
        take(START, &mut table);
    }
    assert!(table.unwrap().spell.is_some(), "the third waited 20 ms");
    // Paid up to START + 30 ms: at START + 40 ms the wait is 0.
    let drained = take(START + 40 * MS, &mut table);
    assert_eq!((drained.admitted, drained.wait_us), (true, 0));
    assert_eq!(table.unwrap().spell, None, "a burst that drained");
    // A new burst 20 ms later starts its own spell, a whole interval long.
    for _ in 0..3 {
        take(START + 60 * MS, &mut table);
    }
    assert_eq!(
        table.unwrap().spell.unwrap().above,
        (START + 60 * MS) as f64
    );
}

#[test]
fn a_standing_queue_sheds_the_waits_beyond_the_target() {
    let mut table = None;
    // Twice the capacity for a second: a call every 5 ms.
    let replies = offer(&mut table, START, START + 1_000 * MS, 5 * MS);
    let admitted: Vec<_> = replies.iter().filter(|(_, r)| r.admitted).collect();
    let refused: Vec<_> = replies.iter().filter(|(_, r)| !r.admitted).collect();
    assert!(!refused.is_empty());
    for (now, r) in &refused {
        assert!(
            r.standing,
            "refused at +{} ms before standing",
            (now - START) / MS
        );
        assert!(
            r.wait_us > 10_000,
            "a wait within the target is admitted: {r:?}"
        );
    }
    // The first interval queues (waits grow to about half of it at 2x),
    // then the queue drains to the target and stays there.
    let first_shed = refused[0].0;
    assert!(
        first_shed >= START + 100 * MS,
        "shed only after an interval"
    );
    let worst = admitted.iter().map(|(_, r)| r.wait_us).max().unwrap();
    // At 2x the wait grows a millisecond a millisecond: the target, then
    // an interval of growth.
    assert!(
        (100_000..=120_000).contains(&worst),
        "the burst's queue: {worst} µs"
    );
    let late = admitted.iter().filter(|(now, _)| *now >= START + 300 * MS);
    for (now, r) in late {
        assert!(r.wait_us <= 10_000, "+{} ms: {r:?}", (now - START) / MS);
    }
    // The capacity is still used: 100 calls a second, within a few.
    assert!(
        (99..=103).contains(&admitted.len()),
        "{} admitted",
        admitted.len()
    );
    let s = state(START + 1_000 * MS, &Q, &mut table);
    assert!(s.standing && s.backlog_us <= 20_000, "{s:?}");
}

#[test]
fn a_standing_queue_ends_an_interval_after_the_last_wait_above_the_target() {
    let mut table = None;
    let overload = offer(&mut table, START, START + 500 * MS, 5 * MS);
    assert!(overload.last().unwrap().1.standing);
    let last_above = table.unwrap().spell.unwrap().last as u64;
    assert!(last_above >= START + 480 * MS, "{}", last_above - START);
    // Half the capacity: a call every 20 ms waits nothing, yet the queue
    // stands until an interval after the last wait above the target.
    let calm = offer(&mut table, START + 520 * MS, START + 820 * MS, 20 * MS);
    assert!(calm.iter().all(|(_, r)| r.admitted && r.wait_us == 0));
    for (now, r) in &calm {
        assert_eq!(
            r.standing,
            *now - last_above < 100 * MS,
            "+{} ms",
            (now - START) / MS
        );
    }
    assert!(calm[0].1.standing);
    assert_eq!(table.unwrap().spell, None, "the spell ended");
    // Recovered: a burst queues again instead of being shed.
    let now = START + 820 * MS;
    let burst: Vec<Reserve> = (0..20).map(|_| take(now, &mut table)).collect();
    assert!(burst.iter().all(|r| r.admitted), "{burst:?}");
    assert!(burst[19].wait_us > 100_000);
}

#[test]
fn a_refused_call_reserves_nothing_but_keeps_the_spell() {
    let mut table = None;
    let replies = offer(&mut table, START, START + 300 * MS, 5 * MS);
    let before = table.unwrap();
    // Just after the last admission the backlog is its wait and a unit.
    let (admitted_at, _) = replies.iter().rev().find(|(_, r)| r.admitted).unwrap();
    let now = admitted_at + 1;
    let r = take(now, &mut table);
    assert!(!r.admitted && r.standing, "{r:?}");
    let after = table.unwrap();
    assert_eq!(after.tat, before.tat.max(now as f64), "nothing reserved");
    assert_eq!(after.spell.unwrap().last, now as f64);
    assert_eq!(after.spell.unwrap().above, before.spell.unwrap().above);
}

#[test]
fn a_spell_keeps_its_hash_alive_for_an_interval() {
    let long = Bounds {
        interval_us: 5_000_000.0,
        ..Q
    };
    let mut table = None;
    for _ in 0..3 {
        reserve(START, &long, &mut table, None, 1.0, MAX_WAIT);
    }
    // Paid 30 ms ahead: without the spell it would be kept 1.03 s.
    assert_eq!(table.unwrap().ttl_ms, 6_000);
}

#[test]
fn the_target_off_never_sheds() {
    let off = Bounds {
        target_us: MAX_WAIT,
        ..Q
    };
    let mut table = None;
    let replies: Vec<Reserve> = (0..300)
        .map(|i| reserve(START + i * 5 * MS, &off, &mut table, None, 1.0, MAX_WAIT))
        .collect();
    let refused = replies.iter().filter(|r| !r.admitted).count();
    assert!(refused > 0);
    let within = replies.iter().filter(|r| r.wait_us <= 1_000_000);
    assert!(within.clone().all(|r| r.admitted), "only max_wait refuses");
    assert!(within.count() > 200);
}

/// A few callers paging through a list (16 units a page, 160 ms of the
/// table each, offered at eight times its capacity) and everyone else's
/// single reads (one unit every 100 ms): the pages are shed, the reads never.
/// Before large calls had a rule of their own, the pages filled the queue up
/// to max_wait before it stood, and once it stood every read behind them was
/// shed too.
#[test]
fn a_flood_of_large_calls_does_not_get_small_ones_shed() {
    let mut table = None;
    let (mut pages, mut reads) = (Vec::new(), Vec::new());
    for step in 0..(3_000 / 20) {
        let now = START + step * 20 * MS;
        pages.push(reserve(now, &Q, &mut table, None, 16.0, MAX_WAIT));
        if step % 5 == 2 {
            reads.push(reserve(now + MS, &Q, &mut table, None, 1.0, MAX_WAIT));
        }
    }
    assert!(reads.iter().any(|r| r.standing), "the queue stood");
    for (i, read) in reads.iter().enumerate() {
        assert!(read.admitted, "read {i} refused: {read:?}");
        // The pages' part is paid within max_wait / 2, or within the target
        // and one page once the queue stands; reads add one unit each.
        assert!(read.wait_us <= 520_000, "read {i}: {read:?}");
    }
    let admitted = pages.iter().filter(|r| r.admitted).count();
    assert!(
        admitted > 0 && admitted < pages.len() / 4,
        "{admitted} pages"
    );
    // Refused before the queue stood too: a page is paid within half of
    // max_wait, whether or not the queue stands yet.
    assert!(pages.iter().all(|r| !r.admitted || r.wait_us <= 340_000));
}

/// A large call alone on a quiet table is let through at once, however
/// large: the large-call rule applies only to waits above the target.
#[test]
fn a_lone_large_call_is_never_refused() {
    let mut table = None;
    let lone = reserve(START, &Q, &mut table, None, 40.0, MAX_WAIT);
    assert_eq!((lone.admitted, lone.wait_us), (true, 0));
    // Paid 400 ms ahead: a page behind it would be paid for 559 ms from now,
    // beyond half of max_wait; a single read behind it queues.
    let page = reserve(START + MS, &Q, &mut table, None, 16.0, MAX_WAIT);
    assert!(!page.admitted && !page.standing, "{page:?}");
    let read = reserve(START + MS, &Q, &mut table, None, 1.0, MAX_WAIT);
    assert_eq!((read.admitted, read.wait_us), (true, 399_000));
}

/// Behind a large call, small calls that would stand on their own (twice the
/// capacity) are still shed once the queue stands.
#[test]
fn small_calls_that_stand_on_their_own_are_shed_behind_a_large_one() {
    let mut table = None;
    let page = reserve(START, &Q, &mut table, None, 40.0, MAX_WAIT);
    assert!(page.admitted);
    let reads: Vec<Reserve> = (1..100)
        .map(|i| reserve(START + i * 5 * MS, &Q, &mut table, None, 1.0, MAX_WAIT))
        .collect();
    let shed_behind_the_page = reads[..70].iter().filter(|r| r.standing && !r.admitted);
    assert!(shed_behind_the_page.count() > 10, "{reads:?}");
}

/// The arena's mix: pages at eight times the capacity and single reads at
/// 40% of it. Reads queue behind each page admitted; once it is paid for
/// they are still queued, and judged by their wait the next read would be
/// shed for the page's doing. Judged by the queue reads alone have, none is.
#[test]
fn small_calls_still_queued_when_a_large_one_is_paid_for_are_not_shed() {
    let mut table = None;
    let mut reads = Vec::new();
    for step in 0..(3_000 / 5) {
        let now = START + step * 5 * MS;
        if step % 4 == 0 {
            reserve(now, &Q, &mut table, None, 16.0, MAX_WAIT);
        }
        if step % 5 == 1 {
            reads.push(reserve(now, &Q, &mut table, None, 1.0, MAX_WAIT));
        }
    }
    assert!(reads.iter().any(|r| r.standing), "the queue stood");
    let refused: Vec<_> = reads.iter().filter(|r| !r.admitted).collect();
    assert!(
        refused.is_empty(),
        "{} of {} reads refused: {refused:?}",
        refused.len(),
        reads.len()
    );
}
