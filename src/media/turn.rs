//! Turn detection on the caller's audio: webrtc-vad, the echo gate and the speech tracker
//! decide per frame whether the caller speaks, and confirmed speech over interruptible AI
//! audio cuts or pauses the playout queue in the same tick.

use std::time::Instant;

use crate::audio::{Frame, MediaEvent};
use crate::media::MediaConfig;
use crate::media::echo::EchoGate;
use crate::media::metrics;
use crate::media::playout::{BargeInMode, PlayoutQueue};
use crate::media::speech::{SpeechChange, SpeechTracker, frames_for_ms};
use crate::media::vad::VoiceDetector;

/// Level over the noise floor that every frame of a hold needs, in dB. In the media tests,
/// the first voiced frames of a caller at -22 dBFS on a -60 dBFS line are 30 dB and more over
/// the floor. The loudest frames of steady pink or brown noise at -30 dBFS stay within about
/// 10 dB of it.
/// Frames must also clear the predicted echo, as for any near-end speech.
const HOLD_ABOVE_FLOOR_DB: f32 = 15.0;

/// Barge-in behaviour of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BargeInSettings {
    /// Whether caller speech may interrupt AI speech at all (the test caller turns it off).
    pub enabled: bool,
    /// Pause playout (the AI loop resumes or clears it) or clear it at once.
    pub mode: BargeInMode,
    /// Voiced audio needed to confirm that the caller started talking, in milliseconds.
    pub speech_onset_ms: u32,
    /// Silence needed to confirm that the caller stopped talking, in milliseconds.
    pub speech_end_ms: u32,
    /// Voiced audio needed before a clear-mode barge-in drops the queue, in milliseconds. In
    /// pause mode playout pauses at the onset and the AI loop applies this minimum itself.
    pub min_interruption_ms: u32,
    /// Voiced audio after which interruptible playout pauses until the speech is confirmed or
    /// dismissed, in milliseconds. 0 turns the hold off.
    pub hold_ms: u32,
    /// webrtc-vad aggressiveness, 0 to 3.
    pub vad_mode: u8,
}

impl BargeInSettings {
    /// Builds the settings from `[media]` and the caller's minimum interruption (the
    /// tenant's or `[ai] min_interruption_ms`).
    pub fn from_config(media: &MediaConfig, min_interruption_ms: u32) -> Self {
        Self {
            enabled: media.barge_in,
            mode: if media.barge_in_mode == "clear" {
                BargeInMode::Clear
            } else {
                BargeInMode::Pause
            },
            speech_onset_ms: media.speech_onset_ms,
            speech_end_ms: media.speech_end_ms,
            min_interruption_ms,
            hold_ms: media.barge_in_hold_ms,
            vad_mode: media.vad_mode,
        }
    }

    /// Voiced frames after which playout holds, when the hold is on.
    fn hold_frames(&self) -> Option<u32> {
        (self.hold_ms > 0).then(|| frames_for_ms(self.hold_ms))
    }

    fn required_frames(&self) -> u32 {
        let onset = frames_for_ms(self.speech_onset_ms);
        match self.mode {
            BargeInMode::Clear => onset.max(frames_for_ms(self.min_interruption_ms)),
            BargeInMode::Pause => onset,
        }
    }
}

impl Default for BargeInSettings {
    fn default() -> Self {
        Self::from_config(&MediaConfig::default(), 200)
    }
}

/// Counters of the turn detector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnCounters {
    /// Frames webrtc-vad called voice.
    pub voiced_frames: u64,
    /// Voiced frames the echo gate attributed to our own audio.
    pub echo_suppressed_frames: u64,
    /// Barge-ins fired.
    pub barge_ins: u64,
    /// Times playout was held for unconfirmed caller speech.
    pub holds: u64,
    /// Holds released because the caller's speech was not confirmed.
    pub holds_released: u64,
}

/// Caller speech detection and barge-in decisions of one call. Not `Send`: it owns a
/// webrtc-vad instance and lives on the worker thread that created it.
#[derive(Debug)]
pub struct TurnDetector {
    settings: BargeInSettings,
    vad: VoiceDetector,
    gate: EchoGate,
    speech: SpeechTracker,
    barged_this_turn: bool,
    /// Consecutive near-end speech frames at least [`HOLD_ABOVE_FLOOR_DB`] over the floor.
    clear_frames: u32,
    counters: TurnCounters,
}

impl TurnDetector {
    /// Creates a detector for one call.
    pub fn new(settings: BargeInSettings) -> Self {
        Self {
            settings,
            vad: VoiceDetector::new(settings.vad_mode),
            gate: EchoGate::new(),
            speech: SpeechTracker::new(settings.speech_onset_ms, settings.speech_end_ms),
            barged_this_turn: false,
            clear_frames: 0,
            counters: TurnCounters::default(),
        }
    }

    /// Replaces the settings, keeping the adaptive state.
    pub fn set_settings(&mut self, settings: BargeInSettings) {
        if settings.vad_mode != self.settings.vad_mode {
            self.vad.reset(settings.vad_mode);
        }
        self.speech
            .set_windows(settings.speech_onset_ms, settings.speech_end_ms);
        self.settings = settings;
    }

    /// Processes the caller frame that left the jitter buffer at `now`: reports speech starts
    /// and ends, and cuts or pauses `playout` when the caller talks over interruptible AI
    /// audio.
    pub fn process(
        &mut self,
        now: Instant,
        frame: &Frame,
        playout: &mut PlayoutQueue,
        events: &mut Vec<MediaEvent>,
    ) {
        let voiced = self.vad.is_voice(frame);
        let decision = self.gate.classify(frame, voiced);
        self.counters.voiced_frames += u64::from(voiced);
        self.counters.echo_suppressed_frames += u64::from(decision.echo_suppressed);
        if decision.near_end_speech && decision.above_floor_db >= HOLD_ABOVE_FLOOR_DB {
            self.clear_frames += 1;
        } else {
            self.clear_frames = 0;
        }

        match self.speech.push(now, decision.near_end_speech) {
            Some(SpeechChange::Started { onset }) => {
                tracing::debug!(?onset, "caller speech started");
                events.push(MediaEvent::SpeechStarted { onset });
            }
            Some(SpeechChange::Ended { end }) => {
                tracing::debug!(?end, "caller speech ended");
                self.barged_this_turn = false;
                events.push(MediaEvent::SpeechEnded { end });
            }
            None => {}
        }
        self.decide_barge_in(now, playout, events);
    }

    /// Records the frame sent to the caller in this tick as the echo reference.
    pub fn push_reference(&mut self, sent: Option<&Frame>) {
        self.gate.push_reference(sent);
    }

    /// Forgets speech in progress, for example while the call is on hold, and lets playout
    /// held for it go on.
    pub fn pause(&mut self, playout: &mut PlayoutQueue) {
        self.speech.reset();
        self.clear_frames = 0;
        self.barged_this_turn = false;
        self.release_hold(playout);
    }

    /// True while confirmed caller speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.speech.is_speaking()
    }

    /// Echo return loss measured on this call, in dB.
    pub fn echo_return_loss_db(&self) -> Option<f32> {
        self.gate.echo_return_loss_db()
    }

    /// Echo delay measured on this call, in milliseconds.
    pub fn echo_delay_ms(&self) -> Option<u32> {
        self.gate.delay_ms()
    }

    /// Counters since the call started.
    pub fn counters(&self) -> TurnCounters {
        self.counters
    }

    /// Holds playout on unconfirmed caller speech over interruptible AI audio, releases the
    /// hold when that speech is dismissed, and fires the barge-in once it is confirmed.
    fn decide_barge_in(
        &mut self,
        now: Instant,
        playout: &mut PlayoutQueue,
        events: &mut Vec<MediaEvent>,
    ) {
        if !self.settings.enabled || self.barged_this_turn {
            return;
        }
        let Some((onset, voiced)) = self.speech.current_run() else {
            // A click or a breath: the run broke before it was confirmed as speech, or the
            // speech ended before it was long enough to interrupt.
            self.release_hold(playout);
            return;
        };
        if self.speech.is_speaking() && voiced >= self.settings.required_frames() {
            self.barge_in(onset, now, playout, events);
            return;
        }
        // The hold stops the AI one onset window earlier than the barge-in could, and costs
        // only a short gap in its speech when the caller's sound turns out not to be speech.
        // Unlike the onset window it allows no gap and wants frames well over the noise
        // floor, since it acts on less evidence.
        let hold_due = self
            .settings
            .hold_frames()
            .is_some_and(|frames| voiced >= frames && self.clear_frames >= frames);
        if hold_due && playout.hold(now) {
            self.counters.holds += 1;
            tracing::debug!(?onset, "playout held for unconfirmed caller speech");
        }
    }

    fn release_hold(&mut self, playout: &mut PlayoutQueue) {
        if playout.release_hold() {
            self.counters.holds_released += 1;
            metrics::BARGE_IN_HOLDS
                .with_label_values(&["released"])
                .inc();
            tracing::debug!("playout hold released; caller speech not confirmed");
        }
    }

    fn barge_in(
        &mut self,
        onset: Instant,
        now: Instant,
        playout: &mut PlayoutQueue,
        events: &mut Vec<MediaEvent>,
    ) {
        let Some(barge_in) = playout.barge_in(onset, now, self.settings.mode) else {
            return;
        };
        self.barged_this_turn = true;
        self.counters.barge_ins += 1;

        let mode = match self.settings.mode {
            BargeInMode::Clear => "clear",
            BargeInMode::Pause => "pause",
        };
        metrics::BARGE_INS.with_label_values(&[mode]).inc();
        let onset_to_decision = now.saturating_duration_since(onset).as_secs_f64();
        metrics::BARGE_IN_CUT
            .with_label_values(&["onset_to_decision"])
            .observe(onset_to_decision);
        if let Some(held) = barge_in.held {
            metrics::BARGE_IN_HOLDS
                .with_label_values(&["confirmed"])
                .inc();
            metrics::BARGE_IN_CUT
                .with_label_values(&["onset_to_hold"])
                .observe(held.saturating_duration_since(onset).as_secs_f64());
        }
        // The cut happens before this tick's packet is built, so the last AI packet was sent
        // in an earlier tick and the span is zero unless a protected segment plays on.
        if let Some(last) = barge_in.last_ai_packet {
            let span = last.saturating_duration_since(now).as_secs_f64();
            metrics::BARGE_IN_CUT
                .with_label_values(&["decision_to_last_packet"])
                .observe(span);
        }
        tracing::debug!(
            segment = ?barge_in.segment,
            played = barge_in.played_samples,
            dropped = barge_in.dropped.len(),
            held = barge_in.held.is_some(),
            mode,
            "barge-in"
        );
        events.push(MediaEvent::BargeIn(barge_in));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audio::{FRAME_SAMPLES, PlayoutCommand, SegmentId};
    use crate::media::playout::SampleStorage;

    /// A vowel-like frame: a gliding fundamental with harmonics whose weights change, since
    /// webrtc-vad adapts to a steady tone within a few frames.
    fn vowel(index: usize, amplitude: f32) -> Frame {
        let mut frame = [0i16; FRAME_SAMPLES];
        let pitch = 120.0 + 40.0 * (index as f32 * 0.7).sin();
        let formant = 3.0 + 2.0 * (index as f32 * 1.3).cos();
        for (i, sample) in frame.iter_mut().enumerate() {
            let t = (index * FRAME_SAMPLES + i) as f32 / 16_000.0;
            let mut value = 0.0;
            for (harmonic, weight) in [(1.0, 1.0), (2.0, 0.6), (formant, 0.8), (6.0, 0.2)] {
                value += weight * (2.0 * std::f32::consts::PI * pitch * harmonic * t).sin();
            }
            *sample = (amplitude * value / 2.2) as i16;
        }
        frame
    }

    fn queue_with_speech() -> PlayoutQueue {
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        queue.apply(PlayoutCommand::Audio {
            segment: SegmentId(1),
            pcm: vec![0; 16_000 * 5],
            interruptible: true,
        });
        queue
    }

    fn run(settings: BargeInSettings, queue: &mut PlayoutQueue) -> (Vec<MediaEvent>, usize) {
        let start = Instant::now();
        let mut detector = TurnDetector::new(settings);
        let mut events = Vec::new();
        let mut frame_out = [0i16; FRAME_SAMPLES];
        let mut decided_at = 0;
        for index in 0..50 {
            let now = start + Duration::from_millis(20 * index as u64);
            let frame = if index >= 10 {
                vowel(index, 6000.0)
            } else {
                [0; FRAME_SAMPLES]
            };
            let before = events.len();
            detector.process(now, &frame, queue, &mut events);
            if decided_at == 0
                && events[before..]
                    .iter()
                    .any(|e| matches!(e, MediaEvent::BargeIn(_)))
            {
                decided_at = index;
            }
            queue.next_frame(now, &mut frame_out, &mut Vec::new());
            detector.push_reference(None);
        }
        (events, decided_at)
    }

    #[test]
    fn pause_mode_decides_at_onset() {
        let mut queue = queue_with_speech();
        let settings = BargeInSettings {
            mode: BargeInMode::Pause,
            ..BargeInSettings::default()
        };
        let (events, decided_at) = run(settings, &mut queue);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, MediaEvent::SpeechStarted { .. }))
        );
        // Speech starts at frame 10; the 80 ms onset window is four frames.
        assert!(
            (13..=14).contains(&decided_at),
            "decided at frame {decided_at}"
        );
        assert!(queue.is_paused());
    }

    /// Feeds one frame per character (`v` a vowel, `.` silence) and returns, per frame,
    /// whether playout was held and whether a barge-in fired.
    fn run_pattern(
        settings: BargeInSettings,
        queue: &mut PlayoutQueue,
        pattern: &str,
    ) -> (Vec<(bool, bool)>, TurnDetector) {
        let start = Instant::now();
        let mut detector = TurnDetector::new(settings);
        let mut frame_out = [0i16; FRAME_SAMPLES];
        let mut states = Vec::new();
        // Silence first, so that webrtc-vad has adapted to the quiet line.
        let lead = ".".repeat(10);
        for (index, c) in lead.chars().chain(pattern.chars()).enumerate() {
            let now = start + Duration::from_millis(20 * index as u64);
            let frame = if c == 'v' {
                vowel(index, 6000.0)
            } else {
                [0; FRAME_SAMPLES]
            };
            let mut events = Vec::new();
            detector.process(now, &frame, queue, &mut events);
            let barged = events.iter().any(|e| matches!(e, MediaEvent::BargeIn(_)));
            if index >= lead.len() {
                states.push((queue.is_held(), barged));
            }
            queue.next_frame(now, &mut frame_out, &mut Vec::new());
            detector.push_reference(None);
        }
        (states, detector)
    }

    #[test]
    fn hold_comes_before_barge_in() {
        let mut queue = queue_with_speech();
        let (states, detector) = run_pattern(BargeInSettings::default(), &mut queue, "vvvvvv");
        let held_at = states.iter().position(|(held, _)| *held);
        let barged_at = states.iter().position(|(_, barged)| *barged);
        // 40 ms hold: two voiced frames; 80 ms onset window: four.
        assert_eq!(held_at, Some(1), "states {states:?}");
        assert_eq!(barged_at, Some(3), "states {states:?}");
        assert!(queue.is_paused());
        assert!(!queue.is_held());
        assert_eq!(detector.counters().holds_released, 0);
    }

    #[test]
    fn click_releases_hold() {
        let mut queue = queue_with_speech();
        let (states, detector) = run_pattern(BargeInSettings::default(), &mut queue, "vv.........");
        assert!(states.iter().any(|(held, _)| *held), "states {states:?}");
        assert!(!states.iter().any(|(_, barged)| *barged));
        assert!(!queue.is_held());
        assert!(!queue.is_paused());
        assert_eq!(detector.counters().holds, 1);
        assert_eq!(detector.counters().holds_released, 1);
        assert_eq!(detector.counters().barge_ins, 0);
    }

    #[test]
    fn hold_off_waits_for_onset_window() {
        let mut queue = queue_with_speech();
        let settings = BargeInSettings {
            hold_ms: 0,
            ..BargeInSettings::default()
        };
        let (states, _) = run_pattern(settings, &mut queue, "vvvvvv");
        assert!(!states.iter().any(|(held, _)| *held), "states {states:?}");
        assert_eq!(states.iter().position(|(_, barged)| *barged), Some(3));
    }

    #[test]
    fn clear_mode_holds_until_min_interruption() {
        let mut queue = queue_with_speech();
        let settings = BargeInSettings {
            mode: BargeInMode::Clear,
            ..BargeInSettings::default()
        };
        let (states, _) = run_pattern(settings, &mut queue, &"v".repeat(12));
        let held_at = states.iter().position(|(held, _)| *held);
        let barged_at = states.iter().position(|(_, barged)| *barged);
        assert_eq!(held_at, Some(1));
        // 200 ms of voiced audio is ten frames; held all along until then.
        assert_eq!(barged_at, Some(9));
        assert!(states[1..9].iter().all(|(held, _)| *held));
        assert!(!queue.has_interruptible());
    }

    #[test]
    fn no_hold_without_interruptible_audio() {
        let mut queue = PlayoutQueue::new(SampleStorage::Linear);
        let (states, detector) = run_pattern(BargeInSettings::default(), &mut queue, "vvvvvv");
        assert!(!states.iter().any(|(held, barged)| *held || *barged));
        assert_eq!(detector.counters().holds_released, 0);
    }

    #[test]
    fn clear_mode_waits_for_min_interruption() {
        let mut queue = queue_with_speech();
        let settings = BargeInSettings {
            mode: BargeInMode::Clear,
            ..BargeInSettings::default()
        };
        let (events, decided_at) = run(settings, &mut queue);
        // 200 ms of voiced audio is ten frames.
        assert!(
            (19..=20).contains(&decided_at),
            "decided at frame {decided_at}"
        );
        let barge_ins = events
            .iter()
            .filter(|e| matches!(e, MediaEvent::BargeIn(_)))
            .count();
        assert_eq!(barge_ins, 1);
        assert!(!queue.has_interruptible());
    }

    #[test]
    fn disabled_never_barges_in() {
        let mut queue = queue_with_speech();
        let settings = BargeInSettings {
            enabled: false,
            ..BargeInSettings::default()
        };
        let (events, decided_at) = run(settings, &mut queue);
        assert_eq!(decided_at, 0);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, MediaEvent::SpeechStarted { .. }))
        );
        assert!(queue.has_interruptible());
    }
}
