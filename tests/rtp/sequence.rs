//! Sequence numbers: the 16-bit wrap with reordering, a backward re-anchor on the same SSRC,
//! duplicates, and a straggler that arrives after its slot.

use voicegate::rtp::rtcp::{ReportBlock, RtcpPacket, parse_compound};
use voicegate::rtp::{DropReason, SessionEvent};

use crate::harness::{Arrival, Call, addr, audio, stream};

const PEER: &str = "127.0.0.1:41000";
const SSRC: u32 = 0x1A2B3C4D;

/// Runs the RTCP timer until a report comes out and returns its first report block.
pub fn first_report_block(call: &mut Call) -> ReportBlock {
    let mut out = [0u8; 1500];
    let mut now = call.at(0);
    for _ in 0..100 {
        now = call.session.poll_timeout().max(now);
        if let Some(len) = call.session.poll_rtcp(now, &mut out) {
            for packet in parse_compound(&out[..len]) {
                let blocks = match packet.expect("our own report parses") {
                    RtcpPacket::ReceiverReport(rr) => rr.blocks,
                    RtcpPacket::SenderReport(sr) => sr.blocks,
                    _ => continue,
                };
                if let Some(block) = blocks.clone().next() {
                    return block;
                }
            }
        }
    }
    panic!("no report block within 100 timer runs");
}

#[test]
fn wrap_with_reordering_plays_in_order() {
    let mut call = Call::pcmu(None);
    let at = |at_ms, seq, ts| Arrival {
        at_ms,
        from: addr(PEER),
        bytes: audio(SSRC, seq, ts),
    };
    let arrivals = vec![
        at(0, 65532, 1000),
        at(20, 65533, 1160),
        at(40, 65534, 1320),
        at(60, 0, 1640),
        at(75, 65535, 1480),
        at(100, 1, 1800),
        at(120, 2, 1960),
    ];
    call.run(arrivals, 400);

    assert_eq!(
        call.played_seqs(),
        vec![65532, 65533, 65534, 65535, 0, 1, 2]
    );
    assert_eq!(call.concealed_ticks(), 0);
    let stats = call.session.stats();
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.late, 0);
    assert_eq!(stats.sources[0].expected, 7);

    let block = first_report_block(&mut call);
    assert_eq!(block.ssrc.0, SSRC);
    assert_eq!(block.cumulative_lost, 0);
    assert_eq!(block.extended_highest, 65_536 + 2);
}

#[test]
fn backward_reanchor_resyncs_without_silence() {
    let mut call = Call::pcmu(None);
    let mut arrivals = stream(PEER, SSRC, 21_200, 50_000, 0, 95);
    // After 21294 the sequence jumps back to 12676 while the timestamps go on, for 10 s.
    let ts = 50_000 + 160 * 95;
    arrivals.extend(stream(PEER, SSRC, 12_676, ts, 1_900, 500));
    call.run(arrivals, 12_400);

    assert!(call.events.contains(&SessionEvent::Resynced {
        ssrc: voicegate::rtp::Ssrc(SSRC)
    }));
    let played = call.played_seqs();
    assert_eq!(played.len(), 95 + 500, "every packet plays once");
    let after = played
        .iter()
        .position(|&s| s == 12_676)
        .expect("re-anchored stream plays");
    assert_eq!(played[after - 1], 21_294);
    assert!(call.longest_gap_ms(100, 11_800) <= 60);
    assert_eq!(call.session.stats().resyncs, 1);
    assert_eq!(call.session.stats().drops.get(DropReason::Late), 0);
}

#[test]
fn duplicates_play_once_and_are_counted() {
    let mut call = Call::pcmu(None);
    let mut arrivals = Vec::new();
    for original in stream(PEER, SSRC, 300, 0, 0, 250) {
        let mut copy = original.clone();
        copy.at_ms += 1;
        arrivals.push(original);
        arrivals.push(copy);
    }
    call.run(arrivals, 5_400);

    let played = call.played_seqs();
    assert_eq!(played, (300..550).collect::<Vec<u16>>());
    let stats = call.session.stats();
    assert_eq!(stats.duplicates, 250);
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.received, 250);
}

#[test]
fn late_straggler_is_dropped_without_resync() {
    let mut call = Call::pcmu(None);
    let mut arrivals: Vec<Arrival> = stream(PEER, SSRC, 480, 0, 0, 100)
        .into_iter()
        .filter(|a| a.at_ms != 400)
        .collect();
    call.run(arrivals.clone(), 820);
    let played_519 = call
        .played()
        .iter()
        .find(|p| p.tag_seq == Some(519))
        .map(|p| p.at_ms)
        .expect("519 played");

    // Seq 500 turns up 400 ms after 519 was played.
    arrivals.clear();
    arrivals.push(Arrival {
        at_ms: played_519 + 400,
        from: addr(PEER),
        bytes: audio(SSRC, 500, 20 * 160),
    });
    arrivals.extend(
        stream(PEER, SSRC, 480, 0, 0, 200)
            .into_iter()
            .filter(|a| a.at_ms > 820),
    );
    call.run(arrivals, 4_200);

    assert!(!call.played_seqs().contains(&500));
    let stats = call.session.stats();
    assert_eq!(stats.late, 1);
    assert_eq!(stats.resyncs, 0);
    assert!(
        !call
            .events
            .iter()
            .any(|e| matches!(e, SessionEvent::Resynced { .. }))
    );
    let played = call.played_seqs();
    assert_eq!(played.last(), Some(&679));
}
