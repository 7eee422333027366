//! RTP header edge cases on one PCMU call: padding, header extensions (including length 0),
//! CSRCs, malformed padding, keepalives, STUN, a 1460-byte packet, comfort noise, a payload
//! type that was not negotiated, and RTP version 1.

use voicegate::rtp::{DropReason, Pt, Received};

use crate::harness::{Arrival, Call, Out, addr, audio, rtp, tagged_payload};

const PEER: &str = "127.0.0.1:43000";
const SSRC: u32 = 0xC0FF_EE01;
const FIRST_SEQ: u16 = 5000;
const FIRST_TS: u32 = 800_000;

/// Builds the fixed header with `first` as its first byte and `second` (marker and PT) next.
fn header(first: u8, second: u8, seq: u16) -> Vec<u8> {
    let ts = FIRST_TS + 160 * u32::from(seq - FIRST_SEQ);
    let mut bytes = vec![first, second];
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&ts.to_be_bytes());
    bytes.extend_from_slice(&SSRC.to_be_bytes());
    bytes
}

fn with_payload(mut bytes: Vec<u8>, seq: u16) -> Vec<u8> {
    bytes.extend_from_slice(&tagged_payload(SSRC, seq, 160));
    bytes
}

/// Builds the packets of the table in sequence order, each with its arrival time.
fn table() -> Vec<(char, u64, Vec<u8>)> {
    let mut a = with_payload(header(0xA0, 0x00, 5000), 5000);
    a.extend_from_slice(&[0, 0, 0, 4]);

    let mut b = header(0x90, 0x00, 5001);
    b.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x00]);
    let b = with_payload(b, 5001);

    let mut c = header(0x90, 0x00, 5002);
    c.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0xAA, 0x00, 0x00]);
    let c = with_payload(c, 5002);

    let mut d = header(0x82, 0x00, 5003);
    d.extend_from_slice(&[0, 0, 0, 0x11, 0, 0, 0, 0x22]);
    let d = with_payload(d, 5003);

    let e = header(0xA0, 0x00, 5004);

    let mut f = header(0xA0, 0x00, 5005);
    f.extend_from_slice(&[0x11; 19]);
    f.push(0xFF);

    let g = header(0x80, 0x00, 5006);

    let mut h = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    h.extend_from_slice(&[0x5A; 12]);

    let mut j = header(0x80, 0x0D, 5007);
    j.push(0x28);

    let k = with_payload(header(0x80, 0x7E, 5008), 5008);

    let mut i = header(0x80, 0x00, 5009);
    i.extend_from_slice(&tagged_payload(SSRC, 5009, 1460));

    let mut l = header(0x40, 0x00, 5010);
    l.extend_from_slice(&[0xFF; 160]);

    vec![
        ('a', 0, a),
        ('b', 20, b),
        ('c', 40, c),
        ('d', 60, d),
        ('e', 80, e),
        ('f', 100, f),
        ('g', 120, g),
        ('h', 130, h),
        ('j', 140, j),
        ('k', 160, k),
        ('i', 180, i),
        ('l', 200, l),
    ]
}

#[test]
fn header_edge_cases_follow_the_table() {
    let mut call = Call::pcmu(None);
    let mut arrivals: Vec<Arrival> = table()
        .into_iter()
        .map(|(_, at_ms, bytes)| Arrival {
            at_ms,
            from: addr(PEER),
            bytes,
        })
        .collect();
    // After the 182.5 ms packet the stream goes on at 20 ms.
    let resume_at = 180 + 183;
    let resume_ts = FIRST_TS + 160 * 9 + 1460;
    for n in 0..50u16 {
        arrivals.push(Arrival {
            at_ms: resume_at + 20 * u64::from(n),
            from: addr(PEER),
            bytes: audio(SSRC, 5010 + n, resume_ts + 160 * u32::from(n)),
        });
    }
    call.run(arrivals, 1_600);

    let outcome = |at_ms: u64| {
        call.received
            .iter()
            .find(|(t, _)| *t == at_ms)
            .map(|(_, r)| *r)
    };
    assert_eq!(
        outcome(80),
        Some(Received::Dropped(DropReason::Malformed)),
        "e"
    );
    assert_eq!(
        outcome(100),
        Some(Received::Dropped(DropReason::Malformed)),
        "f"
    );
    assert_eq!(
        outcome(120),
        Some(Received::Dropped(DropReason::Keepalive)),
        "g"
    );
    assert_eq!(outcome(130), Some(Received::Stun), "h");
    assert_eq!(
        outcome(160),
        Some(Received::Dropped(DropReason::UnknownPayloadType)),
        "k"
    );
    assert_eq!(
        outcome(200),
        Some(Received::Dropped(DropReason::Version)),
        "l"
    );

    let played = call.played();
    let by_seq = |seq: u16| played.iter().find(|p| p.tag_seq == Some(seq)).cloned();
    // a: padding stripped, the decoder gets exactly 160 bytes.
    assert_eq!(by_seq(5000).map(|p| p.len), Some(160), "a");
    // b, c, d: payload found after the extension or CSRCs.
    for seq in [5001, 5002, 5003] {
        assert_eq!(by_seq(seq).map(|p| p.len), Some(160), "seq {seq}");
    }
    // i: the long packet plays whole.
    assert_eq!(by_seq(5009).map(|p| p.len), Some(1460), "i");
    // j: comfort noise is silence at -40 dBov, never a decoded packet.
    assert!(played.iter().all(|p| p.pt != Pt(13)));
    assert!(call.outputs.iter().any(|(_, out)| matches!(
        out,
        Out::Silence {
            comfort_noise: Some(40),
            ..
        }
    )));
    // k and l never reach the decoder.
    assert!(played.iter().all(|p| p.pt == Pt(0)));
    assert!(played.iter().all(|p| p.len == 160 || p.len == 1460));

    // The ticks covered by the long packet play what was decoded from it, not loss.
    let i_at = by_seq(5009).unwrap().at_ms;
    let during: Vec<_> = call
        .outputs
        .iter()
        .filter(|(t, _)| *t > i_at && *t < i_at + 180)
        .map(|(_, out)| out.clone())
        .collect();
    assert!(during.iter().all(|o| *o == Out::Nothing), "{during:?}");
    assert!(by_seq(5059).is_some(), "stream goes on after i");

    let stats = call.session.stats();
    assert_eq!(stats.drops.get(DropReason::Malformed), 2);
    assert_eq!(stats.drops.get(DropReason::Keepalive), 1);
    assert_eq!(stats.drops.get(DropReason::Stun), 1);
    assert_eq!(stats.drops.get(DropReason::UnknownPayloadType), 1);
    assert_eq!(stats.drops.get(DropReason::Version), 1);
}

#[test]
fn unknown_payload_type_does_not_count_as_loss() {
    let mut call = Call::pcmu(None);
    let mut arrivals = Vec::new();
    for n in 0..20u16 {
        let bytes = if n == 10 {
            rtp(SSRC, 7000 + n, 160 * u32::from(n), 126, false, &[0; 160])
        } else {
            audio(SSRC, 7000 + n, 160 * u32::from(n))
        };
        arrivals.push(Arrival {
            at_ms: 20 * u64::from(n),
            from: addr(PEER),
            bytes,
        });
    }
    call.run(arrivals, 600);
    let stats = call.session.stats();
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.drops.get(DropReason::UnknownPayloadType), 1);
    assert_eq!(call.played().len(), 19);
}
