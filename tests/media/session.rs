//! The session on a virtual clock: pacing, barge-in timelines, holds, timeouts, DTMF and
//! packet edge cases.

use std::time::Duration;

use voicegate::audio::{MediaEvent, PlayoutCommand, SegmentId};
use voicegate::media::playout::BargeInMode;
use voicegate::rtp::{DropReason, RtpConfig, TelephoneEvent};
use voicegate::sip::sdp::Direction;

use super::audio::{set_level, speak};
use super::harness::{CallerStream, Sim, pcmu_params, peer_addr};

/// A vowel-like test signal at 16 kHz whose pitch glides, so webrtc-vad keeps calling it voice.
fn ai_tone(seconds: f64) -> Vec<i16> {
    let len = (seconds * 16_000.0) as usize;
    (0..len)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let pitch = 140.0 + 30.0 * (t * 3.0).sin();
            let phase = 2.0 * std::f64::consts::PI * pitch * t;
            (4_000.0 * (phase.sin() + 0.5 * (2.0 * phase).sin() + 0.3 * (3.0 * phase).sin())) as i16
        })
        .collect()
}

fn caller_speech(text: &str) -> Vec<i16> {
    let mut pcm = speak(text, "en-us", 8_000);
    set_level(&mut pcm, -16.0);
    pcm
}

#[test]
fn pacing_keeps_sequence_and_wall_clock() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0xAB, 10, 0);
    sim.run_silent(&mut caller, 25);
    sim.queue_segment(1, ai_tone(0.4));
    sim.run_silent(&mut caller, 75);

    let sent = &sim.sent;
    assert_eq!(sent.len(), 100);
    for pair in sent.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1), "sequence gap");
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(160),
            "timestamp step"
        );
        assert_eq!(
            pair[1].at - pair[0].at,
            Duration::from_millis(20),
            "packet spacing"
        );
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
    }
    let markers: Vec<usize> = sent
        .iter()
        .enumerate()
        .filter(|(_, p)| p.marker)
        .map(|(i, _)| i)
        .collect();
    let first_speech = sent.iter().position(|p| p.has_audio()).unwrap();
    assert_eq!(
        markers,
        vec![0, first_speech],
        "marker on the first packet and the talkspurt"
    );
    let speech_packets = sent.iter().filter(|p| p.has_audio()).count();
    assert!(
        (19..=21).contains(&speech_packets),
        "{speech_packets} speech packets for 0.4 s"
    );
    let started: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, MediaEvent::SegmentStarted { .. }))
        .collect();
    assert_eq!(started.len(), 1);
    assert_eq!(
        started[0].0, sent[first_speech].at,
        "SegmentStarted carries the first packet time"
    );
    assert!(
        sim.events
            .iter()
            .any(|(_, e)| matches!(e, MediaEvent::SegmentPlayed { samples: 6400, .. }))
    );
}

#[test]
fn timeline_b_queued_audio_cut_at_once() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Clear));
    let mut caller = CallerStream::new(0x51, 7_000, 0);
    // The text-to-speech delivered 9 s at once and reported done.
    sim.queue_segment(1, ai_tone(9.0));
    sim.run_silent(&mut caller, 150);
    sim.run_caller(
        &mut caller,
        &caller_speech("wait, wait, I have another question"),
    );

    let barge_ins = sim.barge_ins();
    assert_eq!(barge_ins.len(), 1, "{barge_ins:?}");
    let (decided_at, barge_in) = &barge_ins[0];
    assert_eq!(barge_in.segment, Some(SegmentId(1)));
    assert!(!barge_in.paused);
    let played = barge_in.played_samples as f64 / 16_000.0;
    assert!(
        (3.0..3.6).contains(&played),
        "played {played} s of the segment"
    );
    let last = barge_in.last_ai_packet.expect("AI packets were sent");
    assert!(last < *decided_at);

    let after: Vec<_> = sim.sent.iter().filter(|p| p.at >= *decided_at).collect();
    let speaking = after.iter().filter(|p| p.has_audio()).count();
    assert!(speaking <= 1, "{speaking} AI packets after the decision");
    assert!(after.iter().skip(1).all(|p| !p.has_audio()));
    for pair in sim.sent.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
    }

    // The AI loop acknowledges and answers: the new talkspurt starts with the marker bit.
    sim.command(PlayoutCommand::Clear);
    let before = sim.sent.len();
    sim.queue_segment(2, ai_tone(0.5));
    sim.run_silent(&mut caller, 40);
    let reply = sim.sent[before..]
        .iter()
        .find(|p| p.has_audio())
        .expect("reply plays");
    assert!(reply.marker, "talkspurt after the barge-in lacks M=1");
}

#[test]
fn timeline_a_stale_segment_never_plays() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Clear));
    let mut caller = CallerStream::new(0x52, 100, 0);
    sim.queue_segment(1, ai_tone(3.0));
    sim.run_silent(&mut caller, 25);
    sim.run_caller(&mut caller, &caller_speech("no, stop"));
    let (decided_at, _) = sim.barge_ins().first().cloned().expect("barge-in");

    // Audio of the reply that was cancelled arrives after the decision.
    sim.command(PlayoutCommand::Audio {
        segment: SegmentId(2),
        pcm: ai_tone(1.0),
        interruptible: true,
    });
    sim.command(PlayoutCommand::EndSegment(SegmentId(2)));
    sim.run_silent(&mut caller, 60);
    let stale = sim.events.iter().any(|(_, e)| {
        matches!(
            e,
            MediaEvent::SegmentStarted {
                segment: SegmentId(2),
                ..
            }
        )
    });
    assert!(!stale, "segment 2 played after the barge-in");
    assert!(
        sim.sent
            .iter()
            .filter(|p| p.at > decided_at)
            .all(|p| !p.has_audio())
    );
    assert_eq!(sim.core.stats().fenced_chunks, 1);

    sim.command(PlayoutCommand::Clear);
    sim.queue_segment(3, ai_tone(0.3));
    sim.run_silent(&mut caller, 30);
    let fresh = sim.events.iter().any(|(_, e)| {
        matches!(
            e,
            MediaEvent::SegmentStarted {
                segment: SegmentId(3),
                ..
            }
        )
    });
    assert!(fresh, "the next reply plays after the acknowledgement");
}

#[test]
fn media_timeout_once_and_never_on_hold() {
    let rtp = RtpConfig {
        media_timeout_secs: 30,
        ..RtpConfig::default()
    };
    let mut sim = Sim::with_config(pcmu_params(BargeInMode::Pause), rtp.clone());
    let mut caller = CallerStream::new(0x60, 1, 0);
    sim.run_silent(&mut caller, 50);
    let last_packet = sim.now;
    for _ in 0..(45 * 50) {
        sim.step();
    }
    let timeouts: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, MediaEvent::Timeout))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(timeouts.len(), 1, "{timeouts:?}");
    let after = timeouts[0] - last_packet;
    assert!(
        after >= Duration::from_secs(30) && after <= Duration::from_millis(30_200),
        "timeout after {after:?}"
    );

    // A held call stays quiet for ten minutes without a timeout.
    let mut sim = Sim::with_config(pcmu_params(BargeInMode::Pause), rtp);
    sim.run_silent(&mut caller, 50);
    let mut held = sim.core.params().clone();
    held.direction = Direction::Inactive;
    sim.core.update(sim.now, held);
    for _ in 0..(600 * 50) {
        sim.step();
    }
    assert!(
        !sim.events
            .iter()
            .any(|(_, e)| matches!(e, MediaEvent::Timeout))
    );
    let sent_while_held = sim
        .sent
        .iter()
        .filter(|p| p.at > sim.start + Duration::from_secs(2))
        .count();
    assert_eq!(sent_while_held, 0, "RTP sent while inactive");

    // After unhold the watchdog runs again.
    let mut resumed = sim.core.params().clone();
    resumed.direction = Direction::SendRecv;
    sim.core.update(sim.now, resumed);
    for _ in 0..(31 * 50) {
        sim.step();
    }
    assert_eq!(
        sim.events
            .iter()
            .filter(|(_, e)| matches!(e, MediaEvent::Timeout))
            .count(),
        1
    );
}

#[test]
fn unhold_to_same_address_resumes_in_one_frame() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0x70, 1, 0);
    sim.run_silent(&mut caller, 10);
    // RFC 2543-style hold: c=0.0.0.0 and no direction attribute.
    let mut hold = sim.core.params().clone();
    hold.remote_rtp = Some("0.0.0.0:40000".parse().unwrap());
    sim.core.update(sim.now, hold);
    let held_at = sim.now;
    for _ in 0..100 {
        sim.step();
    }
    assert!(
        sim.sent.iter().all(|p| p.at <= held_at),
        "RTP sent to 0.0.0.0"
    );
    assert!(sim.sent.iter().all(|p| p.destination == peer_addr()));

    let mut unhold = sim.core.params().clone();
    unhold.remote_rtp = Some(peer_addr());
    let resumed_at = sim.now;
    sim.core.update(resumed_at, unhold);
    sim.step();
    let first = sim
        .sent
        .iter()
        .find(|p| p.at >= resumed_at)
        .expect("RTP resumes");
    assert!(
        first.at - resumed_at <= Duration::from_millis(20),
        "resumed after {:?}",
        first.at - resumed_at
    );
    assert_eq!(first.destination, peer_addr());
    assert!(first.marker, "first packet after the hold has M=1");
}

#[test]
fn music_on_hold_is_not_caller_speech() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Clear));
    let mut caller = CallerStream::new(0x80, 1, 0);
    sim.run_silent(&mut caller, 10);
    sim.queue_segment(1, ai_tone(5.0));
    let mut held = sim.core.params().clone();
    held.direction = Direction::RecvOnly;
    sim.core.update(sim.now, held);
    let events_before = sim.events.len();
    sim.run_caller(
        &mut caller,
        &caller_speech("this is loud music on hold that goes on and on"),
    );
    let during: Vec<_> = sim.events[events_before..].iter().map(|(_, e)| e).collect();
    assert!(
        !during
            .iter()
            .any(|e| matches!(e, MediaEvent::SpeechStarted { .. } | MediaEvent::BargeIn(_)))
    );
    assert!(
        !during.iter().any(|e| matches!(e, MediaEvent::Audio(_))),
        "held audio reached the AI loop"
    );
    assert!(
        sim.core.playout().has_interruptible(),
        "held AI audio was dropped"
    );
}

#[test]
fn dtmf_press_reported_once() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0x90, 500, 8_000);
    sim.run_silent(&mut caller, 5);
    caller.pt = 101;
    let timestamp = caller.timestamp;
    for (duration, end, repeats) in [
        (160u16, false, 1),
        (320, false, 1),
        (480, false, 1),
        (800, true, 3),
    ] {
        for _ in 0..repeats {
            let event = TelephoneEvent {
                event: 5,
                end,
                volume: 10,
                duration,
            };
            caller.timestamp = timestamp;
            let packet = caller.packet(&event.to_bytes(), duration == 160);
            sim.send_from(peer_addr(), packet);
            sim.step();
        }
    }
    caller.pt = 0;
    caller.timestamp = timestamp.wrapping_add(800);
    sim.run_silent(&mut caller, 10);
    let digits: Vec<char> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            MediaEvent::Dtmf { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, vec!['5']);
    assert_eq!(sim.core.stats().dtmf_received, 1);
}

#[test]
fn dtmf_command_sends_rfc4733_events() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0x91, 1, 0);
    sim.command(PlayoutCommand::Dtmf("1#".into()));
    sim.run_silent(&mut caller, 30);
    let events: Vec<_> = sim.sent.iter().filter(|p| p.pt == 101).collect();
    assert!(!events.is_empty(), "no telephone-event packets");
    let parsed: Vec<TelephoneEvent> = events
        .iter()
        .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
        .collect();
    let codes: Vec<u8> = parsed.iter().map(|e| e.event).collect();
    assert!(
        codes.contains(&1) && codes.contains(&11),
        "events {codes:?}"
    );
    let ends = parsed.iter().filter(|e| e.end).count();
    assert_eq!(ends, 6, "three end packets per digit");
    let starts = events.iter().filter(|p| p.marker).count();
    assert_eq!(starts, 2, "marker on the first packet of each digit");
    for pair in sim.sent.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
    }
}

#[test]
fn rtp_edge_cases_through_session() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0xC0FF_EE01, 5_000, 800_000);
    let silence = [0xFFu8; 160];
    sim.run_silent(&mut caller, 10);

    // a: padding of four bytes after a 160-byte payload; decoding the padding would click.
    let mut padded = caller.packet(&silence, false);
    padded[0] |= 0x20;
    padded.extend_from_slice(&[0, 0, 0, 4]);
    // e: P=1 with nothing after the header.
    let mut empty_padded = caller.packet(&[], false);
    empty_padded[0] |= 0x20;
    // f: padding count larger than the payload.
    let mut bad_padding = caller.packet(&[0xFF; 20], false);
    bad_padding[0] |= 0x20;
    let last = bad_padding.len() - 1;
    bad_padding[last] = 0xFF;
    // h: STUN binding request.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    // j: comfort noise; k: a payload type that was not negotiated; l: version 1.
    caller.pt = 13;
    let comfort_noise = caller.packet(&[0x28], false);
    caller.pt = 126;
    let unknown = caller.packet(&silence, false);
    caller.pt = 0;
    let mut version_one = caller.packet(&silence, false);
    version_one[0] = 0x40;
    // i: 1460 bytes of payload (182.5 ms).
    let huge = caller.packet(&[0xFF; 1460], false);

    for packet in [
        padded,
        empty_padded,
        bad_padding,
        stun,
        comfort_noise,
        unknown,
        version_one,
        huge,
    ] {
        sim.send_from(peer_addr(), packet);
        sim.step();
    }
    sim.run_silent(&mut caller, 30);

    let loudest = sim
        .audio_frames()
        .iter()
        .flat_map(|f| f.iter())
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(0);
    assert!(loudest < 1_000, "a click of {loudest} reached the AI loop");
    assert!(sim.speech_starts().is_empty());
    let drops = sim.core.stats().dropped;
    assert_eq!(drops.get(DropReason::Stun), 1);
    assert_eq!(drops.get(DropReason::UnknownPayloadType), 1);
    assert_eq!(drops.get(DropReason::Version), 1);
    assert!(
        drops.get(DropReason::Malformed) >= 2,
        "malformed: {}",
        drops.get(DropReason::Malformed)
    );
}

#[test]
fn sequence_wrap_with_reordering_loses_nothing() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let mut caller = CallerStream::new(0x1A2B_3C4D, 65_500, 1_000);
    sim.run_silent(&mut caller, 32);
    // 65532 .. 65535, 0, 1, 2 with 65535 late by 15 ms.
    let payload = [0xFFu8; 160];
    let packets: Vec<Vec<u8>> = (0..7).map(|_| caller.packet(&payload, false)).collect();
    for (i, packet) in packets.into_iter().enumerate() {
        if i == 3 {
            sim.send_late(peer_addr(), packet, Duration::from_millis(15));
        } else {
            sim.send_from(peer_addr(), packet);
        }
        sim.step();
    }
    sim.run_silent(&mut caller, 20);
    let stats = sim.core.stats();
    assert_eq!(stats.lost, 0);
    assert_eq!(stats.concealed, 0);
    assert_eq!(stats.late, 0);
}

#[test]
fn source_change_a_b_a_keeps_audio() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    let speech = caller_speech("one two three four five six seven eight nine ten");
    let mut a = CallerStream::new(0x1111_1111, 3_000, 10_000);
    let mut b = CallerStream::new(0x2222_2222, 50_000, 900_000);
    sim.run_caller(&mut a, &speech[..16_000.min(speech.len())]);
    let b_start = sim.now;
    sim.run_caller(&mut b, &speech[..16_000.min(speech.len())]);
    a.seq = 3_400;
    a.timestamp = 40_000;
    sim.run_caller(&mut a, &speech[..16_000.min(speech.len())]);

    let stats = sim.core.stats();
    assert!(
        stats.source_changes >= 2,
        "source changes: {}",
        stats.source_changes
    );
    // Audio keeps reaching the AI loop: at most a few frames go missing at each change.
    let frames_after_b = sim
        .events
        .iter()
        .filter(|(at, e)| *at > b_start && matches!(e, MediaEvent::Audio(_)))
        .count();
    assert!(
        frames_after_b >= 190,
        "only {frames_after_b} frames after the first change"
    );
}

#[test]
fn foreign_source_never_reaches_the_ai() {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Clear));
    let mut caller = CallerStream::new(0xABCD_0001, 100, 0);
    sim.run_silent(&mut caller, 50);
    sim.queue_segment(1, ai_tone(4.0));
    let mut attacker = CallerStream::new(0xDEAD_0001, 1, 0);
    attacker.from = "127.0.0.99:5555".parse().unwrap();
    let loud = caller_speech("listen to me, I am injecting audio into your call");
    let mut payloads = Vec::new();
    for chunk in loud.chunks(160).take(50) {
        let mut chunk = chunk.to_vec();
        chunk.resize(160, 0);
        payloads.push(sim.caller_payload(&chunk));
    }
    assert_eq!(payloads.len(), 50);
    for payload in payloads {
        let bleed = attacker.packet(&payload, false);
        sim.send_from(attacker.from, bleed);
        let genuine = caller.packet(&[0xFF; 160], false);
        sim.send_from(caller.from, genuine);
        sim.step();
    }
    sim.run_silent(&mut caller, 5);
    assert!(sim.speech_starts().is_empty(), "injected audio was heard");
    assert!(sim.barge_ins().is_empty());
    assert_eq!(sim.core.stats().dropped.get(DropReason::ForeignAddress), 50);
    assert!(
        sim.sent.iter().all(|p| p.destination == peer_addr()),
        "the latch moved"
    );
}
