//! Prometheus metrics of the RTP layer, in the default registry. Sessions add their counts in
//! batches ([`crate::rtp::RtpSession::publish_metrics`]) rather than per packet, so that media
//! workers do not contend on shared counters.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};

use super::stats::DropReason;

/// The RTP layer's metrics.
pub(crate) struct RtpMetrics {
    pub received: IntCounter,
    pub dropped: IntCounterVec,
    pub concealed: IntCounter,
    pub source_changes: IntCounter,
    pub resyncs: IntCounter,
    pub jitter: Histogram,
    pub ports_in_use: IntGauge,
}

pub(crate) static METRICS: LazyLock<RtpMetrics> = LazyLock::new(|| RtpMetrics {
    received: register(IntCounter::new(
        "voicegate_rtp_packets_received_total",
        "RTP packets accepted for playout or as telephone events.",
    )),
    dropped: register(IntCounterVec::new(
        Opts::new(
            "voicegate_rtp_packets_dropped_total",
            "Datagrams received on RTP ports and not played, by reason.",
        ),
        &["reason"],
    )),
    concealed: register(IntCounter::new(
        "voicegate_rtp_packets_concealed_total",
        "Packets missing at their playout time and concealed by the decoder.",
    )),
    source_changes: register(IntCounter::new(
        "voicegate_rtp_source_changes_total",
        "Times a call's played SSRC changed.",
    )),
    resyncs: register(IntCounter::new(
        "voicegate_rtp_resyncs_total",
        "Times a source restarted its sequence numbers without changing SSRC.",
    )),
    jitter: register(Histogram::with_opts(
        HistogramOpts::new(
            "voicegate_rtp_jitter_seconds",
            "Interarrival jitter of played sources (RFC 3550), sampled at each RTCP report.",
        )
        .buckets(vec![0.001, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32]),
    )),
    ports_in_use: register(IntGauge::new(
        "voicegate_rtp_ports_in_use",
        "RTP port pairs held by calls.",
    )),
});

/// Registers a collector in the default registry. A metric that cannot be registered (its
/// name taken by another collector) still counts, just without being exported.
fn register<C>(collector: prometheus::Result<C>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    // The names and help texts above are fixed and valid, so construction cannot fail.
    #[allow(clippy::expect_used)]
    let collector = collector.expect("rtp metric definition is valid");
    if let Err(err) = prometheus::register(Box::new(collector.clone())) {
        tracing::warn!(%err, "rtp metric not registered");
    }
    collector
}

/// Adds `count` drops for `reason`.
pub(crate) fn add_drops(reason: DropReason, count: u64) {
    if count > 0 {
        METRICS
            .dropped
            .with_label_values(&[reason.as_str()])
            .inc_by(count);
    }
}

/// Creates the RTP metrics so that `/metrics` lists them before the first call.
pub fn register_all() {
    LazyLock::force(&METRICS);
}
