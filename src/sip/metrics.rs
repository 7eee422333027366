//! Prometheus metrics of the SIP stack, registered in the default registry.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, register_int_counter_vec, register_int_gauge,
};

// Each metric is registered once, by its LazyLock, under a constant valid name, so
// registration cannot fail.
fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(name, help, labels).expect("SIP metric registers once")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    register_int_gauge!(name, help).expect("SIP metric registers once")
}

/// SIP messages received, by kind (`request`, `response`).
pub static MESSAGES_RECEIVED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sip_messages_received_total",
        "SIP messages received, by kind",
        &["kind"],
    )
});

/// Messages dropped without an answer, by reason.
pub static MESSAGES_DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sip_messages_dropped_total",
        "SIP messages dropped without a response, by reason",
        &["reason"],
    )
});

/// Requests rejected by the endpoint itself, by status code.
pub static REQUESTS_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sip_requests_rejected_total",
        "SIP requests answered with an error status by the stack, by status",
        &["status"],
    )
});

/// Retransmissions sent, by what was retransmitted.
pub static RETRANSMISSIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sip_retransmissions_total",
        "SIP messages sent again by a retransmission timer, by kind",
        &["kind"],
    )
});

/// Calls started, by direction (`inbound`, `outbound`).
pub static CALLS_STARTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "voicegate_sip_calls_total",
        "SIP calls offered to the application or placed by it, by direction",
        &["direction"],
    )
});

/// Calls alive now.
pub static CALLS_ACTIVE: LazyLock<IntGauge> =
    LazyLock::new(|| gauge("voicegate_sip_calls_active", "SIP calls currently alive"));

/// Transactions alive now.
pub static TRANSACTIONS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "voicegate_sip_transactions_active",
        "SIP transactions currently alive",
    )
});

/// Counts a dropped message.
pub fn dropped(reason: &str) {
    MESSAGES_DROPPED.with_label_values(&[reason]).inc();
}

/// Counts a request the stack rejected.
pub fn rejected(status: u16) {
    REQUESTS_REJECTED
        .with_label_values(&[status.to_string().as_str()])
        .inc();
}

/// Counters resolved once for the labels every call uses, because `with_label_values` hashes
/// the labels and takes a lock on each use.
static REQUESTS_RECEIVED: LazyLock<IntCounter> =
    LazyLock::new(|| MESSAGES_RECEIVED.with_label_values(&["request"]));
static RESPONSES_RECEIVED: LazyLock<IntCounter> =
    LazyLock::new(|| MESSAGES_RECEIVED.with_label_values(&["response"]));
static INBOUND_CALLS: LazyLock<IntCounter> =
    LazyLock::new(|| CALLS_STARTED.with_label_values(&["inbound"]));

/// Counts a received request.
pub fn request_received() {
    REQUESTS_RECEIVED.inc();
}

/// Counts a received response.
pub fn response_received() {
    RESPONSES_RECEIVED.inc();
}

/// Counts an inbound call offered to the application.
pub fn inbound_call() {
    INBOUND_CALLS.inc();
}
