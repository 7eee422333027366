//! Seeded random and mutated byte strings for every parser and for a whole session: nothing
//! may panic, and the session's state stays bounded whatever arrives.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use voicegate::rtp::{EventGenerator, parse_everything};

use crate::harness::{Call, addr, audio};

const ROUNDS: usize = 60_000;

/// Valid datagrams of every kind, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![audio(0x1234, 1, 0)];
    let mut padded = audio(0x1234, 2, 160);
    padded[0] |= 0x20;
    padded.extend_from_slice(&[0, 0, 0, 4]);
    seeds.push(padded);
    let mut extended = vec![0x92, 0x00, 0, 3, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
    extended.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
    extended.extend_from_slice(&[
        0x10, 0x00, 0x00, 0x02, 0x01, 0x02, 0xAA, 0xBB, 0x00, 0x00, 0x00, 0x00,
    ]);
    extended.extend_from_slice(&[0xFF; 40]);
    seeds.push(extended);
    let mut generator = EventGenerator::new(4, 10, 800, 160);
    if let Some((payload, _)) = generator.next_payload() {
        seeds.push(crate::harness::rtp(0x1234, 9, 320, 101, true, &payload));
    }
    let mut rtcp = vec![0x81, 200, 0, 12];
    rtcp.extend_from_slice(&[0x11; 48]);
    rtcp.extend_from_slice(&[
        0x81, 202, 0, 3, 0, 0, 0, 1, 1, 4, b'n', b'a', b'm', b'e', 0, 0,
    ]);
    rtcp.extend_from_slice(&[0x81, 203, 0, 2, 0, 0, 0, 1, 3, b'b', b'y', b'e']);
    seeds.push(rtcp);
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[0; 12]);
    seeds.push(stun);
    seeds
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..5) {
            0 if !bytes.is_empty() => {
                let at = rng.random_range(0..bytes.len());
                bytes[at] ^= 1 << rng.random_range(0..8);
            }
            1 if !bytes.is_empty() => {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            2 => {
                let keep = rng.random_range(0..=bytes.len());
                bytes.truncate(keep);
            }
            3 => {
                let extra = rng.random_range(0..64);
                bytes.extend((0..extra).map(|_| rng.random::<u8>()));
            }
            _ => {
                // Lengths and counts are where parsers go wrong: set one to its maximum.
                if bytes.len() > 3 {
                    let at = rng.random_range(0..4);
                    bytes[at] = 0xFF;
                }
            }
        }
    }
    bytes
}

fn random_bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..1600);
    (0..len).map(|_| rng.random()).collect()
}

#[test]
fn parsers_survive_random_and_mutated_input() {
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let seeds = seeds();
    let mut checksum = 0u64;
    for round in 0..ROUNDS {
        let bytes = if round % 3 == 0 {
            random_bytes(&mut rng)
        } else {
            let seed = &seeds[rng.random_range(0..seeds.len())];
            mutate(&mut rng, seed)
        };
        checksum = checksum.wrapping_add(parse_everything(&bytes));
    }
    // Every seed parses into something, so the checksum cannot stay at zero.
    assert_ne!(checksum, 0);
}

#[test]
fn session_survives_hostile_traffic() {
    let mut rng = StdRng::seed_from_u64(0xBAD);
    let seeds = seeds();
    let mut call = Call::pcmu(None);
    let peers = [addr("127.0.0.1:45000"), addr("127.0.0.1:45002")];
    let mut rtcp_out = [0u8; 1500];
    let mut now_ms = 0u64;
    for round in 0..20_000usize {
        now_ms += rng.random_range(0..5);
        let now = call.at(now_ms);
        let bytes = match round % 4 {
            0 => random_bytes(&mut rng),
            1 => audio(rng.random_range(0..4), rng.random(), rng.random()),
            _ => {
                let seed = &seeds[rng.random_range(0..seeds.len())];
                mutate(&mut rng, seed)
            }
        };
        let from = peers[rng.random_range(0..peers.len())];
        call.session.handle_datagram(now, from, &bytes);
        call.session.handle_rtcp_datagram(now, from, &bytes);
        while call.session.poll_event().is_some() {}
        if round % 5 == 0 {
            let _ = call.session.pop_playout(now);
            if call.session.poll_timeout() <= now {
                call.session.handle_timeout(now);
                let _ = call.session.poll_rtcp(now, &mut rtcp_out);
            }
        }
        assert!(call.session.jitter_buffer().len() <= 48, "round {round}");
        if round % 100 == 0 {
            assert!(call.session.stats().sources.len() <= 8, "round {round}");
        }
    }
    let stats = call.session.stats();
    assert!(stats.drops.total() > 0);
    assert!(
        call.session.jitter_buffer().target_delay(call.at(now_ms)) <= Duration::from_millis(200)
    );
}
