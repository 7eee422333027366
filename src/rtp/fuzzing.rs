//! One entry point that runs every parser of the RTP layer over arbitrary bytes, for fuzz
//! targets and the randomised tests.

use super::classify::{Datagram, classify};
use super::dtmf::TelephoneEvent;
use super::packet::RtpPacket;
use super::rtcp::{RtcpPacket, parse_compound};

/// Parses `bytes` as an RTP datagram (with and without rtcp-mux), an RTP packet, an RTCP
/// compound and a telephone-event payload, and reads every field and nested element that
/// parsed. Returns a checksum of what was read so that nothing is optimised away. Never
/// panics and allocates nothing.
pub fn parse_everything(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    for mux in [false, true] {
        match classify(bytes, mux) {
            Ok(Datagram::Rtp(packet)) => sum = sum.wrapping_add(read_rtp(&packet)),
            Ok(Datagram::Rtcp(compound)) => sum = sum.wrapping_add(read_rtcp(compound)),
            Ok(Datagram::Stun(stun)) => sum = sum.wrapping_add(stun.len() as u64),
            Err(reason) => sum = sum.wrapping_add(reason as u64),
        }
    }
    if let Ok(packet) = RtpPacket::parse(bytes) {
        sum = sum.wrapping_add(read_rtp(&packet));
    }
    sum = sum.wrapping_add(read_rtcp(bytes));
    if let Ok(event) = TelephoneEvent::parse(bytes) {
        sum = sum.wrapping_add(u64::from(event.duration) + u64::from(event.event));
    }
    sum
}

fn read_rtp(packet: &RtpPacket<'_>) -> u64 {
    let mut sum = u64::from(packet.seq().0)
        + u64::from(packet.timestamp())
        + u64::from(packet.ssrc().0)
        + u64::from(packet.pt().0)
        + packet.payload().len() as u64
        + u64::from(packet.marker());
    for csrc in packet.csrcs() {
        sum = sum.wrapping_add(u64::from(csrc.0));
    }
    if let Some(extension) = packet.extension() {
        for element in extension.elements() {
            sum = sum.wrapping_add(u64::from(element.id) + element.data.len() as u64);
        }
    }
    sum
}

fn read_rtcp(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    for packet in parse_compound(bytes) {
        let Ok(packet) = packet else {
            sum = sum.wrapping_add(1);
            continue;
        };
        sum = sum.wrapping_add(match packet {
            RtcpPacket::SenderReport(sr) => {
                sr.blocks.map(|b| u64::from(b.jitter)).sum::<u64>() + sr.ntp
            }
            RtcpPacket::ReceiverReport(rr) => {
                rr.blocks.map(|b| u64::from(b.extended_highest)).sum()
            }
            RtcpPacket::SourceDescription(sdes) => sdes
                .chunks()
                .map(|chunk| {
                    chunk
                        .items()
                        .map(|item| item.value.len() as u64)
                        .sum::<u64>()
                })
                .sum(),
            RtcpPacket::Goodbye(bye) => {
                bye.ssrcs().count() as u64 + bye.reason.map_or(0, |r| r.len() as u64)
            }
            RtcpPacket::App(app) => app.data.len() as u64,
            RtcpPacket::Other { body, .. } => body.len() as u64,
        });
    }
    sum
}
