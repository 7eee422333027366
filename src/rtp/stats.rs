//! Per-call receive statistics: packet counts, loss, jitter and drops by reason, for metrics,
//! RTCP and the call record.

use std::fmt;

/// Why a datagram received on an RTP port was not played.
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
    /// A payload type that was not negotiated for this call (RFC 3550 §5.1 says to ignore it).
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
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 14] = [
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
