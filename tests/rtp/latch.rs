//! Symmetric RTP latching against RTP bleed: the SDP names a private address, media comes from
//! the NAT's public one, a stranger sprays loud packets, the NAT moves the port, and a single
//! spoofed packet tries to take over. Every address is a loopback value; nothing is sent.

use voicegate::rtp::{DropReason, Ssrc};

use crate::harness::{Arrival, Call, addr, audio, stream};

/// Stands in for the private address in the caller's SDP.
const SDP: &str = "127.0.10.23:4000";
/// Stands in for the caller's public NAT address.
const NAT: &str = "127.0.113.77:61234";
/// The same NAT after it rebound the caller to a new port.
const NAT_MOVED: &str = "127.0.113.77:61300";
/// A stranger spraying RTP at our ports.
const STRANGER: &str = "127.0.100.200:5555";
/// A spoofer that copies the caller's SSRC and next sequence number.
const SPOOFER: &str = "127.0.2.99:7000";

const CALLER: u32 = 0xABCD_0001;
const ATTACKER: u32 = 0xDEAD_0001;

/// 10 s of the caller's stream starting at `at_ms` with `seq`, from `from`.
fn caller(from: &str, seq: u16, at_ms: u64, count: u16) -> Vec<Arrival> {
    let ts = 160 * u32::from(seq.wrapping_sub(100));
    stream(from, CALLER, seq, ts, at_ms, count)
}

#[test]
fn nat_latch_resists_bleed_and_follows_rebinding() {
    let mut call = Call::pcmu(Some(addr(SDP)));
    assert_eq!(call.session.destination(), Some(addr(SDP)));

    // 1. t = 0-10 s: the caller's media arrives from the NAT address, not the SDP one.
    let mut arrivals = caller(NAT, 100, 0, 500);
    // 2. t = 10 s: a stranger sends 50 loud packets with its own SSRC.
    let loud = vec![0x00u8; 160];
    arrivals.extend((0..50u16).map(|i| Arrival {
        at_ms: 10_000 + 20 * u64::from(i) + 7,
        from: addr(STRANGER),
        bytes: crate::harness::rtp(ATTACKER, i, 160 * u32::from(i), 0, false, &loud),
    }));
    arrivals.extend(caller(NAT, 600, 10_000, 500));
    // 3. t = 20 s: the NAT moves the caller to a new port; SSRC and sequence go on.
    arrivals.extend(caller(NAT_MOVED, 1100, 20_000, 500));
    // 4. t = 30 s: one spoofed packet with the caller's SSRC and the next sequence number.
    arrivals.push(Arrival {
        at_ms: 30_000,
        from: addr(SPOOFER),
        bytes: audio(CALLER, 1600, 160 * 1500),
    });
    arrivals.extend(caller(NAT_MOVED, 1600, 30_010, 100));
    call.run(arrivals, 32_400);

    // 1. Latched at the first packet: our media goes to the NAT address.
    let first = call.received.first().map(|(_, r)| *r);
    assert_eq!(first, Some(voicegate::rtp::Received::Media));

    // 2. Not one of the stranger's packets reached playout; all 50 were counted.
    let played = call.played();
    assert!(played.iter().all(|p| p.ssrc == Ssrc(CALLER)));
    let stats = call.session.stats();
    assert!(stats.drops.get(DropReason::ForeignAddress) >= 50);
    assert_eq!(stats.ssrcs_seen, 1);

    // 3. The latch moved to the new port; the audio gap is at most the re-latch run.
    let gap = call.longest_gap_ms(20_000, 29_900);
    assert!(gap <= 120, "gap of {gap} ms");

    // 4. The spoofed packet did not move it; the caller's own packet 1600 was played.
    assert_eq!(call.session.destination(), Some(addr(NAT_MOVED)));
    assert_eq!(
        call.session.rtcp_destination(),
        Some(addr("127.0.113.77:61301"))
    );
    assert_eq!(stats.latch_moves, 2);
    assert!(call.played_seqs().contains(&1600));
}

#[test]
fn destination_follows_latch_before_and_after_first_packet() {
    let mut call = Call::pcmu(Some(addr(SDP)));
    call.run(caller(NAT, 100, 0, 1), 0);
    assert_eq!(call.session.destination(), Some(addr(NAT)));
}

#[test]
fn lenient_mode_plays_foreign_media_but_keeps_destination() {
    let payloads = voicegate::rtp::PayloadTable::new().with_audio(
        voicegate::rtp::Pt(0),
        8000,
        Some(voicegate::rtp::g711_duration),
    );
    let mut call = Call::with_payloads(payloads, false, Some(addr(SDP)));
    let mut arrivals = caller(NAT, 100, 0, 50);
    arrivals.extend(stream(STRANGER, ATTACKER, 1, 0, 1_000, 50));
    call.run(arrivals, 2_400);
    assert_eq!(call.session.destination(), Some(addr(NAT)));
    assert_eq!(call.played().len(), 100);
    assert!(call.played().iter().any(|p| p.ssrc == Ssrc(ATTACKER)));
}

#[test]
fn reinvite_opens_new_learning_window() {
    let mut call = Call::pcmu(Some(addr(SDP)));
    call.run(caller(NAT, 100, 0, 50), 1_000);
    let now = call.at(1_000);
    call.session.open_latch_window(now, Some(addr(NAT_MOVED)));
    // The peer's media now comes from a media gateway the new SDP did not name exactly.
    call.run(stream(STRANGER, 0x4444, 1, 0, 1_020, 50), 2_400);
    assert_eq!(call.session.destination(), Some(addr(STRANGER)));
    let played = call.played();
    assert_eq!(played.last().map(|p| p.ssrc), Some(Ssrc(0x4444)));
}
