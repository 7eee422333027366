//! Statistics of one media session, for the call record, metrics and `voicegate call`.

use std::time::Duration;

use crate::rtp::DropCounts;

/// Counters and measurements of one call's media so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaStats {
    /// RTP packets accepted from the caller (RFC 3550 §A.3 "received").
    pub received: u64,
    /// Packets the caller sent that never arrived (expected minus received).
    pub lost: i64,
    /// Interarrival jitter of the played source (RFC 3550 §A.8).
    pub jitter: Duration,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets the jitter buffer concealed.
    pub concealed: u64,
    /// Datagrams dropped on the RTP and RTCP ports, by reason.
    pub dropped: DropCounts,
    /// Datagrams longer than the receive buffer.
    pub oversized: u64,
    /// RTP packets we sent.
    pub sent: u64,
    /// Packets we sent that carried AI audio.
    pub sent_speech: u64,
    /// Sends the operating system rejected.
    pub send_errors: u64,
    /// DTMF presses received.
    pub dtmf_received: u64,
    /// Barge-ins fired.
    pub barge_ins: u64,
    /// Times AI playout was held for unconfirmed caller speech, whatever followed.
    pub barge_in_holds: u64,
    /// Holds released because the caller's speech was not confirmed.
    pub barge_in_holds_released: u64,
    /// Received voiced frames the echo gate attributed to our own audio.
    pub echo_suppressed_frames: u64,
    /// Echo return loss of the far end, in dB, once measured.
    pub echo_return_loss_db: Option<f32>,
    /// Echo delay, in milliseconds, once measured.
    pub echo_delay_ms: Option<u32>,
    /// Caller audio frames dropped because the AI loop did not keep up.
    pub audio_frames_dropped: u64,
    /// Audio commands discarded after a barge-in until the AI loop acknowledged it.
    pub fenced_chunks: u64,
    /// Round-trip time from the peer's RTCP reports (RFC 3550 §6.4.1).
    pub round_trip: Option<Duration>,
    /// Times a media timeout was reported.
    pub timeouts: u64,
    /// Distinct SSRCs the caller sent.
    pub ssrcs_seen: u32,
    /// Times the played source changed.
    pub source_changes: u32,
}
