//! Sorting datagrams that arrive on an RTP port: RTP, RTCP on a muxed port, STUN, and
//! everything else, which is dropped with a reason.

use super::packet::{PacketError, RtpPacket};
use super::stats::DropReason;

/// STUN magic cookie (RFC 5389 §6).
const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// Length of the STUN message header.
const STUN_HEADER_LEN: usize = 20;

/// Kind of a datagram received on an RTP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// An RTP packet with a non-empty payload.
    Rtp(RtpPacket<'a>),
    /// An RTCP compound packet; only returned when rtcp-mux is in use.
    Rtcp(&'a [u8]),
    /// A STUN message (for example an ICE connectivity check or a NAT keepalive).
    Stun(&'a [u8]),
}

/// Classifies one datagram received on an RTP port.
///
/// The first byte decides the protocol as RFC 7983 §7 lays out: 0-3 STUN, 128-191 RTP or RTCP.
/// The second byte separates RTP from RTCP (RFC 5761 §4): RTCP packet types 192-223 fall
/// where an RTP marker bit plus payload types 64-95 would, and RTP avoids those types for that
/// reason. An RTP packet with no payload after the header is a NAT keepalive (RFC 6263) and is
/// dropped, since there is nothing to play.
pub fn classify(bytes: &[u8], rtcp_mux: bool) -> Result<Datagram<'_>, DropReason> {
    let Some(&first) = bytes.first() else {
        return Err(DropReason::Malformed);
    };
    match first {
        0..=3 => classify_stun(bytes),
        128..=191 => classify_rtp_or_rtcp(bytes, rtcp_mux),
        64..=127 => Err(DropReason::Version),
        _ => Err(DropReason::NotRtp),
    }
}

fn classify_stun(bytes: &[u8]) -> Result<Datagram<'_>, DropReason> {
    let is_stun = bytes.len() >= STUN_HEADER_LEN
        && bytes.get(4..8) == Some(&STUN_MAGIC_COOKIE[..])
        && bytes.len().is_multiple_of(4);
    if is_stun {
        Ok(Datagram::Stun(bytes))
    } else {
        Err(DropReason::NotRtp)
    }
}

fn classify_rtp_or_rtcp(bytes: &[u8], rtcp_mux: bool) -> Result<Datagram<'_>, DropReason> {
    let second = bytes.get(1).copied().unwrap_or(0);
    if (192..=223).contains(&second) {
        return if rtcp_mux {
            Ok(Datagram::Rtcp(bytes))
        } else {
            Err(DropReason::RtcpWithoutMux)
        };
    }
    let packet = RtpPacket::parse(bytes).map_err(|err| match err {
        PacketError::Version(_) => DropReason::Version,
        _ => DropReason::Malformed,
    })?;
    if packet.payload().is_empty() {
        return Err(DropReason::Keepalive);
    }
    Ok(Datagram::Rtp(packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(first: u8, second: u8, payload: usize) -> Vec<u8> {
        let mut bytes = vec![
            first, second, 0x13, 0x88, 0, 0x0C, 0x35, 0, 0xC0, 0xFF, 0xEE, 0x01,
        ];
        bytes.resize(12 + payload, 0xff);
        bytes
    }

    #[test]
    fn audio_packet_is_rtp() {
        let bytes = rtp(0x80, 0x00, 160);
        assert!(matches!(classify(&bytes, false), Ok(Datagram::Rtp(_))));
    }

    #[test]
    fn stun_binding_request_is_stun() {
        let mut bytes = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
        bytes.resize(20, 0x5a);
        assert_eq!(classify(&bytes, false), Ok(Datagram::Stun(&bytes)));
    }

    #[test]
    fn stun_without_cookie_is_dropped() {
        let bytes = [0x00u8; 20];
        assert_eq!(classify(&bytes, false), Err(DropReason::NotRtp));
    }

    #[test]
    fn rtcp_needs_mux() {
        let bytes = [0x80, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(classify(&bytes, false), Err(DropReason::RtcpWithoutMux));
        assert_eq!(classify(&bytes, true), Ok(Datagram::Rtcp(&bytes)));
    }

    #[test]
    fn marker_with_low_payload_type_stays_rtp() {
        let bytes = rtp(0x80, 0x80 | 0x08, 160);
        assert!(matches!(classify(&bytes, true), Ok(Datagram::Rtp(_))));
    }

    #[test]
    fn keepalive_is_dropped() {
        let bytes = rtp(0x80, 0x00, 0);
        assert_eq!(classify(&bytes, false), Err(DropReason::Keepalive));
    }

    #[test]
    fn version_one_is_dropped() {
        let bytes = rtp(0x40, 0x00, 160);
        assert_eq!(classify(&bytes, false), Err(DropReason::Version));
    }

    #[test]
    fn malformed_padding_is_dropped() {
        let bytes = rtp(0xA0, 0x00, 0);
        assert_eq!(classify(&bytes, false), Err(DropReason::Malformed));
    }

    #[test]
    fn dtls_and_empty_are_dropped() {
        assert_eq!(classify(&[22, 254, 253], false), Err(DropReason::NotRtp));
        assert_eq!(classify(&[], false), Err(DropReason::Malformed));
    }
}
