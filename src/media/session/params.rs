//! Stream parameters that the call layer gives a media session.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::simulated_echo::SimulatedEcho;
use crate::media::turn::BargeInSettings;
use crate::sip::sdp::{Direction, NegotiatedCodec, NegotiatedDtmf, NegotiatedMedia};

/// Parameters of one call's audio stream, built by the call layer from the SDP negotiation and
/// updated after every re-INVITE or UPDATE (hold, unhold, address change).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamParams {
    /// Peer's RTP address; `None` (or an unspecified address) sends nothing.
    pub remote_rtp: Option<SocketAddr>,
    /// Peer's RTCP address; ignored with rtcp-mux.
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Audio codec and its payload type.
    pub codec: NegotiatedCodec,
    /// RFC 4733 telephone-event payload type, when negotiated.
    pub dtmf: Option<NegotiatedDtmf>,
    /// Comfort noise (RFC 3389) payload type, when negotiated; silence is sent otherwise.
    pub comfort_noise_pt: Option<u8>,
    /// Packet time we send, in milliseconds (10, 20, 30, 40 or 60).
    pub ptime_ms: u32,
    /// Our media direction; anything but send-receive is a hold.
    pub direction: Direction,
    /// Accept RTP only from the latched source (the trunk's setting).
    pub strict_source: bool,
    /// Write a stereo WAV of the call here (caller left, AI right).
    pub record: Option<PathBuf>,
    /// Barge-in behaviour.
    pub barge_in: BargeInSettings,
    /// Echo of the audio we hear, mixed into what we send. Only the test caller sets it.
    pub simulated_echo: Option<SimulatedEcho>,
}

impl StreamParams {
    /// Builds parameters from a negotiation outcome.
    pub fn from_negotiated(
        media: &NegotiatedMedia,
        strict_source: bool,
        barge_in: BargeInSettings,
    ) -> Self {
        Self {
            remote_rtp: media.remote_rtp,
            remote_rtcp: media.remote_rtcp,
            rtcp_mux: media.rtcp_mux,
            codec: media.codec.clone(),
            dtmf: media.dtmf,
            comfort_noise_pt: None,
            ptime_ms: media.ptime_ms,
            direction: media.direction,
            strict_source,
            record: None,
            barge_in,
            simulated_echo: None,
        }
    }

    /// True when the stream is on hold in either direction.
    pub fn on_hold(&self) -> bool {
        self.direction != Direction::SendRecv
    }

    /// True when we may send RTP: our direction allows it and the peer gave an address.
    pub fn may_send(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::SendOnly)
            && self.send_address().is_some()
    }

    /// True when received audio is played to the AI loop.
    pub fn may_receive(&self) -> bool {
        matches!(self.direction, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Where RTP goes, unless the peer gave no usable address (RFC 3264 §8.4: `c=0.0.0.0`
    /// is the old way to hold).
    pub fn send_address(&self) -> Option<SocketAddr> {
        self.remote_rtp
            .filter(|addr| !addr.ip().is_unspecified() && addr.port() != 0)
    }

    /// Where RTCP goes.
    pub fn rtcp_address(&self) -> Option<SocketAddr> {
        if self.rtcp_mux {
            return self.send_address();
        }
        self.remote_rtcp
            .filter(|addr| !addr.ip().is_unspecified() && addr.port() != 0)
            .or_else(|| {
                // RFC 3550 §11: RTCP uses the next higher port when no a=rtcp line says
                // otherwise.
                let rtp = self.send_address()?;
                let port = rtp.port().checked_add(1)?;
                Some(SocketAddr::new(rtp.ip(), port))
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sip::sdp::CodecName;

    fn params(remote: &str, direction: Direction, rtcp_mux: bool) -> StreamParams {
        StreamParams {
            remote_rtp: Some(remote.parse().unwrap()),
            remote_rtcp: None,
            rtcp_mux,
            codec: NegotiatedCodec {
                name: CodecName::Pcmu,
                payload_type: 0,
                clock_rate: 8_000,
                channels: 1,
                fmtp: BTreeMap::new(),
            },
            dtmf: None,
            comfort_noise_pt: None,
            ptime_ms: 20,
            direction,
            strict_source: true,
            record: None,
            barge_in: BargeInSettings::default(),
            simulated_echo: None,
        }
    }

    #[test]
    fn unspecified_address_sends_nothing() {
        let held = params("0.0.0.0:4000", Direction::SendRecv, false);
        assert_eq!(held.send_address(), None);
        assert!(!held.may_send());
        assert_eq!(held.rtcp_address(), None);
    }

    #[test]
    fn rtcp_goes_to_next_port_without_mux() {
        let stream = params("127.0.0.1:4000", Direction::SendRecv, false);
        assert_eq!(
            stream.rtcp_address(),
            Some("127.0.0.1:4001".parse().unwrap())
        );
        let muxed = params("127.0.0.1:4000", Direction::SendRecv, true);
        assert_eq!(
            muxed.rtcp_address(),
            Some("127.0.0.1:4000".parse().unwrap())
        );
    }

    #[test]
    fn directions_decide_send_and_receive() {
        let cases = [
            (Direction::SendRecv, true, true, false),
            (Direction::SendOnly, true, false, true),
            (Direction::RecvOnly, false, true, true),
            (Direction::Inactive, false, false, true),
        ];
        for (direction, send, receive, hold) in cases {
            let stream = params("127.0.0.1:4000", direction, false);
            assert_eq!(stream.may_send(), send, "{direction:?} send");
            assert_eq!(stream.may_receive(), receive, "{direction:?} receive");
            assert_eq!(stream.on_hold(), hold, "{direction:?} hold");
        }
    }
}
