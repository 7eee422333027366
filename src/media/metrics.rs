//! Prometheus metrics of the media path, in the default registry.
//!
//! Sessions count into plain fields on their worker thread and add the deltas here about once a
//! second and when they end, so that a thousand calls do not contend on shared atomics every
//! packet.

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, register_histogram,
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
};

/// Media sessions currently running on the workers.
pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "voicegate_media_sessions_active",
        "Media sessions currently running"
    )
    .expect("metric name is unique")
});

/// RTP packets the caller sent that never arrived (RFC 3550 §A.3 expected minus received).
pub static PACKETS_LOST: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_rtp_packets_lost_total",
        "RTP packets from callers that never arrived"
    )
    .expect("metric name is unique")
});

/// RTP packets sent to callers.
pub static PACKETS_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_rtp_packets_sent_total",
        "RTP packets sent to callers"
    )
    .expect("metric name is unique")
});

/// Barge-in timing: `span="decision_to_last_packet"` from the VAD decision to the last AI
/// packet sent (0 when no AI packet followed the decision), `span="onset_to_decision"`, and
/// `span="onset_to_hold"` for barge-ins whose playout was held before the decision.
pub static BARGE_IN_CUT: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "voicegate_barge_in_cut_seconds",
        "Barge-in timing: onset_to_hold, onset_to_decision and decision_to_last_packet",
        &["span"],
        vec![0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5]
    )
    .expect("metric name is unique")
});

/// Playout holds for unconfirmed caller speech, by outcome: `confirmed` (a barge-in followed)
/// or `released` (the speech was not confirmed and playout resumed).
pub static BARGE_IN_HOLDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "voicegate_barge_in_holds_total",
        "Playout holds for unconfirmed caller speech, by outcome",
        &["outcome"]
    )
    .expect("metric name is unique")
});

/// Barge-ins, by mode (`pause` or `clear`).
pub static BARGE_INS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "voicegate_barge_ins_total",
        "Caller speech that interrupted AI speech, by mode",
        &["mode"]
    )
    .expect("metric name is unique")
});

/// Echo return loss measured per call, in dB, at its end.
pub static ECHO_RETURN_LOSS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "voicegate_echo_return_loss_db",
        "Echo return loss of a call's far end, in dB, at the end of the call",
        vec![0.0, 3.0, 6.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0]
    )
    .expect("metric name is unique")
});

/// Received frames that webrtc-vad called speech but the echo gate attributed to our own
/// audio.
pub static ECHO_SUPPRESSED_FRAMES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_echo_suppressed_frames_total",
        "Received voiced frames explained by the echo of our own audio"
    )
    .expect("metric name is unique")
});

/// Caller audio frames dropped because the AI loop did not keep up.
pub static EVENTS_DROPPED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "voicegate_media_audio_frames_dropped_total",
        "Caller audio frames dropped because the AI loop did not read them in time"
    )
    .expect("metric name is unique")
});

/// Lateness of worker ticks against their schedule.
pub static TICK_LATENESS: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "voicegate_media_tick_lateness_seconds",
        "How late media worker ticks ran against their 10 ms schedule",
        vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05]
    )
    .expect("metric name is unique")
});

/// Creates every media metric so that `/metrics` lists them before the first call.
pub fn register() {
    LazyLock::force(&ACTIVE_SESSIONS);
    LazyLock::force(&PACKETS_LOST);
    LazyLock::force(&PACKETS_SENT);
    for span in [
        "onset_to_hold",
        "onset_to_decision",
        "decision_to_last_packet",
    ] {
        BARGE_IN_CUT.with_label_values(&[span]);
    }
    for outcome in ["confirmed", "released"] {
        BARGE_IN_HOLDS.with_label_values(&[outcome]);
    }
    for mode in ["pause", "clear"] {
        BARGE_INS.with_label_values(&[mode]);
    }
    LazyLock::force(&ECHO_RETURN_LOSS);
    LazyLock::force(&ECHO_SUPPRESSED_FRAMES);
    LazyLock::force(&EVENTS_DROPPED);
    LazyLock::force(&TICK_LATENESS);
}
