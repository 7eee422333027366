//! Per-call receive statistics: packet counts, loss, jitter and drops by reason, for metrics,
//! RTCP and the call record.

use std::fmt;
use std::time::Duration;

use super::ids::Ssrc;

/// Reason a datagram received on an RTP port was not played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed RTP packet: truncated header, CSRC list or extension, or bad padding.
    Malformed,
    /// The version field is not 2.
    Version,
    /// Neither RTP, RTCP nor STUN (for example DTLS or ZRTP).
    NotRtp,
    /// A STUN message while ICE is off.
    Stun,
    /// RTCP on the RTP port although rtcp-mux was not negotiated.
    RtcpWithoutMux,
    /// An RTP header with no payload (NAT keepalive).
    Keepalive,
    /// A payload type that was not negotiated for this call (RFC 3550 §5.1 requires ignoring it).
    UnknownPayloadType,
    /// Sent from an address other than the latched peer.
    ForeignAddress,
    /// From an SSRC that is not the one being played.
    InactiveSource,
    /// From an SSRC still on probation that never sent the next packet in sequence.
    Unvalidated,
    /// A sequence number jump that the next packet did not confirm.
    SequenceJump,
    /// A packet already received.
    Duplicate,
    /// A packet that arrived after its playout time.
    Late,
    /// The jitter buffer was full.
    Overflow,
    /// Our own packets sent back to us (RFC 3550 §8.2), for example by an echo test peer.
    Loop,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 15] = [
        DropReason::Malformed,
        DropReason::Version,
        DropReason::NotRtp,
        DropReason::Stun,
        DropReason::RtcpWithoutMux,
        DropReason::Keepalive,
        DropReason::UnknownPayloadType,
        DropReason::ForeignAddress,
        DropReason::InactiveSource,
        DropReason::Unvalidated,
        DropReason::SequenceJump,
        DropReason::Duplicate,
        DropReason::Late,
        DropReason::Overflow,
        DropReason::Loop,
    ];

    /// Label value used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Version => "version",
            DropReason::NotRtp => "not_rtp",
            DropReason::Stun => "stun",
            DropReason::RtcpWithoutMux => "rtcp_without_mux",
            DropReason::Keepalive => "keepalive",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::ForeignAddress => "foreign_address",
            DropReason::InactiveSource => "inactive_source",
            DropReason::Unvalidated => "unvalidated",
            DropReason::SequenceJump => "sequence_jump",
            DropReason::Duplicate => "duplicate",
            DropReason::Late => "late",
            DropReason::Overflow => "overflow",
            DropReason::Loop => "loop",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Dropped datagrams counted by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::ALL.len()]);

impl DropCounts {
    /// Counts one drop.
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    /// Counts `count` drops at once.
    pub fn add_count(&mut self, reason: DropReason, count: u64) {
        self.0[reason.index()] += count;
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// Drops counted for every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Reasons with a non-zero count, with their counts.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&reason| (reason, self.get(reason)))
            .filter(|&(_, count)| count > 0)
    }
}

/// Receive figures of one SSRC (RFC 3550 §A.3, §A.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStats {
    /// The source.
    pub ssrc: Ssrc,
    /// Packets received in its current number space, duplicates excluded.
    pub received: u64,
    /// Packets expected in its current number space.
    pub expected: u64,
    /// Packets lost in its current number space.
    pub lost: i64,
    /// Duplicates received.
    pub duplicates: u64,
    /// Interarrival jitter.
    pub jitter: Duration,
}

/// Receive figures of one call, for metrics, RTCP and the call record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveStats {
    /// RTP packets accepted (audio, comfort noise and events), duplicates excluded.
    pub received: u64,
    /// Packets lost, summed over sources (RFC 3550 §A.3: expected minus received).
    pub lost: i64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Packets the jitter buffer declared lost at playout time.
    pub concealed: u64,
    /// Interarrival jitter of the source being played.
    pub jitter: Duration,
    /// Datagrams dropped, by reason.
    pub drops: DropCounts,
    /// Distinct SSRCs seen.
    pub ssrcs_seen: u32,
    /// Times the played source changed.
    pub source_changes: u32,
    /// Times a source re-synced its sequence numbers.
    pub resyncs: u32,
    /// Times the peer address was latched or moved.
    pub latch_moves: u32,
    /// Each known source.
    pub sources: Vec<SourceStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_index_their_own_slot() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason}");
        }
    }

    #[test]
    fn counts_add_per_reason() {
        let mut counts = DropCounts::default();
        counts.add(DropReason::Late);
        counts.add(DropReason::Late);
        counts.add(DropReason::Stun);
        assert_eq!(counts.get(DropReason::Late), 2);
        assert_eq!(counts.get(DropReason::Stun), 1);
        assert_eq!(counts.get(DropReason::Malformed), 0);
        assert_eq!(counts.total(), 3);
        assert_eq!(counts.iter().count(), 2);
    }
}
