//! Prometheus metrics of call recording, in the default registry.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntGauge, register_int_counter, register_int_gauge};

/// Recordings open on the writer thread.
pub static ACTIVE_RECORDINGS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "voicegate_recordings_active",
        "Call recordings currently being written"
    )
    .expect("metric name is unique")
});

/// Stereo frames written as silence because the writer fell behind and a block was not
/// handed over.
pub static DROPPED_FRAMES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_recording_dropped_frames_total",
        "Recording frames replaced by silence because the writer fell behind"
    )
    .expect("metric name is unique")
});

/// Recordings that stopped early because writing the file failed.
pub static WRITE_ERRORS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_recording_write_errors_total",
        "Call recordings that stopped because writing the file failed"
    )
    .expect("metric name is unique")
});
