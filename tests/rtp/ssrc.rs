//! SSRC changes mid-call: A → B → A with a lower sequence number, and an overlap where both
//! sources send at once.

use voicegate::rtp::rtcp::{RtcpPacket, parse_compound};
use voicegate::rtp::{DropReason, SessionEvent, Ssrc};

use crate::harness::{Call, stream};

const PEER: &str = "127.0.0.1:42000";
const A: u32 = 0x1111_1111;
const B: u32 = 0x2222_2222;

#[test]
fn session_follows_a_b_a_changes() {
    let mut call = Call::pcmu(None);
    let mut arrivals = stream(PEER, A, 3000, 10_000, 0, 100);
    arrivals.extend(stream(PEER, B, 50_000, 900_000, 2_000, 100));
    arrivals.extend(stream(PEER, A, 3400, 40_000, 4_000, 100));
    call.run(arrivals, 6_400);

    let changes: Vec<_> = call
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::SourceChanged { previous, current } => Some((*previous, *current)),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (None, Ssrc(A)),
            (Some(Ssrc(A)), Ssrc(B)),
            (Some(Ssrc(B)), Ssrc(A))
        ]
    );

    let played = call.played();
    assert_eq!(played.len(), 300, "every packet of every run plays");
    let order: Vec<(Ssrc, u16)> = played
        .iter()
        .map(|p| (p.ssrc, p.tag_seq.unwrap()))
        .collect();
    assert_eq!(order[99], (Ssrc(A), 3099));
    // B plays from its first packet, right after A's last.
    assert_eq!(order[100], (Ssrc(B), 50_000));
    assert_eq!(order[199], (Ssrc(B), 50_099));
    // A comes back with 3400 although that is below B's 50099.
    assert_eq!(order[200], (Ssrc(A), 3400));
    assert_eq!(order[299], (Ssrc(A), 3499));

    let resets: Vec<usize> = played
        .iter()
        .enumerate()
        .filter(|(_, p)| p.new_source)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        resets,
        vec![0, 100, 200],
        "decoder resets at each new source"
    );
    assert!(call.longest_gap_ms(100, 5_900) <= 40);
}

#[test]
fn overlap_prefers_newest_source_without_double_audio() {
    let mut call = Call::pcmu(None);
    // A sends 0..1060 ms; B starts at 1000 ms, so both send for 60 ms, interleaved.
    let mut arrivals = stream(PEER, A, 3000, 10_000, 0, 54);
    let mut b = stream(PEER, B, 50_000, 900_000, 1_000, 100);
    for arrival in &mut b {
        arrival.at_ms += 5;
    }
    arrivals.extend(b);
    call.run(arrivals, 3_400);

    let played = call.played();
    let first_b = played
        .iter()
        .position(|p| p.ssrc == Ssrc(B))
        .expect("B plays");
    assert!(
        played[first_b..].iter().all(|p| p.ssrc == Ssrc(B)),
        "no A audio after B took over"
    );
    assert_eq!(played[first_b].tag_seq, Some(50_000));
    assert_eq!(played.iter().filter(|p| p.ssrc == Ssrc(B)).count(), 100);
    assert!(call.session.stats().drops.get(DropReason::InactiveSource) >= 2);
}

#[test]
fn reports_cover_each_source() {
    let mut call = Call::pcmu(None);
    let mut arrivals = stream(PEER, A, 3000, 10_000, 0, 100);
    arrivals.extend(stream(PEER, B, 50_000, 900_000, 2_000, 100));
    call.run(arrivals, 4_400);

    let stats = call.session.stats();
    assert_eq!(stats.ssrcs_seen, 2);
    for source in &stats.sources {
        assert_eq!(source.received, 100, "{:?}", source.ssrc);
        assert_eq!(source.lost, 0, "{:?}", source.ssrc);
    }

    let mut out = [0u8; 1500];
    let mut now = call.at(4_400);
    let len = loop {
        now = call.session.poll_timeout().max(now);
        if let Some(len) = call.session.poll_rtcp(now, &mut out) {
            break len;
        }
    };
    let Some(Ok(RtcpPacket::ReceiverReport(rr))) = parse_compound(&out[..len]).next() else {
        panic!("expected a receiver report");
    };
    let mut reported: Vec<u32> = rr.blocks.map(|b| b.ssrc.0).collect();
    reported.sort_unstable();
    assert_eq!(reported, vec![A, B]);
}
