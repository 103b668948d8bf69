//! What a [`Limits`](crate::limiter::Limits) keeps about itself so that a
//! request does not rebuild it: the counter handles of its commonest
//! decisions, and values derived from its quotas once (the layer's
//! `RateLimit-Policy` field).
//!
//! A `metrics::counter!` with labels builds its key (label strings, a
//! vector), hashes it and looks it up in the recorder's registry on every
//! call; a layer that counts each check twice (the limiter's and the layer's
//! decision counters) did that ten times per request. A cached handle is an
//! atomic add.
//!
//! Handles belong to the recorder that made them, so each slot remembers it
//! (by address) and registers again when another recorder is current: a test
//! with its own local recorder counts into it. A recorder is told apart only
//! by its address: one dropped while a `Limits` lives, and another made at
//! the same address, would share that `Limits`' handles (the global recorder
//! of a service is never dropped).

use std::sync::{OnceLock, RwLock};

use metrics::Counter;

/// One cached counter handle and the recorder it came from.
#[derive(Debug, Default)]
pub(crate) struct CounterSlot {
    handle: RwLock<Option<(usize, Counter)>>,
}

impl CounterSlot {
    /// Adds one to the counter, registering it with `register` (called
    /// with the current recorder) when this slot has no handle of that
    /// recorder yet.
    pub(crate) fn increment(&self, register: impl FnOnce() -> Counter) {
        let recorder = current_recorder();
        if let Ok(slot) = self.handle.read()
            && let Some((of, counter)) = slot.as_ref()
            && *of == recorder
        {
            counter.increment(1);
            return;
        }
        let counter = register();
        counter.increment(1);
        if let Ok(mut slot) = self.handle.write() {
            *slot = Some((recorder, counter));
        }
    }
}

/// The address of the recorder `metrics::counter!` would use now.
fn current_recorder() -> usize {
    metrics::with_recorder(|recorder| std::ptr::from_ref(recorder).cast::<()>() as usize)
}

/// The cache of one `Limits` (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Handles {
    /// `dynagate_limiter_decisions_total{outcome="allowed",decided_by="redis"}`.
    pub(crate) allowed_by_redis: CounterSlot,
    /// `dynagate_limiter_decisions_total{outcome="allowed",decided_by="memory"}`.
    pub(crate) allowed_by_memory: CounterSlot,
    /// `dynagate_limiter_decisions_total{outcome="allowed",decided_by="lease"}`.
    pub(crate) allowed_by_lease: CounterSlot,
    /// `dynagate_http_decisions_total{decision="allow"}`.
    pub(crate) http_allow: CounterSlot,
    /// The layer's `RateLimit-Policy` field value.
    pub(crate) policy_field: OnceLock<Box<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(handle: &metrics_exporter_prometheus::PrometheusHandle) -> String {
        handle.render()
    }

    #[test]
    fn a_slot_counts_into_whichever_recorder_is_current() {
        let slot = CounterSlot::default();
        let register = || metrics::counter!("slot_test_total");
        let first = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let second = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let (h1, h2) = (first.handle(), second.handle());
        metrics::with_local_recorder(&first, || {
            slot.increment(register);
            slot.increment(register);
        });
        metrics::with_local_recorder(&second, || slot.increment(register));
        metrics::with_local_recorder(&first, || slot.increment(register));
        assert!(render(&h1).contains("slot_test_total 3"), "{}", render(&h1));
        assert!(render(&h2).contains("slot_test_total 1"), "{}", render(&h2));
    }
}
