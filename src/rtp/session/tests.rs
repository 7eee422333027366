//! Unit tests of the session's plumbing; the field scenarios live in `tests/rtp.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::rtp::ids::{Pt, SeqNo, Ssrc};
use crate::rtp::jitter::PlayoutItem;
use crate::rtp::packet::RtpHeader;
use crate::rtp::rtcp::{RtcpPacket, parse_compound};

const PEER: &str = "127.0.0.1:40000";

fn peer() -> SocketAddr {
    PEER.parse().unwrap()
}

fn session() -> (RtpSession, Instant) {
    let payloads = PayloadTable::new()
        .with_audio(Pt(0), 8000, Some(g711_duration))
        .with_telephone_event(Pt(101), 8000);
    let mut config = SessionConfig::new(
        &RtpConfig::default(),
        payloads,
        Duration::from_millis(20),
        true,
    );
    config.seed = 9;
    config.cname = "voicegate@test".into();
    let start = Instant::now();
    (RtpSession::new(config, start, UNIX_EPOCH), start)
}

fn rtp(ssrc: u32, seq: u16, ts: u32, pt: u8) -> Vec<u8> {
    let header = RtpHeader {
        marker: false,
        pt: Pt(pt),
        seq: SeqNo(seq),
        timestamp: ts,
        ssrc: Ssrc(ssrc),
    };
    let mut out = vec![0u8; 172];
    let len = header.write(&[0x55; 160], &mut out).unwrap();
    out.truncate(len);
    out
}

#[test]
fn first_packets_play_after_validation() {
    let (mut s, start) = session();
    let mut played = Vec::new();
    for i in 0..10u16 {
        let now = start + Duration::from_millis(20 * u64::from(i));
        let received = s.handle_datagram(now, peer(), &rtp(7, 100 + i, 160 * u32::from(i), 0));
        assert_eq!(received, Received::Media);
        if let PlayoutItem::Packet(p) = s.pop_playout(now) {
            played.push(p.index.0);
        }
    }
    assert_eq!(played, (0..9).collect::<Vec<_>>());
    assert_eq!(s.active_source(), Some(Ssrc(7)));
    assert_eq!(
        s.poll_event(),
        Some(SessionEvent::SourceChanged {
            previous: None,
            current: Ssrc(7)
        })
    );
    assert_eq!(s.destination(), Some(peer()));
    let stats = s.stats();
    assert_eq!(stats.received, 10);
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.ssrcs_seen, 1);
}

#[test]
fn report_carries_block_and_cname() {
    let (mut s, start) = session();
    for i in 0..50u16 {
        let now = start + Duration::from_millis(20 * u64::from(i));
        s.handle_datagram(now, peer(), &rtp(7, 100 + i, 160 * u32::from(i), 0));
    }
    let mut out = [0u8; 1500];
    let mut now = start;
    let len = loop {
        now = s.poll_timeout().max(now);
        if let Some(len) = s.poll_rtcp(now, &mut out) {
            break len;
        }
    };
    let packets: Vec<_> = parse_compound(&out[..len])
        .collect::<Result<_, _>>()
        .unwrap();
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!("expected an RR before we sent anything: {:?}", packets[0]);
    };
    assert_eq!(rr.ssrc, s.sender().ssrc());
    let block = rr.blocks.clone().next().unwrap();
    assert_eq!(block.ssrc, Ssrc(7));
    assert_eq!(block.extended_highest, 149);
    assert_eq!(block.cumulative_lost, 0);
    let RtcpPacket::SourceDescription(sdes) = &packets[1] else {
        panic!("{:?}", packets[1]);
    };
    assert_eq!(
        sdes.chunks().next().unwrap().cname(),
        Some(&b"voicegate@test"[..])
    );
}

#[test]
fn report_after_sending_is_sender_report() {
    let (mut s, start) = session();
    let mut packet = [0u8; 200];
    s.sender_mut()
        .write_audio(start, Pt(0), 160, &[0xff; 160], &mut packet)
        .unwrap();
    let mut out = [0u8; 1500];
    let len = s.write_goodbye(start, &mut out, "bye").unwrap();
    let packets: Vec<_> = parse_compound(&out[..len])
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(matches!(packets[0], RtcpPacket::SenderReport(_)));
    assert!(matches!(packets[2], RtcpPacket::Goodbye(_)));
}

#[test]
fn ssrc_collision_changes_ours() {
    let (mut s, start) = session();
    let ours = s.sender().ssrc();
    s.handle_datagram(start, peer(), &rtp(ours.0, 1, 0, 0));
    let event = s.poll_event();
    let Some(SessionEvent::SsrcCollision { old, new }) = event else {
        panic!("{event:?}");
    };
    assert_eq!(old, ours);
    assert_ne!(new, ours);
    assert_eq!(s.sender().ssrc(), new);
}

#[test]
fn own_packets_echoed_back_change_our_ssrc_once() {
    let (mut s, start) = session();
    let first = s.sender().ssrc();
    // An echo peer returns what we sent: first with our original SSRC, then with the new one.
    s.handle_datagram(start, peer(), &rtp(first.0, 1, 0, 0));
    let second = s.sender().ssrc();
    assert_ne!(second, first);
    for seq in 2..50u16 {
        let now = start + Duration::from_millis(20 * u64::from(seq));
        let ssrc = if seq < 10 { first } else { second };
        s.handle_datagram(now, peer(), &rtp(ssrc.0, seq, u32::from(seq) * 160, 0));
    }
    assert_eq!(
        s.sender().ssrc(),
        second,
        "the loop must not change our SSRC again"
    );
    let collisions = std::iter::from_fn(|| s.poll_event())
        .filter(|event| matches!(event, SessionEvent::SsrcCollision { .. }))
        .count();
    assert_eq!(collisions, 1);
    assert_eq!(s.stats().drops.get(DropReason::Loop), 48);
}

#[test]
fn rtcp_from_stranger_is_dropped() {
    let (mut s, start) = session();
    s.handle_datagram(start, peer(), &rtp(7, 1, 0, 0));
    let mut out = [0u8; 64];
    let len = crate::rtp::rtcp::write_bye(&mut out, &[Ssrc(7)], "").unwrap();
    let stranger: SocketAddr = "127.0.0.2:40001".parse().unwrap();
    assert_eq!(
        s.handle_rtcp_datagram(start, stranger, &out[..len]),
        Received::Dropped(DropReason::ForeignAddress)
    );
    let peer_rtcp: SocketAddr = "127.0.0.1:40001".parse().unwrap();
    assert_eq!(
        s.handle_rtcp_datagram(start, peer_rtcp, &out[..len]),
        Received::Control
    );
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&SessionEvent::Goodbye { ssrc: Ssrc(7) }));
}

#[test]
fn metrics_publish_deltas() {
    let (mut s, start) = session();
    s.handle_datagram(start, peer(), &[0x40, 0, 0, 0]);
    s.publish_metrics();
    s.publish_metrics();
    let text = crate::observability::render_metrics();
    assert!(
        text.contains("voicegate_rtp_packets_dropped_total"),
        "{text}"
    );
}
