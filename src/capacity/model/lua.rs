//! Numbers as the script's Lua 5.1 and Redis leave them: `math.max` and
//! `math.min`, `string.format('%.0f')`, `tostring`, and the reply's
//! thousandths (see the [model](super)'s module doc).

/// Lua 5.1's `math.max` of two numbers: the first unless the second is
/// greater (which differs from `f64::max` only for NaN).
pub(super) fn lua_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// Lua 5.1's `math.min` of two numbers.
pub(super) fn lua_min(a: f64, b: f64) -> f64 {
    if b < a { b } else { a }
}

/// `string.format('%.0f', x)` read back by `tonumber`.
pub(super) fn whole(x: f64) -> f64 {
    x.round_ties_even()
}

/// `tostring(x)` (`"%.14g"`) read back by `tonumber`.
/// Rust's `{:.13e}` rounds the exact value to 14 digits, ties to even, as
/// C's `printf` does.
pub(super) fn fourteen_digits(x: f64) -> f64 {
    format!("{x:.13e}")
        .parse()
        .expect("a formatted float parses")
}

pub(super) fn milli(rate: f64) -> i64 {
    (rate * 1000.0).floor() as i64
}
