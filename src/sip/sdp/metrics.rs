//! Prometheus counters of offer/answer outcomes, in the default registry.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, Opts};

use super::error::NegotiationError;
use super::types::CodecName;

/// Our side of the exchange.
#[derive(Debug, Clone, Copy)]
pub(super) enum Role {
    /// We answered the peer's offer.
    Answer,
    /// We accepted the peer's answer to our offer.
    Offer,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Answer => "answer",
            Role::Offer => "offer",
        }
    }
}

static NEGOTIATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sdp_negotiated_total",
        "Offer/answer exchanges that agreed on audio, by our role and codec.",
        &["role", "codec"],
    )
});

static FAILED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sdp_negotiation_failures_total",
        "Offer/answer exchanges that failed, by our role and SIP Warning code.",
        &["role", "warning"],
    )
});

/// Creates a counter and registers it. Registration fails when a collector of the same name
/// is registered already. The counter then still counts but is not exported, so the failure is
/// logged instead of panicking.
fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric name and labels are valid constants");
    if let Err(error) = prometheus::register(Box::new(counter.clone())) {
        tracing::warn!(metric = name, %error, "failed to register metric");
    }
    counter
}

/// Counts an agreed codec.
pub(super) fn record_success(role: Role, codec: CodecName) {
    NEGOTIATED
        .with_label_values(&[role.label(), codec.config_name()])
        .inc();
}

/// Counts a failed exchange by its Warning code.
pub(super) fn record_failure(role: Role, error: &NegotiationError) {
    let (code, _) = error.warning();
    FAILED
        .with_label_values(&[role.label(), &code.to_string()])
        .inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_in_default_registry() {
        record_success(Role::Answer, CodecName::Opus);
        record_failure(Role::Offer, &NegotiationError::NoAudio);
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|name| name == "voicegate_sdp_negotiated_total")
        );
        assert!(
            names
                .iter()
                .any(|name| name == "voicegate_sdp_negotiation_failures_total")
        );
        let opus_answers = NEGOTIATED.with_label_values(&["answer", "opus"]).get();
        assert!(opus_answers >= 1);
    }
}
