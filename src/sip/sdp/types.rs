//! Types the dialog and media layers share: what we can offer and what a negotiation produced.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Audio codecs voicegate can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecName {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 (RTP clock 8000, sampling 16 kHz).
    G722,
    /// Opus (RFC 7587: always `opus/48000/2` in SDP).
    Opus,
}

impl CodecName {
    /// Every codec, in the order voicegate prefers them when nothing else is configured.
    pub const ALL: [CodecName; 4] = [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::Opus,
    ];

    /// Encoding name as written in `a=rtpmap` (RFC 3551 §6, RFC 7587 §7).
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecName::Pcmu => "PCMU",
            CodecName::Pcma => "PCMA",
            CodecName::G722 => "G722",
            CodecName::Opus => "opus",
        }
    }

    /// RTP clock rate in hertz. G.722 uses 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecName::Pcmu | CodecName::Pcma | CodecName::G722 => 8_000,
            CodecName::Opus => 48_000,
        }
    }

    /// Channel count written in `a=rtpmap`; RFC 7587 §7 fixes it at 2 for Opus whatever the
    /// audio really carries.
    pub fn rtpmap_channels(self) -> u8 {
        match self {
            CodecName::Opus => 2,
            CodecName::Pcmu | CodecName::Pcma | CodecName::G722 => 1,
        }
    }

    /// Static payload type from RFC 3551 Table 4, or `None` for codecs that need a dynamic one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            CodecName::Pcmu => Some(0),
            CodecName::Pcma => Some(8),
            CodecName::G722 => Some(9),
            CodecName::Opus => None,
        }
    }

    /// Lowercase name used in configuration and metric labels.
    pub fn config_name(self) -> &'static str {
        match self {
            CodecName::Pcmu => "pcmu",
            CodecName::Pcma => "pcma",
            CodecName::G722 => "g722",
            CodecName::Opus => "opus",
        }
    }
}

/// Media direction. In [`NegotiatedMedia`] it is our own direction; when read from an SDP
/// attribute it is the direction of the party that wrote that description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We send and receive.
    SendRecv,
    /// We only send.
    SendOnly,
    /// We only receive (the peer put us on hold).
    RecvOnly,
    /// Neither side sends.
    Inactive,
}

impl Direction {
    /// Attribute name (`sendrecv`, `sendonly`, `recvonly`, `inactive`; RFC 4566 §6).
    pub fn attribute_name(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name, ignoring ASCII case because some gateways write
    /// `a=SendOnly`; other names return `None`.
    pub fn from_attribute_name(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|direction| direction.attribute_name().eq_ignore_ascii_case(name))
    }

    /// Returns the same stream seen from the other end: `sendonly` and `recvonly` swap (RFC 3264 §6.1).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Returns whether this direction includes sending.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Returns whether this direction includes receiving.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The codec chosen for a call, with the peer's payload type number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Which codec.
    pub name: CodecName,
    /// Payload type used in both directions: the offerer's number when we answer, the
    /// answerer's number when we offered.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels announced in the rtpmap (2 for Opus, whatever the audio really has).
    pub channels: u8,
    /// Format parameters the peer gave for this payload type (`maxplaybackrate`, `stereo`, ...),
    /// keys in lowercase. They describe what the peer can receive, so the encoder honours them.
    pub fmtp: BTreeMap<String, String>,
}

/// RFC 4733 telephone-event negotiated alongside the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedDtmf {
    /// Payload type.
    pub payload_type: u8,
    /// Clock rate; always equal to the audio codec's.
    pub clock_rate: u32,
}

/// The outcome of an offer/answer exchange, as the media path needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP; `None` when the peer gave `c=0.0.0.0` or port 0 (hold).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (equal to `remote_rtp` with rtcp-mux).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port (RFC 5761), as both sides agreed.
    pub rtcp_mux: bool,
    /// The audio codec.
    pub codec: NegotiatedCodec,
    /// Telephone events, if both sides support them at the codec's clock rate.
    pub dtmf: Option<NegotiatedDtmf>,
    /// Packet time to send at, in milliseconds: the peer's `a=ptime`, else ours, and never
    /// above the peer's `a=maxptime`.
    pub ptime_ms: u32,
    /// Our direction.
    pub direction: Direction,
}

/// What we can offer or accept for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address for our `c=` line.
    pub addr: IpAddr,
    /// Our RTP port.
    pub port: u16,
    /// Codecs we accept, most preferred first.
    pub codecs: Vec<CodecName>,
    /// Packet time we send, in milliseconds.
    pub ptime_ms: u32,
    /// Offer or accept rtcp-mux.
    pub rtcp_mux: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_reversed_swaps_send_and_receive() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    }

    #[test]
    fn direction_attribute_names_round_trip() {
        for direction in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            let name = direction.attribute_name();
            assert_eq!(Direction::from_attribute_name(name), Some(direction));
        }
        assert_eq!(
            Direction::from_attribute_name("SendOnly"),
            Some(Direction::SendOnly)
        );
        assert_eq!(Direction::from_attribute_name("sendrecv2"), None);
    }

    #[test]
    fn g722_uses_8000_clock() {
        assert_eq!(CodecName::G722.clock_rate(), 8_000);
        assert_eq!(CodecName::G722.static_payload_type(), Some(9));
    }

    #[test]
    fn opus_rtpmap_has_two_channels() {
        assert_eq!(CodecName::Opus.rtpmap_channels(), 2);
        assert_eq!(CodecName::Opus.clock_rate(), 48_000);
        assert_eq!(CodecName::Opus.static_payload_type(), None);
    }
}
