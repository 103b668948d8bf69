//! The script's replies, named: each becomes the integer array Redis sends.

/// The reply to `reserve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserve {
    /// The units were taken from every bucket.
    pub admitted: bool,
    /// When the caller may go (admitted) or would have gone (refused), µs.
    pub wait_us: i64,
    /// The table bucket's rate (thousandths of a unit per second).
    pub rate_milli: i64,
    /// The table bucket's epoch.
    pub epoch: i64,
    /// The hot-key bucket's epoch; -1 when there is none.
    pub key_epoch: i64,
    /// The queue is standing: waits above the target are shed.
    pub standing: bool,
}

impl Reserve {
    /// The reply as Redis sends it.
    pub fn reply(&self) -> Vec<i64> {
        let admitted = i64::from(self.admitted);
        vec![
            admitted,
            self.wait_us,
            self.rate_milli,
            self.epoch,
            self.key_epoch,
            i64::from(self.standing),
        ]
    }
}

/// The reply to `throttle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// The bucket in scope was cut.
    pub cut: bool,
    /// Its rate, thousandths of a unit per second.
    pub rate_milli: i64,
}

impl Throttle {
    /// The reply as Redis sends it.
    pub fn reply(&self) -> Vec<i64> {
        vec![i64::from(self.cut), self.rate_milli]
    }
}

/// The reply to `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The table bucket's rate, thousandths of a unit per second.
    pub rate_milli: i64,
    /// Its epoch.
    pub epoch: i64,
    /// How long until every reservation is paid for, µs.
    pub backlog_us: i64,
    /// The queue is standing.
    pub standing: bool,
}

impl State {
    /// The reply as Redis sends it.
    pub fn reply(&self) -> Vec<i64> {
        vec![
            self.rate_milli,
            self.epoch,
            self.backlog_us,
            i64::from(self.standing),
        ]
    }
}
