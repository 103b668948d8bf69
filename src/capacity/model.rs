//! The capacity gate's script (`capacity.lua`) as pure Rust: the model that
//! `tests/capacity_model.rs` checks the script against on a real Redis.
//!
//! Lua 5.1 numbers are IEEE doubles, so every step is written here as an
//! `f64` operation in the script's order: the same operations in the same
//! order give the same bits. Where the script's values leave Lua, the model
//! converts them as Redis and Lua do:
//!
//! - `string.format('%.0f', x)` (the stored `tat` and `at`, the TTL) rounds
//!   to the nearest integer, ties to even: C's `printf` under the default
//!   rounding mode. `tat` near today's clock has a resolution of 1/4 µs, so
//!   ties do occur.
//! - `tostring(rate)` keeps 14 significant digits (Lua 5.1's
//!   `LUAI_NUMFFORMAT`, `"%.14g"`, in `luaconf.h`): a stored rate is not the
//!   rate the script computed, and the next call starts from the stored one.
//! - A number in a reply becomes an integer by C's `(long long)` cast
//!   (Redis 7, `script_lua.c`, `luaReplyToRedisReply`). The script floors or
//!   ceils every reply number first, so the cast changes nothing.
//! - Redis expires a key once its clock (ms) is past the time the key was
//!   given by `PEXPIRE` (Redis 7, `db.c`, `keyIsExpired`: `now > when`); an
//!   expired hash is an absent one. Each command here drops its expired
//!   hashes first; [`expire`] does it for a hash no command touches.
//!
//! The shedding of a standing queue follows CoDel (RFC 8289, "Controlled
//! Delay Active Queue Management"): a spell of waits above
//! [`Bounds::target_us`] that lasts [`Bounds::interval_us`] is a standing
//! queue; see [`reserve`].

mod lua;
mod reply;
mod stored;

use self::lua::{fourteen_digits, lua_max, lua_min, milli, whole};

pub use self::reply::{Reserve, State, Throttle};
pub use self::stored::{Cut, Hash, Spell, expire};

/// `ARGV[2..9]` of every command: the table bucket's bounds (units/s), the
/// climb (units/s per second), the burst (µs), a hot key's bounds, and the
/// queue's target wait and interval (µs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The table bucket's ceiling.
    pub max_rate: f64,
    /// The table bucket's floor.
    pub min_rate: f64,
    /// How fast a cut rate climbs back.
    pub increase: f64,
    /// How far ahead of its pace an idle bucket lets calls go.
    pub burst_us: f64,
    /// A hot-key bucket's ceiling.
    pub key_max: f64,
    /// A hot-key bucket's floor.
    pub key_min: f64,
    /// The wait a standing queue is kept within (CoDel's target).
    pub target_us: f64,
    /// How long waits stay above the target before the queue is standing,
    /// and how long without one ends it (CoDel's interval).
    pub interval_us: f64,
}

/// Which bucket a throttle cuts (`ARGV[10]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `table`: `KEYS[1]`.
    Table,
    /// `key`: `KEYS[2]`, created at the table's rate by its first throttle.
    Key,
}

/// A bucket as the script's `load` sees it: its rate climbed back to now.
#[derive(Debug, Clone, Copy)]
struct Loaded {
    exists: bool,
    tat: f64,
    rate: f64,
    epoch: i64,
    ceiling: f64,
    floor: f64,
    /// The spell as stored (stale or not), table bucket only.
    spell: Option<Spell>,
    /// `large` and `small` as stored (past or not), table bucket only.
    large: Option<f64>,
    small: Option<f64>,
}

impl Loaded {
    /// The script's `live`: a wait was above the target within an interval.
    fn live(&self, now: f64, b: &Bounds) -> bool {
        self.spell.is_some_and(|s| now - s.last < b.interval_us)
    }

    /// The script's `standing`: the spell has lasted an interval.
    fn standing(&self, now: f64, b: &Bounds) -> bool {
        self.live(now, b) && self.spell.is_some_and(|s| now - s.above >= b.interval_us)
    }
}

fn load(hash: &Option<Hash>, now: f64, b: &Bounds, ceiling: f64, floor: f64) -> Loaded {
    let cut = hash.and_then(|h| h.cut);
    let mut rate = cut.map_or(ceiling, |c| c.rate);
    let mut at = cut.map_or(now, |c| c.at);
    if at > now {
        at = now;
    }
    rate += b.increase * (now - at) / 1_000_000.0;
    if rate > ceiling {
        rate = ceiling;
    }
    if rate < floor {
        rate = floor;
    }
    let mut tat = hash.map_or(now, |h| h.tat);
    if tat < now {
        tat = now;
    }
    Loaded {
        exists: cut.is_some(),
        tat,
        rate,
        epoch: cut.map_or(0, |c| c.epoch),
        ceiling,
        floor,
        spell: hash.and_then(|h| h.spell),
        large: hash.and_then(|h| h.large),
        small: hash.and_then(|h| h.small),
    }
}

/// The script's `store`: writes `tat` (and the cut fields when `cut`), and a
/// TTL that keeps the hash until it is paid for, back at its ceiling and
/// past its spell. `l.spell` is the spell the hash holds after the write.
fn store(hash: &mut Option<Hash>, l: &Loaded, now: f64, b: &Bounds, cut: bool) {
    let paid = l.tat - now + b.burst_us;
    let mut recovered = 0.0;
    if l.rate < l.ceiling && b.increase > 0.0 {
        recovered = (l.ceiling - l.rate) / b.increase * 1_000_000.0;
    }
    let spell = l.spell.map_or(0.0, |s| s.last + b.interval_us - now);
    let keep = lua_max(lua_max(paid, recovered), spell) / 1000.0 + 1000.0;
    let cut = if cut {
        Some(Cut {
            rate: fourteen_digits(l.rate),
            at: whole(now),
            epoch: l.epoch,
        })
    } else {
        hash.and_then(|h| h.cut)
    };
    *hash = Some(Hash {
        tat: whole(l.tat),
        cut,
        spell: l.spell,
        large: l.large,
        small: l.small,
        ttl_ms: whole(keep.ceil()) as u64,
        written_ms: now as u64 / 1000,
    });
}

/// `reserve`: takes `units` from the table bucket and from the hot-key
/// bucket when `key` names one that exists (`key` is `KEYS[2]`, `None` when
/// the call names no partition key), unless the call is refused: its wait
/// exceeds `max_wait_us`, or the queue is standing and the wait exceeds the
/// target. A refusal reserves nothing (it writes only the spell).
///
/// The spell is CoDel's (RFC 8289) on the wait each call would have, known
/// here when the call arrives instead of measured when it leaves the queue:
/// a wait above the target starts a spell (or goes on with it); a spell that
/// has lasted an interval is a standing queue, and from then waits above the
/// target are shed. A wait within the target ends a spell that has not stood
/// yet (a burst that drained); a standing spell ends only after an interval
/// with no wait above the target, since the calls it admits wait within the
/// target by construction and say nothing about the load.
///
/// Large calls do not crowd out small ones. A call is large when it alone
/// takes longer than the target to pay for at the bucket's rate (a page of a
/// list, a big batch); one large call in a queue already makes it wait above
/// the target for every call behind it. So while waits are above the target
/// a large call is admitted only if it is paid for within half of
/// `max_wait_us`, and not at all once the queue stands, which leaves the
/// other half to small calls; and until an interval after the last large
/// call is paid for (`large` in the hash, the `tat` after it), a small call in
/// a standing queue is judged by the queue small calls alone would have
/// (`small`, their `tat` as if they had the bucket to themselves): they wait
/// behind the large calls, but are shed only if they would stand on their
/// own. A small call admitted so moves `large` to its own `tat`: the small
/// calls that queued behind the large ones are still queued once those are
/// paid for, and judged by their wait then, the next small call would be
/// shed for the large calls' doing. A few callers paging
/// through a list cannot get the single reads of everyone else shed: they
/// are shed themselves. With no large call in the queue this is CoDel as
/// above.
pub fn reserve(
    now: u64,
    b: &Bounds,
    table: &mut Option<Hash>,
    mut key: Option<&mut Option<Hash>>,
    units: f64,
    max_wait_us: f64,
) -> Reserve {
    let t = now as f64;
    expire(table, now);
    let mut buckets = vec![load(table, t, b, b.max_rate, b.min_rate)];
    let mut key_epoch = -1;
    if let Some(hash) = key.as_deref_mut() {
        expire(hash, now);
        let mut k = load(hash, t, b, b.key_max, b.key_min);
        // Only KEYS[1] keeps a spell.
        k.spell = None;
        if k.exists {
            buckets.push(k);
            key_epoch = k.epoch;
        }
    }
    let mut wait = 0.0;
    // Per bucket: what the call costs at its rate, and its tat if admitted.
    let mut paced = Vec::with_capacity(buckets.len());
    for l in &buckets {
        let cost = units * 1_000_000.0 / l.rate;
        let new_tat = l.tat + cost;
        paced.push((cost, new_tat));
        // An idle bucket lets any one call through at once.
        let w = new_tat - lua_max(b.burst_us, cost) - t;
        if w > wait {
            wait = w;
        }
    }
    let table_bucket = &mut buckets[0];
    // A large call alone takes longer than the target at the rate. Until an
    // interval after the last one is paid for, a small call is judged by the
    // queue of small calls alone.
    let own = paced[0].0;
    let large = own > b.target_us;
    let large_counts = table_bucket.large.is_some_and(|l| l + b.interval_us > t);
    let small_wait = match table_bucket.small {
        Some(s) if s > t => s - t,
        _ => 0.0,
    };
    let (admitted, standing, spell_written, ended);
    if wait > b.target_us {
        let above = match table_bucket.spell {
            Some(s) if table_bucket.live(t, b) => s.above,
            _ => t,
        };
        table_bucket.spell = Some(Spell {
            above: whole(above),
            last: whole(t),
        });
        spell_written = true;
        standing = t - above >= b.interval_us;
        admitted = if large {
            !standing && wait + own <= max_wait_us / 2.0
        } else {
            wait <= max_wait_us && (!standing || (large_counts && small_wait <= b.target_us))
        };
        ended = false;
    } else {
        standing = table_bucket.standing(t, b);
        admitted = wait <= max_wait_us;
        spell_written = false;
        ended = admitted && !standing && table_bucket.spell.is_some();
    }
    if admitted {
        for (l, (_, new_tat)) in buckets.iter_mut().zip(&paced) {
            l.tat = *new_tat;
        }
        if large {
            buckets[0].large = Some(whole(buckets[0].tat));
        } else if large_counts {
            buckets[0].small = Some(whole(t + small_wait + own));
            buckets[0].large = Some(whole(buckets[0].tat));
        }
    }
    if ended {
        buckets[0].spell = None;
    }
    if admitted || spell_written {
        store(table, &buckets[0], t, b, false);
    }
    if admitted && let (Some(l), Some(hash)) = (buckets.get(1), key) {
        store(hash, l, t, b, false);
    }
    Reserve {
        admitted,
        wait_us: wait.ceil() as i64,
        rate_milli: milli(buckets[0].rate),
        epoch: buckets[0].epoch,
        key_epoch,
        standing,
    }
}

/// `adjust`: charges `delta_milli` thousandths of a unit more (or gives them
/// back, negative) on the table bucket and on an existing hot-key bucket.
/// Returns the table bucket's rate in thousandths.
pub fn adjust(
    now: u64,
    b: &Bounds,
    table: &mut Option<Hash>,
    key: Option<&mut Option<Hash>>,
    delta_milli: f64,
) -> i64 {
    let t = now as f64;
    let delta = delta_milli / 1000.0;
    let shift = |hash: &mut Option<Hash>, ceiling, floor, always: bool| {
        expire(hash, now);
        let mut l = load(hash, t, b, ceiling, floor);
        if always || l.exists {
            l.tat += delta * 1_000_000.0 / l.rate;
            if l.tat < t {
                l.tat = t;
            }
            store(hash, &l, t, b, false);
        }
        l.rate
    };
    let rate = shift(table, b.max_rate, b.min_rate, true);
    if let Some(hash) = key {
        shift(hash, b.key_max, b.key_min, false);
    }
    milli(rate)
}

/// `throttle`: cuts the bucket in `scope` by `decrease` if its epoch is
/// still `seen` (a hot-key bucket that does not exist yet is created at the
/// table's rate and cut whatever `seen` is).
///
/// # Panics
///
/// For [`Scope::Key`] without a `key`: the script fails there too.
pub fn throttle(
    now: u64,
    b: &Bounds,
    table: &mut Option<Hash>,
    key: Option<&mut Option<Hash>>,
    mut seen: i64,
    decrease: f64,
    scope: Scope,
) -> Throttle {
    let t = now as f64;
    expire(table, now);
    let (hash, mut l) = match scope {
        Scope::Key => {
            let hash = key.expect("a key-scope throttle names KEYS[2]");
            expire(hash, now);
            let mut l = load(hash, t, b, b.key_max, b.key_min);
            if !l.exists {
                l.rate = lua_min(b.key_max, load(table, t, b, b.max_rate, b.min_rate).rate);
                seen = 0;
            }
            (hash, l)
        }
        Scope::Table => {
            let l = load(table, t, b, b.max_rate, b.min_rate);
            (table, l)
        }
    };
    if l.epoch != seen {
        return Throttle {
            cut: false,
            rate_milli: milli(l.rate),
        };
    }
    l.rate = lua_max(l.floor, l.rate * decrease);
    l.epoch += 1;
    store(hash, &l, t, b, true);
    Throttle {
        cut: true,
        rate_milli: milli(l.rate),
    }
}

/// `state`: the table bucket's rate, epoch, backlog and whether its queue
/// stands; writes nothing.
pub fn state(now: u64, b: &Bounds, table: &mut Option<Hash>) -> State {
    let t = now as f64;
    expire(table, now);
    let l = load(table, t, b, b.max_rate, b.min_rate);
    State {
        rate_milli: milli(l.rate),
        epoch: l.epoch,
        backlog_us: (l.tat - t).ceil() as i64,
        standing: l.standing(t, b),
    }
}

#[cfg(test)]
mod queue_tests;
#[cfg(test)]
mod tests;
