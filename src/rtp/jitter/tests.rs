//! Scenario tests of the jitter buffer on a virtual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::rtp::ids::{ExtSeq, Pt, Ssrc};
use crate::rtp::stats::DropReason;

const TICK: Duration = Duration::from_millis(20);

/// What one pop produced, without borrowed data.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Nothing,
    Packet { index: u64, new_source: bool },
    Lost { samples: u32, fec: bool },
    Silence { samples: u32, noise: Option<u8> },
}

struct Harness {
    buffer: JitterBuffer,
    start: Instant,
    payload: Vec<u8>,
}

impl Harness {
    fn new() -> Self {
        Self::with_delays(20, 200)
    }

    fn with_delays(min_ms: u64, max_ms: u64) -> Self {
        let config = JitterConfig {
            clock_rate: 8000,
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(max_ms),
            tick: TICK,
            packet_time: TICK,
        };
        Harness {
            buffer: JitterBuffer::new(config),
            start: Instant::now(),
            payload: vec![0xff; 160],
        }
    }

    fn at(&self, millis: u64) -> Instant {
        self.start + Duration::from_millis(millis)
    }

    fn push_kind(
        &mut self,
        arrival_ms: u64,
        index: u64,
        ts: u32,
        kind: PayloadKind,
        marker: bool,
    ) -> Result<(), DropReason> {
        let now = self.at(arrival_ms);
        let packet = Incoming {
            index: ExtSeq(index),
            timestamp: ts,
            pt: if kind == PayloadKind::ComfortNoise {
                Pt(13)
            } else {
                Pt(0)
            },
            marker,
            ssrc: Ssrc(1),
            kind,
            payload: if kind == PayloadKind::ComfortNoise {
                &[40]
            } else {
                &self.payload
            },
            duration: None,
        };
        self.buffer.push(now, packet)
    }

    fn push(&mut self, arrival_ms: u64, index: u64, ts: u32) -> Result<(), DropReason> {
        self.push_kind(arrival_ms, index, ts, PayloadKind::Audio, false)
    }

    fn pop(&mut self, at_ms: u64) -> Out {
        let now = self.at(at_ms);
        match self.buffer.pop(now) {
            PlayoutItem::Nothing => Out::Nothing,
            PlayoutItem::Packet(p) => Out::Packet {
                index: p.index.0,
                new_source: p.new_source,
            },
            PlayoutItem::Lost { samples, fec } => Out::Lost {
                samples,
                fec: fec.is_some(),
            },
            PlayoutItem::Silence {
                samples,
                comfort_noise,
            } => Out::Silence {
                samples,
                noise: comfort_noise,
            },
        }
    }

    /// Pops every 20 ms from `from_ms` to `to_ms` (exclusive) and returns the indexes played.
    fn played(&mut self, from_ms: u64, to_ms: u64) -> Vec<u64> {
        (from_ms..to_ms)
            .step_by(20)
            .filter_map(|t| match self.pop(t) {
                Out::Packet { index, .. } => Some(index),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn steady_stream_plays_in_order_after_min_delay() {
    let mut h = Harness::new();
    for i in 0..10u64 {
        h.push(20 * i, i, 160 * i as u32).unwrap();
    }
    assert_eq!(h.pop(0), Out::Nothing);
    assert_eq!(h.pop(19), Out::Nothing);
    assert_eq!(
        h.pop(20),
        Out::Packet {
            index: 0,
            new_source: true
        }
    );
    assert_eq!(h.played(40, 220), (1..10).collect::<Vec<_>>());
    assert_eq!(h.buffer.stats().concealed, 0);
    assert_eq!(h.buffer.stats().played, 10);
}

#[test]
fn reordered_packet_plays_in_order() {
    let mut h = Harness::new();
    let arrivals = [
        (0, 0),
        (20, 1),
        (40, 2),
        (60, 4),
        (75, 3),
        (80, 5),
        (100, 6),
    ];
    let mut played = Vec::new();
    for t in 0..200u64 {
        for &(at, index) in &arrivals {
            if at == t {
                h.push(at, index, 160 * index as u32).unwrap();
            }
        }
        if t % 20 == 0
            && let Out::Packet { index, .. } = h.pop(t)
        {
            played.push(index);
        }
    }
    assert_eq!(played, vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(h.buffer.stats().concealed, 0);
    assert_eq!(h.buffer.stats().late, 0);
}

#[test]
fn missing_packet_is_concealed_with_fec() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    h.push(20, 1, 160).unwrap();
    h.push(60, 3, 480).unwrap();
    assert_eq!(h.played(20, 60), vec![0, 1]);
    assert_eq!(
        h.pop(60),
        Out::Lost {
            samples: 160,
            fec: true
        }
    );
    assert_eq!(
        h.pop(80),
        Out::Packet {
            index: 3,
            new_source: false
        }
    );
    assert_eq!(h.buffer.stats().concealed, 1);
}

#[test]
fn burst_loss_conceals_each_packet_without_fec() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    h.push(80, 4, 640).unwrap();
    assert_eq!(h.played(20, 40), vec![0]);
    assert_eq!(
        h.pop(40),
        Out::Lost {
            samples: 160,
            fec: false
        }
    );
    assert_eq!(
        h.pop(60),
        Out::Lost {
            samples: 160,
            fec: false
        }
    );
    assert_eq!(
        h.pop(80),
        Out::Lost {
            samples: 160,
            fec: true
        }
    );
    assert_eq!(h.played(100, 120), vec![4]);
}

#[test]
fn duplicate_is_rejected() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    assert_eq!(h.push(1, 0, 0), Err(DropReason::Duplicate));
    assert_eq!(h.buffer.stats().duplicates, 1);
    assert_eq!(h.buffer.len(), 1);
}

#[test]
fn straggler_after_its_slot_is_late() {
    let mut h = Harness::new();
    for i in 0..30u64 {
        if i != 5 {
            h.push(20 * i, i, 160 * i as u32).unwrap();
        }
    }
    let played = h.played(20, 400);
    assert!(!played.contains(&5));
    assert_eq!(h.push(400, 5, 800), Err(DropReason::Late));
    assert_eq!(h.buffer.stats().late, 1);
    // Playback goes on with the packets after it.
    let more = h.played(400, 600);
    assert_eq!(more.first(), Some(&19));
    assert!(h.buffer.target_delay(h.at(400)) > Duration::from_millis(20));
}

#[test]
fn silence_gap_with_marker_reanchors_without_loss() {
    let mut h = Harness::new();
    for i in 0..5u64 {
        h.push(20 * i, i, 160 * i as u32).unwrap();
    }
    assert_eq!(h.played(20, 120), vec![0, 1, 2, 3, 4]);
    // Sender stops for a second (silence suppression), then starts a talkspurt.
    let mut silences = 0;
    for t in (120..1100).step_by(20) {
        match h.pop(t) {
            Out::Silence { .. } => silences += 1,
            other => panic!("expected silence at {t} ms, got {other:?}"),
        }
    }
    assert!(silences > 40);
    h.push_kind(1100, 5, 800 + 8000, PayloadKind::Audio, true)
        .unwrap();
    h.push(1120, 6, 960 + 8000).unwrap();
    // The talkspurt plays after its own buffering delay; until then nothing is due.
    assert_eq!(h.pop(1100), Out::Nothing);
    assert_eq!(h.played(1120, 1160), vec![5, 6]);
    assert_eq!(h.buffer.stats().concealed, 0);
}

#[test]
fn comfort_noise_is_never_audio() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    h.push_kind(20, 1, 160, PayloadKind::ComfortNoise, false)
        .unwrap();
    assert_eq!(h.played(20, 40), vec![0]);
    assert_eq!(
        h.pop(40),
        Out::Silence {
            samples: 160,
            noise: Some(40)
        }
    );
    // Nothing more arrives: the silence keeps the comfort noise level.
    assert_eq!(
        h.pop(60),
        Out::Silence {
            samples: 160,
            noise: Some(40)
        }
    );
    assert_eq!(h.buffer.stats().played, 1);
}

#[test]
fn long_packets_play_once_per_duration() {
    let mut h = Harness::new();
    // 180 ms packets: 1440 samples each.
    for i in 0..4u64 {
        h.push(180 * i, i, 1440 * i as u32).unwrap();
    }
    let mut outputs = Vec::new();
    for t in (20..740).step_by(20) {
        outputs.push(h.pop(t));
    }
    let packets = outputs
        .iter()
        .filter(|o| matches!(o, Out::Packet { .. }))
        .count();
    assert_eq!(packets, 4);
    assert!(
        outputs
            .iter()
            .all(|o| matches!(o, Out::Packet { .. } | Out::Nothing)),
        "{outputs:?}"
    );
}

#[test]
fn placeholders_fill_sequence_gaps() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    h.push_kind(20, 1, 160, PayloadKind::Placeholder, false)
        .unwrap();
    h.push_kind(40, 2, 160, PayloadKind::Placeholder, false)
        .unwrap();
    h.push(60, 3, 480).unwrap();
    let mut outputs = Vec::new();
    for t in (20..120).step_by(20) {
        outputs.push(h.pop(t));
    }
    assert!(
        !outputs.iter().any(|o| matches!(o, Out::Lost { .. })),
        "{outputs:?}"
    );
    assert_eq!(h.buffer.stats().played, 2);
}

#[test]
fn short_timestamp_gap_is_silence() {
    let mut h = Harness::new();
    for (arrival, index, ts) in [(0, 0, 0), (40, 1, 320)] {
        let packet = Incoming {
            index: ExtSeq(index),
            timestamp: ts,
            pt: Pt(0),
            marker: false,
            ssrc: Ssrc(1),
            kind: PayloadKind::Audio,
            payload: &[0xff; 160],
            duration: Some(160),
        };
        h.buffer.push(h.at(arrival), packet).unwrap();
    }
    assert_eq!(h.played(20, 40), vec![0]);
    assert_eq!(
        h.pop(40),
        Out::Silence {
            samples: 160,
            noise: None
        }
    );
    assert_eq!(h.played(60, 80), vec![1]);
}

#[test]
fn backward_timestamp_reanchors() {
    let mut h = Harness::new();
    let mut played = Vec::new();
    for (t, ts) in [(0u64, 50_000u32), (20, 50_160), (40, 1_000), (60, 1_160)] {
        h.push(t, t / 20, ts).unwrap();
        played.extend(h.played(t, t + 20));
    }
    played.extend(h.played(80, 160));
    assert_eq!(played, vec![0, 1, 2, 3]);
    assert_eq!(h.buffer.stats().concealed, 0);
    assert!(h.buffer.stats().reanchors >= 1);
}

#[test]
fn timestamp_wrap_plays_through() {
    let mut h = Harness::new();
    let base = u32::MAX - 319;
    for i in 0..6u64 {
        h.push(20 * i, i, base.wrapping_add(160 * i as u32))
            .unwrap();
    }
    assert_eq!(h.played(20, 140), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(h.buffer.stats().reanchors, 0);
}

#[test]
fn jitter_raises_target_delay() {
    let mut h = Harness::new();
    for i in 0..200u64 {
        let late = if i % 2 == 1 { 30 } else { 0 };
        let _ = h.push(20 * i + late, i, 160 * i as u32);
    }
    let target = h.buffer.target_delay(h.at(4000));
    assert!(target >= Duration::from_millis(80), "{target:?}");
    assert!(target <= Duration::from_millis(200), "{target:?}");
}

#[test]
fn stalled_reader_catches_up() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    assert_eq!(h.pop(0), Out::Nothing);
    for i in 1..250u64 {
        let _ = h.push(20 * i, i, 160 * i as u32);
    }
    // The reader comes back after 5 s: it plays recent audio, not 5 s old packets.
    let played = h.played(5000, 5100);
    let first = played.first().copied().unwrap();
    assert!(first >= 245, "{played:?}");
    assert!(h.buffer.stats().overflow > 0);
}

#[test]
fn deep_buffer_shrinks_in_continuous_speech() {
    let mut h = Harness::new();
    // The first packet arrives 100 ms late, so every later packet waits about 120 ms.
    h.push(100, 0, 0).unwrap();
    let mut waits = Vec::new();
    for i in 1..400u64 {
        h.push(20 * i, i, 160 * i as u32).unwrap();
        if let Out::Packet { index, .. } = h.pop(20 * i) {
            waits.push(20 * i - 20 * index);
        }
    }
    let first = waits[0];
    let last = *waits.last().unwrap();
    assert!(first >= 100, "first wait {first} ms");
    assert!(last <= 60, "final wait {last} ms, waits {waits:?}");
    assert!(h.buffer.stats().overflow >= 2);
}

#[test]
fn new_source_is_flagged() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    let packet = Incoming {
        index: ExtSeq(1),
        timestamp: 900_000,
        pt: Pt(0),
        marker: false,
        ssrc: Ssrc(2),
        kind: PayloadKind::Audio,
        payload: &[0xff; 160],
        duration: None,
    };
    h.buffer.push(h.at(20), packet).unwrap();
    assert_eq!(
        h.pop(20),
        Out::Packet {
            index: 0,
            new_source: true
        }
    );
    assert_eq!(
        h.pop(40),
        Out::Packet {
            index: 1,
            new_source: true
        }
    );
}

#[test]
fn explicit_duration_wins() {
    let mut h = Harness::new();
    let packet = Incoming {
        index: ExtSeq(0),
        timestamp: 0,
        pt: Pt(0),
        marker: false,
        ssrc: Ssrc(1),
        kind: PayloadKind::Audio,
        payload: &[0xff; 480],
        duration: Some(480),
    };
    h.buffer.push(h.at(0), packet).unwrap();
    h.push(60, 1, 480).unwrap();
    assert_eq!(h.played(20, 80), vec![0]);
    assert_eq!(h.played(80, 100), vec![1]);
}

#[test]
fn reset_empties_and_restarts() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    h.push(20, 1, 160).unwrap();
    h.buffer.reset();
    assert!(h.buffer.is_empty());
    assert_eq!(h.pop(40), Out::Nothing);
    assert!(h.buffer.next_deadline().is_none());
}

#[test]
fn loss_found_after_underrun_is_not_concealed_twice() {
    let mut h = Harness::new();
    let mut outputs = Vec::new();
    for i in 0..30u64 {
        // Packets 10-13 are lost; 14 arrives on time.
        if !(10..14).contains(&i) {
            h.push(20 * i, i, 160 * i as u32).unwrap();
        }
        outputs.push(h.pop(20 * i));
    }
    let gap = outputs
        .iter()
        .filter(|o| !matches!(o, Out::Packet { .. }))
        .count();
    // One tick of initial buffering plus four lost packets: the underrun silences stand in for
    // the lost packets instead of adding to them.
    assert_eq!(gap, 1 + 4, "{outputs:?}");
    assert_eq!(h.buffer.stats().concealed, 4);
}

#[test]
fn short_packets_come_out_several_per_tick() {
    let mut h = Harness::new();
    let mut played = Vec::new();
    // 10 ms packets (80 units) arriving every 10 ms, popped until Nothing at each 20 ms tick.
    for t in (0..1000u64).step_by(10) {
        let index = t / 10;
        let packet = Incoming {
            index: ExtSeq(index),
            timestamp: 80 * index as u32,
            pt: Pt(0),
            marker: false,
            ssrc: Ssrc(1),
            kind: PayloadKind::Audio,
            payload: &[0xff; 80],
            duration: Some(80),
        };
        h.buffer.push(h.at(t), packet).unwrap();
        if t % 20 != 0 {
            continue;
        }
        loop {
            match h.pop(t) {
                Out::Nothing => break,
                Out::Packet { index, .. } => played.push(index),
                other => panic!("unexpected {other:?} at {t} ms"),
            }
        }
    }
    // Everything that arrived up to the last tick, less the initial 20 ms delay, has played.
    assert_eq!(played, (0..97).collect::<Vec<_>>());
    assert_eq!(h.buffer.stats().overflow, 0);
    assert_eq!(h.buffer.stats().concealed, 0);
}

#[test]
fn repeated_pop_in_underrun_returns_nothing() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    assert_eq!(h.played(20, 40), vec![0]);
    assert_eq!(
        h.pop(40),
        Out::Silence {
            samples: 160,
            noise: None
        }
    );
    assert_eq!(h.pop(40), Out::Nothing);
    assert_eq!(
        h.pop(60),
        Out::Silence {
            samples: 160,
            noise: None
        }
    );
}

#[test]
fn long_outage_is_not_concealed_again() {
    let mut h = Harness::new();
    h.push(0, 0, 0).unwrap();
    assert_eq!(h.played(20, 40), vec![0]);
    // 40 s without packets, then the stream goes on 2000 packets later.
    let mut silences = 0;
    for t in (40..40_020).step_by(20) {
        if matches!(h.pop(t), Out::Silence { .. }) {
            silences += 1;
        }
    }
    assert!(silences >= 1990, "{silences}");
    h.push(40_020, 2001, 2001 * 160).unwrap();
    let mut outputs = Vec::new();
    for t in (40_020..40_200).step_by(20) {
        outputs.push(h.pop(t));
    }
    let lost = outputs
        .iter()
        .filter(|o| matches!(o, Out::Lost { .. }))
        .count();
    assert!(lost <= 1, "{outputs:?}");
    assert!(
        outputs
            .iter()
            .any(|o| matches!(o, Out::Packet { index: 2001, .. }))
    );
    assert_eq!(h.buffer.stats().concealed, 2000);
}
