//! Round trips between the RTCP writers and the parser, malformed input, and round-trip time.

use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::rtp::ids::Ssrc;
use crate::rtp::sender::SenderCounts;

fn block(ssrc: u32, lost: i32) -> ReportBlock {
    ReportBlock {
        ssrc: Ssrc(ssrc),
        fraction_lost: 25,
        cumulative_lost: lost,
        extended_highest: 0x0001_0005,
        jitter: 80,
        last_sr: 0x1234_5678,
        delay_since_last_sr: 0x0001_8000,
    }
}

fn counts() -> SenderCounts {
    SenderCounts {
        rtp_timestamp: 160_000,
        packets: 1000,
        octets: 160_000,
    }
}

#[test]
fn sender_report_round_trips() {
    let mut out = [0u8; 256];
    let blocks = [block(7, 3), block(8, -2)];
    let len =
        write_sender_report(&mut out, Ssrc(1), 0xAABB_CCDD_0011_2233, counts(), &blocks).unwrap();
    assert_eq!(len, 28 + 48);
    let packets: Vec<_> = parse_compound(&out[..len]).collect();
    assert_eq!(packets.len(), 1);
    let Ok(RtcpPacket::SenderReport(sr)) = &packets[0] else {
        panic!("{:?}", packets[0]);
    };
    assert_eq!(sr.ssrc, Ssrc(1));
    assert_eq!(sr.ntp, 0xAABB_CCDD_0011_2233);
    assert_eq!(sr.rtp_timestamp, 160_000);
    assert_eq!(sr.packets, 1000);
    assert_eq!(sr.octets, 160_000);
    let parsed: Vec<_> = sr.blocks.clone().collect();
    assert_eq!(parsed, blocks.to_vec());
}

#[test]
fn compound_of_rr_sdes_bye_parses() {
    let mut out = [0u8; 256];
    let mut len = write_receiver_report(&mut out, Ssrc(2), &[block(9, 0x7F_FFFF)]).unwrap();
    len += write_sdes_cname(&mut out[len..], Ssrc(2), "voicegate@node-1").unwrap();
    len += write_bye(&mut out[len..], &[Ssrc(2)], "call ended").unwrap();
    assert_eq!(len % 4, 0);

    let packets: Vec<_> = parse_compound(&out[..len])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(packets.len(), 3);
    let RtcpPacket::ReceiverReport(rr) = &packets[0] else {
        panic!("{:?}", packets[0]);
    };
    assert_eq!(rr.ssrc, Ssrc(2));
    assert_eq!(rr.blocks.clone().next().unwrap().cumulative_lost, 0x7F_FFFF);
    let RtcpPacket::SourceDescription(sdes) = &packets[1] else {
        panic!("{:?}", packets[1]);
    };
    let chunk = sdes.chunks().next().unwrap();
    assert_eq!(chunk.ssrc, Ssrc(2));
    assert_eq!(chunk.cname(), Some(&b"voicegate@node-1"[..]));
    let RtcpPacket::Goodbye(bye) = &packets[2] else {
        panic!("{:?}", packets[2]);
    };
    assert_eq!(bye.ssrcs().collect::<Vec<_>>(), vec![Ssrc(2)]);
    assert_eq!(bye.reason, Some(&b"call ended"[..]));
}

#[test]
fn negative_loss_sign_extends() {
    let mut out = [0u8; 64];
    let len = write_receiver_report(&mut out, Ssrc(2), &[block(9, -5)]).unwrap();
    let Some(Ok(RtcpPacket::ReceiverReport(rr))) = parse_compound(&out[..len]).next() else {
        panic!("not a receiver report");
    };
    assert_eq!(rr.blocks.clone().next().unwrap().cumulative_lost, -5);
}

#[test]
fn cname_padding_is_aligned_for_every_length() {
    for n in 0..12 {
        let name = "x".repeat(n);
        let mut out = [0xEEu8; 64];
        let len = write_sdes_cname(&mut out, Ssrc(3), &name).unwrap();
        assert_eq!(len % 4, 0, "length {n}");
        let Some(Ok(RtcpPacket::SourceDescription(sdes))) = parse_compound(&out[..len]).next()
        else {
            panic!("length {n}");
        };
        assert_eq!(sdes.chunks().next().unwrap().cname(), Some(name.as_bytes()));
    }
}

#[test]
fn unknown_and_app_packets_are_skipped() {
    let mut bytes = vec![0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
    bytes.extend_from_slice(&[0x80, 204, 0, 2, 0, 0, 0, 5, b'T', b'E', b'S', b'T']);
    let mut out = [0u8; 64];
    let len = write_receiver_report(&mut out, Ssrc(4), &[]).unwrap();
    bytes.extend_from_slice(&out[..len]);
    let packets: Vec<_> = parse_compound(&bytes).collect::<Result<_, _>>().unwrap();
    assert!(matches!(
        packets[0],
        RtcpPacket::Other {
            packet_type: 205,
            count: 1,
            ..
        }
    ));
    assert!(matches!(
        packets[1],
        RtcpPacket::App(App {
            name: [b'T', b'E', b'S', b'T'],
            ..
        })
    ));
    assert!(matches!(packets[2], RtcpPacket::ReceiverReport(_)));
}

#[test]
fn malformed_packets_report_errors() {
    let cases: [(&[u8], RtcpError); 5] = [
        (&[0x80, 201], RtcpError::TooShort(2)),
        (&[0x40, 201, 0, 1, 0, 0, 0, 0], RtcpError::Version(1)),
        (
            &[0x80, 201, 0, 9, 0, 0, 0, 0],
            RtcpError::Length {
                words: 10,
                available: 8,
            },
        ),
        (
            &[0x81, 201, 0, 1, 0, 0, 0, 0],
            RtcpError::Count {
                packet_type: 201,
                count: 1,
            },
        ),
        (&[0xA0, 201, 0, 1, 0, 0, 0, 9], RtcpError::Padding(9)),
    ];
    for (bytes, expected) in cases {
        let first = parse_compound(bytes).next().unwrap();
        assert_eq!(first.unwrap_err(), expected, "{bytes:?}");
        assert_eq!(parse_compound(bytes).count(), 1, "{bytes:?}");
    }
}

#[test]
fn truncated_sdes_and_bye_do_not_panic() {
    let sdes = [0x81, 202, 0, 1, 0, 0, 0, 1];
    let Some(Ok(RtcpPacket::SourceDescription(description))) = parse_compound(&sdes).next() else {
        panic!("sdes");
    };
    assert_eq!(description.chunks().count(), 0);
    let bye = [0x82, 203, 0, 1, 0, 0, 0, 1];
    assert!(matches!(
        parse_compound(&bye).next(),
        Some(Err(RtcpError::Count { .. }))
    ));
}

#[test]
fn writers_reject_small_buffers() {
    let mut out = [0u8; 20];
    assert!(write_sender_report(&mut out, Ssrc(1), 0, counts(), &[]).is_err());
    assert!(write_receiver_report(&mut out[..4], Ssrc(1), &[]).is_err());
    assert!(write_sdes_cname(&mut out[..8], Ssrc(1), "name").is_err());
    assert!(write_bye(&mut out[..4], &[Ssrc(1)], "").is_err());
}

#[test]
fn round_trip_time_from_lsr_and_dlsr() {
    let start = Instant::now();
    let clock = NtpClock::new(start, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let our_ssrc = Ssrc(0x0BAD);
    let mut peer = PeerReports::new(our_ssrc, 8000);

    // We send an SR at t=0; the peer keeps it 300 ms and reports back; it arrives at t=380 ms,
    // so the round trip is 80 ms.
    let sr_ntp = clock.ntp(start);
    let report = ReportBlock {
        ssrc: our_ssrc,
        fraction_lost: 12,
        cumulative_lost: 4,
        extended_highest: 500,
        jitter: 160,
        last_sr: compact(sr_ntp),
        delay_since_last_sr: duration_to_compact(Duration::from_millis(300)),
    };
    let mut out = [0u8; 64];
    let len = write_receiver_report(&mut out, Ssrc(0x5EE), &[report]).unwrap();
    let arrival = start + Duration::from_millis(380);
    peer.handle_compound(arrival, clock.ntp(arrival), &out[..len])
        .unwrap();

    let latest = peer.latest().unwrap();
    assert_eq!(latest.reporter, Ssrc(0x5EE));
    assert_eq!(latest.fraction_lost, 12);
    assert_eq!(latest.cumulative_lost, 4);
    assert_eq!(latest.jitter, Duration::from_millis(20));
    let rtt = latest.round_trip.unwrap();
    assert!(
        rtt >= Duration::from_millis(79) && rtt <= Duration::from_millis(81),
        "{rtt:?}"
    );
}

#[test]
fn report_without_lsr_has_no_round_trip() {
    let start = Instant::now();
    let mut peer = PeerReports::new(Ssrc(1), 8000);
    let report = ReportBlock {
        ssrc: Ssrc(1),
        ..ReportBlock::default()
    };
    let mut out = [0u8; 64];
    let len = write_receiver_report(&mut out, Ssrc(2), &[report]).unwrap();
    peer.handle_compound(start, 0, &out[..len]).unwrap();
    assert_eq!(peer.latest().unwrap().round_trip, None);
}

#[test]
fn peer_sender_report_feeds_our_lsr_dlsr() {
    let start = Instant::now();
    let mut peer = PeerReports::new(Ssrc(1), 8000);
    let mut out = [0u8; 64];
    let ntp = 0x0000_1111_2222_0000u64;
    let len = write_sender_report(&mut out, Ssrc(9), ntp, counts(), &[]).unwrap();
    peer.handle_compound(start, 0, &out[..len]).unwrap();
    let (lsr, dlsr) = peer.last_sr_fields(Ssrc(9), start + Duration::from_millis(500));
    assert_eq!(lsr, 0x1111_2222);
    assert_eq!(dlsr, 32_768);
    assert_eq!(peer.last_sr_fields(Ssrc(10), start), (0, 0));
}

#[test]
fn bye_is_recorded() {
    let mut out = [0u8; 64];
    let len = write_bye(&mut out, &[Ssrc(77)], "").unwrap();
    let mut peer = PeerReports::new(Ssrc(1), 8000);
    peer.handle_compound(Instant::now(), 0, &out[..len])
        .unwrap();
    assert!(peer.said_goodbye(Ssrc(77)));
    assert!(!peer.said_goodbye(Ssrc(78)));
}
