//! Prometheus metrics of the conversation loop, in the default registry.

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Stages of an agent turn's latency trace, in the order they happen. Each is measured from the
/// end of the caller's speech as the VAD saw it, except `internal`, which is the part of that
/// span not spent waiting on providers or on the end-of-turn silence.
pub const STAGES: [&str; 6] = [
    "stt_final",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "first_rtp",
    "internal",
];

/// Provider kinds used as the `kind` label.
pub const KINDS: [&str; 3] = ["stt", "llm", "tts"];

/// Buckets for turn latencies, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
];

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // The constructor only fails on invalid names, which are constants here.
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| panic!("metric {name} is invalid: {err}"));
    if let Err(err) = prometheus::register(Box::new(counter.clone())) {
        tracing::warn!(metric = name, error = %err, "metric not registered");
    }
    counter
}

/// Latency of each stage of an agent turn, from the caller's speech end.
pub static TURN_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    let name = "voicegate_turn_latency_seconds";
    let opts = HistogramOpts::new(name, "Agent turn latency by stage, from caller speech end.")
        .buckets(LATENCY_BUCKETS.to_vec());
    let histogram = HistogramVec::new(opts, &["stage"])
        .unwrap_or_else(|err| panic!("metric {name} is invalid: {err}"));
    if let Err(err) = prometheus::register(Box::new(histogram.clone())) {
        tracing::warn!(metric = name, error = %err, "metric not registered");
    }
    histogram
});

/// Provider failures seen by the loop (errors, stalls, missed deadlines), by kind and provider.
pub static PROVIDER_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_ai_provider_failures_total",
        "Provider failures seen by the conversation loop, by kind and provider.",
        &["kind", "provider"],
    )
});

/// Moves to the next provider of a chain, by kind and the provider that was left.
pub static PROVIDER_FALLBACKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_ai_provider_fallbacks_total",
        "Moves to the next provider of a chain, by kind and the provider left behind.",
        &["kind", "provider"],
    )
});

/// Times every provider of a chain failed and the apology was spoken, by kind.
pub static CHAIN_EXHAUSTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_ai_chain_exhausted_total",
        "Times every provider of a chain failed, by kind.",
        &["kind"],
    )
});

/// Records the caller-speech-onset to last-AI-packet span of a barge-in. The histogram belongs
/// to the media path, which records its own spans under other `span` labels.
pub fn observe_barge_in_cut(seconds: f64) {
    crate::media::metrics::BARGE_IN_CUT
        .with_label_values(&["onset_to_last_packet"])
        .observe(seconds);
}

/// Counts a provider failure.
pub fn count_failure(kind: &str, provider: &str) {
    PROVIDER_FAILURES.with_label_values(&[kind, provider]).inc();
}

/// Counts a move from `provider` to the next one of its chain.
pub fn count_fallback(kind: &str, provider: &str) {
    PROVIDER_FALLBACKS
        .with_label_values(&[kind, provider])
        .inc();
}

/// Creates every series with all its stage labels, so that `/metrics` lists them before the
/// first call.
pub fn register() {
    for stage in STAGES {
        TURN_LATENCY.with_label_values(&[stage]);
    }
    LazyLock::force(&PROVIDER_FAILURES);
    LazyLock::force(&PROVIDER_FALLBACKS);
    for kind in KINDS {
        CHAIN_EXHAUSTED.with_label_values(&[kind]);
    }
    crate::media::metrics::BARGE_IN_CUT.with_label_values(&["onset_to_last_packet"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_lists_every_stage() {
        register();
        let text = crate::observability::render_metrics();
        for stage in STAGES {
            let series = format!("voicegate_turn_latency_seconds_count{{stage=\"{stage}\"}}");
            assert!(text.contains(&series), "missing {series}");
        }
        assert!(text.contains("span=\"onset_to_last_packet\""));
    }

    #[test]
    fn failure_counter_counts() {
        let before = PROVIDER_FAILURES
            .with_label_values(&["llm", "metrics-test"])
            .get();
        count_failure("llm", "metrics-test");
        let after = PROVIDER_FAILURES
            .with_label_values(&["llm", "metrics-test"])
            .get();
        assert_eq!(after, before + 1);
    }
}
