//! Call-level Prometheus metrics.

use std::sync::LazyLock;

use prometheus::{
    Histogram, IntCounterVec, IntGauge, register_histogram, register_int_counter_vec,
    register_int_gauge,
};

/// Calls in progress on this node (answered or being set up).
pub static ACTIVE_CALLS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("voicegate_active_calls", "Calls in progress on this node.")
        .expect("metric registers once")
});

/// Finished calls by result (`answered`, `rejected`, `cancelled`, `failed`).
pub static CALLS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "voicegate_calls_total",
        "Finished calls by result.",
        &["result"]
    )
    .expect("metric registers once")
});

/// Length of answered calls, in seconds.
pub static CALL_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "voicegate_call_duration_seconds",
        "Length of answered calls.",
        vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0]
    )
    .expect("metric registers once")
});

/// Touches every metric so that `/metrics` lists them from the start.
pub fn register() {
    LazyLock::force(&ACTIVE_CALLS);
    for result in ["answered", "rejected", "cancelled", "failed"] {
        CALLS_TOTAL.with_label_values(&[result]);
    }
    LazyLock::force(&CALL_DURATION);
}

/// Counts one call in [`ACTIVE_CALLS`] while it lives.
pub struct ActiveGauge(());

impl ActiveGauge {
    /// Increments the gauge; dropping the guard decrements it.
    pub fn new() -> Self {
        ACTIVE_CALLS.inc();
        ActiveGauge(())
    }
}

impl Default for ActiveGauge {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ActiveGauge {
    fn drop(&mut self) {
        ACTIVE_CALLS.dec();
    }
}
