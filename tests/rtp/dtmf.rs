//! RFC 4733 telephone events on negotiated payload types: Opus with telephone-event/48000 on
//! 97, PCMU with telephone-event/8000 on 101, and a digit string typed while the caller talks.

use voicegate::rtp::{
    DropReason, DtmfEvent, EventGenerator, PayloadTable, Pt, SessionEvent, event_to_digit,
};

use crate::harness::{Arrival, Call, addr, audio, rtp};

const PEER: &str = "127.0.0.1:44000";
const SSRC: u32 = 0x5151_0001;

/// Builds the packets of one key press as a sender makes them. Updates come every `step`
/// units, then three end packets, all at timestamp `ts` with sequence numbers from `seq`, one
/// every 20 ms from `at_ms`.
fn press(event: u8, pt: u8, ts: u32, seq: u16, at_ms: u64, total: u32, step: u32) -> Vec<Arrival> {
    let mut generator = EventGenerator::new(event, 10, total, step);
    let mut arrivals = Vec::new();
    let mut n = 0u16;
    while let Some((payload, first)) = generator.next_payload() {
        arrivals.push(Arrival {
            at_ms: at_ms + 20 * u64::from(n),
            from: addr(PEER),
            bytes: rtp(SSRC, seq + n, ts, pt, first, &payload),
        });
        n += 1;
    }
    arrivals
}

fn pressed(call: &Call) -> String {
    call.events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Dtmf(DtmfEvent::Pressed { event, .. }) => event_to_digit(*event),
            _ => None,
        })
        .collect()
}

fn opus_call() -> Call {
    // Opus frames carry their own duration; the test sends 20 ms (960 units) frames.
    fn opus_20ms(_: &[u8]) -> Option<u32> {
        Some(960)
    }
    let payloads = PayloadTable::new()
        .with_audio(Pt(96), 48_000, Some(opus_20ms))
        .with_telephone_event(Pt(97), 48_000);
    Call::with_payloads(payloads, true, None)
}

#[test]
fn opus_call_detects_events_on_97_at_48k() {
    let mut call = opus_call();
    let mut arrivals = Vec::new();
    for n in 0..10u16 {
        arrivals.push(Arrival {
            at_ms: 20 * u64::from(n),
            from: addr(PEER),
            bytes: rtp(SSRC, 100 + n, 960 * u32::from(n), 96, false, &[0x78; 40]),
        });
    }
    // A 250 ms press of 5 at 48 kHz: 12000 units, updated every 960.
    arrivals.extend(press(5, 97, 9600, 110, 200, 12_000, 960));
    // A telephone-event on 101, which this call did not negotiate, is ignored.
    arrivals.push(Arrival {
        at_ms: 600,
        from: addr(PEER),
        bytes: rtp(SSRC, 130, 30_000, 101, true, &[7, 0x0A, 0, 160]),
    });
    call.run(arrivals, 1_000);

    assert_eq!(pressed(&call), "5");
    let released = call.events.iter().find_map(|e| match e {
        SessionEvent::Dtmf(DtmfEvent::Released { duration, .. }) => Some(*duration),
        _ => None,
    });
    assert_eq!(released, Some(std::time::Duration::from_millis(250)));
    assert_eq!(
        call.session
            .stats()
            .drops
            .get(DropReason::UnknownPayloadType),
        1
    );
}

#[test]
fn pcmu_call_detects_events_on_101_not_97() {
    let mut call = Call::pcmu(None);
    let mut arrivals = crate::harness::stream(PEER, SSRC, 100, 0, 0, 10);
    // The same press sent on 97 (not negotiated here) must not count.
    arrivals.extend(press(3, 97, 1600, 110, 200, 2000, 160));
    arrivals.extend(press(3, 101, 4000, 117, 400, 2000, 160));
    call.run(arrivals, 1_000);
    assert_eq!(pressed(&call), "3");
}

#[test]
fn digits_typed_over_speech_arrive_once_each() {
    let mut call = Call::pcmu(None);
    let digits = [4u8, 4, 2, 1, 9, 0, 11];
    let mut arrivals = Vec::new();
    let mut seq = 1000u16;
    let mut ts = 0u32;
    let mut at = 0u64;
    // Background speech for 1.5 s, then each key pressed for 100 ms with 150 ms of speech
    // between presses, so presses start 250 ms apart.
    let speech = |count: u16, seq: &mut u16, ts: &mut u32, at: &mut u64, out: &mut Vec<Arrival>| {
        for _ in 0..count {
            out.push(Arrival {
                at_ms: *at,
                from: addr(PEER),
                bytes: audio(SSRC, *seq, *ts),
            });
            *seq = seq.wrapping_add(1);
            *ts = ts.wrapping_add(160);
            *at += 20;
        }
    };
    speech(75, &mut seq, &mut ts, &mut at, &mut arrivals);
    let mut press_times = Vec::new();
    for &digit in &digits {
        press_times.push(at);
        let packets = press(digit, 101, ts, seq, at, 800, 160);
        let count = packets.len() as u16;
        arrivals.extend(packets);
        seq = seq.wrapping_add(count);
        ts = ts.wrapping_add(800);
        at += 20 * u64::from(count);
        let gap = ((250 - 20 * u64::from(count)) / 20) as u16;
        speech(gap, &mut seq, &mut ts, &mut at, &mut arrivals);
    }
    speech(50, &mut seq, &mut ts, &mut at, &mut arrivals);
    call.run(arrivals, at + 200);

    assert_eq!(pressed(&call), "442190#");
    // Each press is reported when its first packet arrives, so the first 4 can stop the
    // prompt within the same frame.
    let first_press = call.events.iter().find_map(|e| match e {
        SessionEvent::Dtmf(DtmfEvent::Pressed { at, .. }) => Some(*at),
        _ => None,
    });
    assert_eq!(first_press, Some(call.at(press_times[0])));
    // Event packets fill their sequence numbers: no loss is counted for them.
    assert_eq!(call.session.stats().lost, 0);
    // No event packet reaches the audio decoder.
    assert!(call.played().iter().all(|p| p.pt == Pt(0)));
}
