//! The AI's own echo and steady noise must not barge in; a quiet caller over the echo must.

use std::time::Duration;

use voicegate::media::playout::BargeInMode;

use super::audio::{EchoPath, Noise, noise, set_level, speak};
use super::harness::{CallerStream, Sim, pcmu_params};

const AI_TEXT: &str = "Thank you for calling Corner Bakery. We are open Monday to Friday from seven \
    in the morning until six in the evening, and on Saturday from eight until two. Our croissants \
    cost two dollars fifty and a loaf of bread costs four dollars.";

/// The AI's reply at 16 kHz and -16 dBFS, as the text-to-speech would queue it.
fn ai_speech(voice: &str, text: &str) -> Vec<i16> {
    let mut pcm = speak(text, voice, 16_000);
    set_level(&mut pcm, -16.0);
    pcm
}

/// Line noise at 8 kHz.
fn line_noise(kind: Noise, dbfs: f64, seconds: f64, seed: u64) -> Vec<i16> {
    let len = (seconds * 8_000.0) as usize;
    noise(kind, dbfs, len, 8_000.0, seed)
        .iter()
        .map(|&s| s as i16)
        .collect()
}

fn echo_sim(delay_ms: u32, attenuation_db: f64) -> Sim {
    let mut sim = Sim::new(pcmu_params(BargeInMode::Pause));
    sim.set_echo(EchoPath::new(delay_ms, attenuation_db, 8_000.0));
    sim
}

#[test]
fn echo_at_18db_240ms_never_barges_in() {
    let reply = ai_speech("en-us", AI_TEXT);
    assert!(
        reply.len() > 16_000 * 7,
        "reply is only {} samples",
        reply.len()
    );
    let mut sim = echo_sim(240, 18.0);
    let mut caller = CallerStream::new(0x1234_5678, 100, 0);
    sim.queue_segment(1, reply.clone());
    let seconds = reply.len() as f64 / 16_000.0 + 1.0;
    sim.run_caller(&mut caller, &line_noise(Noise::White, -60.0, seconds, 1));

    assert!(
        sim.barge_ins().is_empty(),
        "barge-ins: {:?}",
        sim.barge_ins()
    );
    assert!(
        sim.speech_starts().is_empty(),
        "speech starts: {:?}",
        sim.speech_starts()
    );
    let stats = sim.core.stats();
    assert!(
        stats.echo_suppressed_frames > 50,
        "only {} echo frames seen",
        stats.echo_suppressed_frames
    );
    let erl = stats.echo_return_loss_db.unwrap_or(0.0);
    assert!((12.0..=26.0).contains(&erl), "echo return loss {erl} dB");
    let delay = stats.echo_delay_ms.unwrap_or(0);
    // The gate sees the echo after the network delay and the jitter buffer as well.
    assert!((240..=360).contains(&delay), "echo delay {delay} ms");
}

#[test]
fn quiet_caller_barges_in_over_echo() {
    let reply = ai_speech("en-us", AI_TEXT);
    let mut sim = echo_sim(240, 18.0);
    let mut caller = CallerStream::new(0x1234_5678, 100, 0);

    // First utterance: the gate learns the echo.
    sim.queue_segment(1, reply.clone());
    let first = reply.len() as f64 / 16_000.0 + 0.5;
    sim.run_caller(&mut caller, &line_noise(Noise::White, -60.0, first, 2));
    assert!(sim.barge_ins().is_empty());

    // Second utterance: "stop, stop" at -22 dBFS starts 4.0 s in.
    sim.queue_segment(2, reply.clone());
    let mut stop = speak("stop, stop", "en-us", 8_000);
    set_level(&mut stop, -22.0);
    let lead = 4 * 8_000;
    let mut audio = line_noise(Noise::White, -60.0, 7.0, 3);
    for (i, &s) in stop.iter().enumerate() {
        audio[lead + i] = audio[lead + i].saturating_add(s);
    }
    let first_voiced = stop
        .iter()
        .position(|s| s.unsigned_abs() > 300)
        .unwrap_or(0);
    let send_start = sim.now;
    sim.run_caller(&mut caller, &audio);

    let onset = send_start + Duration::from_secs_f64((lead + first_voiced) as f64 / 8_000.0);
    let barge_ins = sim.barge_ins();
    assert_eq!(barge_ins.len(), 1, "barge-ins: {barge_ins:?}");
    let (decided_at, barge_in) = &barge_ins[0];
    let reaction = decided_at.saturating_duration_since(onset);
    assert!(*decided_at >= onset, "barge-in before the caller spoke");
    assert!(
        reaction <= Duration::from_millis(250),
        "decision {reaction:?} after onset"
    );
    assert!(barge_in.paused);
    assert_eq!(barge_in.segment, Some(voicegate::audio::SegmentId(2)));
    // Speech 38 dB over the line noise and 12 dB over the echo is held before the decision,
    // and nothing but the resampler's tail followed the hold.
    let Some(held) = barge_in.held else {
        panic!("no hold before the decision: {barge_in:?}");
    };
    assert!(held < *decided_at);
    let after_hold = sim
        .sent
        .iter()
        .filter(|p| p.at > held && p.has_audio())
        .count();
    assert_eq!(after_hold, 0, "AI audio more than one frame after the hold");

    let after: Vec<_> = sim.sent.iter().filter(|p| p.at >= *decided_at).collect();
    assert!(!after.is_empty());
    // The packet sent in the decision's own tick may still carry the resampler's last few
    // milliseconds of the previous frame; every later packet must be silent.
    let speaking = after.iter().filter(|p| p.has_audio()).count();
    assert!(speaking <= 1, "{speaking} AI packets after the decision");
    let late = after
        .iter()
        .filter(|p| p.at > *decided_at && p.has_audio())
        .count();
    assert_eq!(late, 0, "AI audio more than one frame after the decision");
}

#[test]
fn echo_and_noise_set_has_no_false_barge_ins() {
    let voices = [
        ("en-us", AI_TEXT),
        (
            "en-gb",
            "Your order of two sourdough loaves and a dozen bagels will be ready tomorrow morning at nine. Please bring your receipt.",
        ),
        (
            "en-us+f3",
            "I am sorry, we do not deliver on Sundays, but you can pick up your cake on Saturday between eight and two.",
        ),
    ];
    let mut failures = Vec::new();
    for (voice_index, (voice, text)) in voices.iter().enumerate() {
        let reply = ai_speech(voice, text);
        for delay in [50, 120, 240] {
            for attenuation in [6.0, 12.0, 20.0] {
                let mut sim = echo_sim(delay, attenuation);
                let mut caller = CallerStream::new(0x0100 + voice_index as u32, 1_000, 0);
                sim.queue_segment(1, reply.clone());
                let seconds = reply.len() as f64 / 16_000.0 + 1.0;
                let seed = (voice_index * 100 + delay as usize) as u64;
                sim.run_caller(&mut caller, &line_noise(Noise::Pink, -55.0, seconds, seed));
                let starts = sim.speech_starts().len();
                let barge_ins = sim.barge_ins().len();
                // A hold would leave a gap in the AI's speech even without a barge-in.
                let holds = sim.core.stats().barge_in_holds;
                if starts as u64 + barge_ins as u64 + holds > 0 {
                    failures.push(format!(
                        "{voice} {delay} ms {attenuation} dB: {barge_ins} barge-ins, {starts} speech starts, {holds} holds"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn steady_noise_never_barges_in() {
    let reply = ai_speech("en-us", AI_TEXT);
    let mut failures = Vec::new();
    for (index, kind) in [Noise::White, Noise::Pink, Noise::Brown, Noise::Hum]
        .into_iter()
        .enumerate()
    {
        for level in [-45.0, -30.0] {
            // Noise alone, then noise under the AI's speech and its echo.
            let mut sim = echo_sim(120, 12.0);
            let mut caller = CallerStream::new(0x2000 + index as u32, 500, 0);
            sim.run_caller(&mut caller, &line_noise(kind, level, 4.0, index as u64));
            sim.queue_segment(1, reply.clone());
            let seconds = reply.len() as f64 / 16_000.0 + 1.0;
            sim.run_caller(
                &mut caller,
                &line_noise(kind, level, seconds, 10 + index as u64),
            );
            let starts = sim.speech_starts().len();
            let barge_ins = sim.barge_ins().len();
            let holds = sim.core.stats().barge_in_holds;
            if starts as u64 + barge_ins as u64 + holds > 0 {
                failures.push(format!(
                    "{kind:?} at {level} dBFS: {barge_ins} barge-ins, {starts} speech starts, {holds} holds"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
