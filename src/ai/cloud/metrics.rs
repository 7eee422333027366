//! Prometheus metrics of the cloud provider clients, in the default registry.

use std::sync::LazyLock;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::ai::provider::ProviderError;

/// Buckets for request latencies, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 15.0,
];

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    // Both constructors only fail on invalid names, which are constants here.
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| panic!("metric {name} is invalid: {err}"));
    if let Err(err) = prometheus::register(Box::new(counter.clone())) {
        tracing::warn!(metric = name, error = %err, "metric not registered");
    }
    counter
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    let histogram = HistogramVec::new(opts, labels)
        .unwrap_or_else(|err| panic!("metric {name} is invalid: {err}"));
    if let Err(err) = prometheus::register(Box::new(histogram.clone())) {
        tracing::warn!(metric = name, error = %err, "metric not registered");
    }
    histogram
}

/// Provider requests by outcome: `ok`, `connect`, `rejected`, `timeout`, `protocol`, `config`.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_provider_requests_total",
        "Cloud provider requests and WebSocket sessions by outcome.",
        &["provider", "outcome"],
    )
});

/// Time from sending a request to the response headers.
pub static FIRST_BYTE: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "voicegate_provider_first_byte_seconds",
        "Time from sending a provider request to its response headers.",
        &["provider"],
    )
});

/// Time from sending a chat request to the first text token or tool call.
pub static FIRST_TOKEN: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "voicegate_llm_first_token_seconds",
        "Time from sending a chat request to its first token.",
        &["provider"],
    )
});

/// Maximum pause between two tokens of one reply.
pub static TOKEN_GAP: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "voicegate_llm_longest_token_gap_seconds",
        "Maximum pause between two tokens of one streamed reply.",
        &["provider"],
    )
});

/// Time from sending a synthesis request to the first audio bytes.
pub static FIRST_AUDIO: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "voicegate_tts_first_audio_seconds",
        "Time from sending a synthesis request to its first audio bytes.",
        &["provider"],
    )
});

/// Speech-to-text reconnects by result: `connected` or `failed`.
pub static STT_RECONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_stt_reconnects_total",
        "Speech-to-text reconnect attempts by result.",
        &["provider", "result"],
    )
});

/// Milliseconds of caller audio sent again after a reconnect.
pub static STT_REPLAYED_MS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_stt_replayed_milliseconds_total",
        "Caller audio replayed into a new speech-to-text connection, in milliseconds.",
        &["provider"],
    )
});

/// Returns the `outcome` label for a result.
pub fn outcome(result: Result<(), &ProviderError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(ProviderError::Connect { .. }) => "connect",
        Err(ProviderError::Rejected { .. }) => "rejected",
        Err(ProviderError::Timeout { .. }) => "timeout",
        Err(ProviderError::Protocol { .. }) => "protocol",
        Err(ProviderError::Config { .. }) => "config",
    }
}

/// Counts one finished request or session.
pub fn count_request(provider: &str, result: Result<(), &ProviderError>) {
    REQUESTS
        .with_label_values(&[provider, outcome(result)])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_counter_counts_by_outcome() {
        let before = REQUESTS
            .with_label_values(&["metrics-test", "timeout"])
            .get();
        count_request(
            "metrics-test",
            Err(&ProviderError::Timeout {
                provider: "metrics-test",
                after: std::time::Duration::from_secs(1),
            }),
        );
        let after = REQUESTS
            .with_label_values(&["metrics-test", "timeout"])
            .get();
        assert_eq!(after, before + 1);
    }

    #[test]
    fn metrics_appear_in_exposition() {
        FIRST_BYTE
            .with_label_values(&["metrics-test"])
            .observe(0.25);
        let text = crate::observability::render_metrics();
        assert!(
            text.contains("voicegate_provider_first_byte_seconds"),
            "{text}"
        );
    }
}
