//! When a paced loop sends its next request: on a fixed schedule, never
//! before a server's `Retry-After`, and without a burst to catch up after it
//! fell behind (a late loop restarts its schedule from now, as a client with
//! its own timer would).
//!
//! Times are offsets from the start of the run, so the pacing is a pure
//! function of the clock readings it is given.

use std::time::Duration;

/// A schedule of one request every `interval`.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    next: Duration,
}

impl Pacer {
    /// `rate` requests per second, the first at `offset` (spreads loops of
    /// the same rate over the interval). `None` for a rate that is not
    /// above zero: that loop does not run.
    pub fn per_second(rate: f64, offset: Duration) -> Option<Pacer> {
        (rate.is_finite() && rate > 0.0).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: offset,
        })
    }

    /// When to send the next request, given the time `now` and the earliest
    /// time the server allows (`not_before`, from `Retry-After`; zero when
    /// none). Advances the schedule past the returned time.
    pub fn next(&mut self, now: Duration, not_before: Duration) -> Duration {
        let mut at = self.next.max(not_before);
        // More than one interval late: the missed sends are dropped, not
        // sent back to back.
        if at + self.interval < now {
            at = now;
        }
        self.next = at + self.interval;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn on_time_sends_follow_the_schedule() {
        let mut pacer = Pacer::per_second(10.0, ms(30)).unwrap();
        assert_eq!(pacer.next(ms(0), ms(0)), ms(30));
        assert_eq!(pacer.next(ms(40), ms(0)), ms(130));
        assert_eq!(pacer.next(ms(130), ms(0)), ms(230));
    }

    #[test]
    fn retry_after_holds_the_next_send_back() {
        let mut pacer = Pacer::per_second(10.0, ms(0)).unwrap();
        assert_eq!(pacer.next(ms(0), ms(0)), ms(0));
        // The server said: not before 2 s.
        assert_eq!(pacer.next(ms(50), ms(2000)), ms(2000));
        assert_eq!(pacer.next(ms(2000), ms(0)), ms(2100));
    }

    #[test]
    fn a_late_loop_does_not_burst_to_catch_up() {
        let mut pacer = Pacer::per_second(10.0, ms(0)).unwrap();
        pacer.next(ms(0), ms(0));
        // A slow response: the loop comes back at 1 s, ten sends late.
        assert_eq!(pacer.next(ms(1000), ms(0)), ms(1000));
        assert_eq!(pacer.next(ms(1000), ms(0)), ms(1100));
        // Late by less than an interval: the schedule holds.
        assert_eq!(pacer.next(ms(1150), ms(0)), ms(1200));
    }

    #[test]
    fn no_rate_means_no_loop() {
        assert!(Pacer::per_second(0.0, ms(0)).is_none());
        assert!(Pacer::per_second(-1.0, ms(0)).is_none());
        assert!(Pacer::per_second(f64::NAN, ms(0)).is_none());
    }
}
