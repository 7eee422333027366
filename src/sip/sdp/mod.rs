//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.
//!
//! The dialog layer owns a [`LocalSession`] per call, which keeps our `o=` line and the last
//! description we sent, so that its version goes up by exactly one whenever our description
//! changes and stays put when it does not (RFC 3264 §8).

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

/// Media direction from our point of view.
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

/// The codec chosen for a call, with the peer's payload type number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedCodec {
    /// Which codec.
    pub name: CodecName,
    /// Payload type, as the offerer numbered it.
    pub payload_type: u8,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels announced in the rtpmap (2 for Opus, whatever the audio really has).
    pub channels: u8,
    /// Format parameters the peer gave for this payload type (`maxplaybackrate`, `stereo`, ...).
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
    /// Packet time the peer asked for, in milliseconds.
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
