//! Outbound-reference echo gate: keeps the AI's own voice, echoed back by the far end, and
//! steady background noise from counting as caller speech.
//!
//! Telephone paths often return our audio to us: a hybrid in the PSTN or a speakerphone,
//! attenuated by the echo return loss (ERL, commonly 6 to 20 dB) and delayed by the network
//! round trip (commonly 50 to 300 ms). webrtc-vad calls that echo speech. Raising the VAD
//! threshold would also silence quiet callers, so the gate instead predicts the echo from
//! the signal we sent:
//!
//! 1. The energy of every 10 ms block we send is kept for [`MAX_DELAY_MS`].
//! 2. The echo delay is the lag at which the envelope of the received signal correlates best
//!    with the envelope of the sent signal (normalised cross-correlation of mean-removed RMS
//!    envelopes, averaged over about a second of reference activity).
//! 3. The echo gain is the loudest received-to-sent energy ratio seen over the last
//!    [`GAIN_WINDOW`] active blocks, so the prediction errs towards loud echo. Two gains are
//!    kept. One is measured against the loudest block sent at any lag and predicts the echo
//!    from that same block, so it holds whether or not the delay is known. A line without
//!    echo is learned as such within a second of AI speech. The other is measured against
//!    the blocks at the estimated delay, restarts whenever the delay moves, and takes over
//!    once it has 32 samples. A delay found (or moved) while the caller
//!    talks over the AI therefore never brings back the assumed [`INITIAL_GAIN_DB`] on a line
//!    already learned to be quiet.
//! 4. A received frame counts as caller speech only if webrtc-vad classifies it as voice, its energy is
//!    [`NOISE_MARGIN_DB`] above the tracked noise floor, and [`ECHO_MARGIN_DB`] above the
//!    predicted echo.
//! 5. From such a frame on, and for 500 ms after the last one, the
//!    delay and gain estimates are frozen, because the caller's voice would pull them off.
//!
//! A cancelling filter (NLMS) over a 240 ms echo path would need thousands of taps per call at
//! 16 kHz; the energy gate costs about a hundred multiply-adds per 10 ms block.

use crate::audio::{FRAME_SAMPLES, Frame};

/// Maximum echo delay the gate models, in milliseconds.
pub const MAX_DELAY_MS: usize = 600;
/// Echo gain assumed before it has been measured, in dB (a 6 dB echo return loss).
pub const INITIAL_GAIN_DB: f32 = -6.0;
/// Caller speech must exceed the predicted echo by this much, in dB.
pub const ECHO_MARGIN_DB: f32 = 6.0;
/// Caller speech must exceed the steady noise floor by this much, in dB.
pub const NOISE_MARGIN_DB: f32 = 6.0;
/// Number of reference-active blocks whose echo gain is remembered.
pub const GAIN_WINDOW: usize = 128;

const BLOCK_SAMPLES: usize = 160;
const BLOCKS_PER_FRAME: usize = FRAME_SAMPLES / BLOCK_SAMPLES;
const MAX_LAG: usize = MAX_DELAY_MS / 10;
/// Reference blocks quieter than about -55 dBFS cannot produce audible echo.
const REF_ACTIVE_ENERGY: f32 = 3_400.0;
/// Gain samples above the current estimate by more than this are taken as double talk.
const ACCEPT_MARGIN_DB: f32 = 3.0;
/// Largest rise of the gain estimate per block, in dB.
const GAIN_RISE_DB: f32 = 0.5;
/// Gain samples needed before the window replaces the initial gain.
const MIN_GAIN_SAMPLES: usize = 32;
/// Correlation averaging weight per active block (time constant about one second).
const CORR_WEIGHT: f32 = 0.01;
/// Envelope mean averaging weight per block.
const MEAN_WEIGHT: f32 = 0.02;
/// Normalised correlation needed to trust a delay.
const MIN_CORRELATION: f32 = 0.3;
/// Active blocks needed before a delay is trusted.
const MIN_CORR_BLOCKS: u32 = 100;
/// Frames after caller speech during which the delay and gain estimates stay as they are,
/// because the caller's voice mixed into the echo would pull them off (double talk).
const DOUBLE_TALK_HANGOVER_FRAMES: u32 = 25;
/// Margin over the any-lag gain with which the gain at a newly found delay starts, in dB.
const SEED_MARGIN_DB: f32 = 0.0;
/// The predicted echo covers this many blocks either side of the estimated delay.
const LAG_SPREAD: usize = 2;

/// Decision for one received frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateDecision {
    /// webrtc-vad voice, above the noise floor and above the predicted echo.
    pub near_end_speech: bool,
    /// webrtc-vad voice and above the noise floor, but explained by echo.
    pub echo_suppressed: bool,
    /// How far the frame's energy is above the tracked noise floor, in dB.
    pub above_floor_db: f32,
}

/// Per-call echo and noise gate.
#[derive(Debug, Clone)]
pub struct EchoGate {
    /// Energies (mean square) of sent blocks, newest at `position`.
    ref_energy: [f32; MAX_LAG + 1],
    /// Mean-removed RMS envelope of sent blocks, aligned with `ref_energy`.
    ref_envelope: [f32; MAX_LAG + 1],
    position: usize,
    ref_mean: f32,
    in_mean: f32,
    correlation: [f32; MAX_LAG + 1],
    ref_variance: [f32; MAX_LAG + 1],
    in_variance: f32,
    corr_blocks: u32,
    delay_blocks: Option<usize>,
    /// Echo gain against the loudest block sent at any lag.
    any_lag: EchoGain,
    /// Echo gain against the blocks at the estimated delay.
    at_delay: EchoGain,
    noise_floor: f32,
    /// Frames left in which caller speech may be mixed into the echo.
    double_talk_frames: u32,
}

/// The echo gain measured against one way of choosing the source block.
#[derive(Debug, Clone)]
struct EchoGain {
    gain_db: f32,
    samples: [f32; GAIN_WINDOW],
    count: usize,
    next: usize,
    /// Started from another estimate, so it predicts before it has samples of its own.
    seeded: bool,
}

impl EchoGain {
    fn new() -> Self {
        Self {
            gain_db: INITIAL_GAIN_DB,
            samples: [0.0; GAIN_WINDOW],
            count: 0,
            next: 0,
            seeded: false,
        }
    }

    /// Starts at `gain_db` and predicts with it until its own samples take over.
    fn seeded(gain_db: f32) -> Self {
        Self {
            gain_db,
            seeded: true,
            ..Self::new()
        }
    }

    fn is_learned(&self) -> bool {
        self.seeded || self.count >= MIN_GAIN_SAMPLES
    }

    /// Echo energy predicted from `source`, the reference energy that may be echoing.
    fn predict(&self, source: f32) -> f32 {
        from_db(self.gain_db) * source
    }

    /// Takes one frame that did not rise above this gain's prediction as echo of `source`.
    fn update(&mut self, frame_energy: f32, source: f32) {
        if source < REF_ACTIVE_ENERGY {
            return;
        }
        let sample = to_db(frame_energy / source);
        if sample > self.gain_db + ACCEPT_MARGIN_DB {
            return;
        }
        self.samples[self.next] = sample;
        self.next = (self.next + 1) % GAIN_WINDOW;
        self.count = (self.count + 1).min(GAIN_WINDOW);
        if self.count < MIN_GAIN_SAMPLES {
            return;
        }
        let loudest = self.samples[..self.count]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        self.gain_db = if loudest > self.gain_db {
            (self.gain_db + GAIN_RISE_DB).min(loudest)
        } else {
            loudest
        };
    }

    /// Median of the measured gains, once learned.
    fn median_db(&self) -> Option<f32> {
        if self.count < MIN_GAIN_SAMPLES {
            return None;
        }
        let mut samples = self.samples;
        let measured = &mut samples[..self.count];
        measured.sort_by(f32::total_cmp);
        Some(measured[measured.len() / 2])
    }
}

impl Default for EchoGate {
    fn default() -> Self {
        Self::new()
    }
}

fn block_energy(samples: &[i16]) -> f32 {
    let sum: i64 = samples.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    sum as f32 / samples.len().max(1) as f32
}

fn to_db(ratio: f32) -> f32 {
    10.0 * ratio.max(1e-12).log10()
}

fn from_db(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

impl EchoGate {
    /// Creates a gate with no reference history.
    pub fn new() -> Self {
        Self {
            ref_energy: [0.0; MAX_LAG + 1],
            ref_envelope: [0.0; MAX_LAG + 1],
            position: 0,
            ref_mean: 0.0,
            in_mean: 0.0,
            correlation: [0.0; MAX_LAG + 1],
            ref_variance: [0.0; MAX_LAG + 1],
            in_variance: 0.0,
            corr_blocks: 0,
            delay_blocks: None,
            any_lag: EchoGain::new(),
            at_delay: EchoGain::new(),
            noise_floor: f32::INFINITY,
            double_talk_frames: 0,
        }
    }

    /// Records the frame just sent to the caller (`None` for silence or comfort noise).
    pub fn push_reference(&mut self, sent: Option<&Frame>) {
        for block in 0..BLOCKS_PER_FRAME {
            let energy = match sent {
                Some(frame) => {
                    block_energy(&frame[block * BLOCK_SAMPLES..(block + 1) * BLOCK_SAMPLES])
                }
                None => 0.0,
            };
            let rms = energy.sqrt();
            self.ref_mean += MEAN_WEIGHT * (rms - self.ref_mean);
            self.position = (self.position + 1) % (MAX_LAG + 1);
            self.ref_energy[self.position] = energy;
            self.ref_envelope[self.position] = rms - self.ref_mean;
        }
    }

    /// Classifies one received frame, given webrtc-vad's decision for it, and updates the
    /// noise floor, delay and gain estimates. Call once per tick, after
    /// [`push_reference`](Self::push_reference) for the same tick.
    pub fn classify(&mut self, received: &Frame, vad_voice: bool) -> GateDecision {
        let learn = self.double_talk_frames == 0;
        let mut frame_energy = 0.0;
        let mut any_source = 0.0;
        let mut delay_source = 0.0;
        // The two blocks of this frame line up with the two newest reference blocks; the
        // older one is one block further back in the history.
        for block in 0..BLOCKS_PER_FRAME {
            let energy =
                block_energy(&received[block * BLOCK_SAMPLES..(block + 1) * BLOCK_SAMPLES]);
            let age = BLOCKS_PER_FRAME - 1 - block;
            self.update_correlation(energy, age, learn);
            frame_energy += energy;
            any_source += self.source_energy(age, None);
            delay_source += self.source_energy(age, self.delay_blocks);
        }
        frame_energy /= BLOCKS_PER_FRAME as f32;
        any_source /= BLOCKS_PER_FRAME as f32;
        delay_source /= BLOCKS_PER_FRAME as f32;

        let floor = self.noise_floor;
        let above_floor = frame_energy > floor * from_db(NOISE_MARGIN_DB);
        self.update_noise_floor(frame_energy);
        let margin = from_db(ECHO_MARGIN_DB);
        let predicted_any = self.any_lag.predict(any_source);
        if learn && frame_energy <= predicted_any * margin {
            self.any_lag.update(frame_energy, any_source);
        }
        let predicted = if self.delay_blocks.is_some() && self.at_delay.is_learned() {
            let predicted_at_delay = self.at_delay.predict(delay_source);
            if learn && frame_energy <= predicted_at_delay * margin {
                self.at_delay.update(frame_energy, delay_source);
            }
            predicted_at_delay
        } else {
            if learn && self.delay_blocks.is_some() && frame_energy <= predicted_any * margin {
                self.at_delay.update(frame_energy, delay_source);
            }
            predicted_any
        };
        let above_echo = frame_energy > predicted * margin;
        let near_end_speech = vad_voice && above_floor && above_echo;
        // The quieter frames of the caller's speech fall under the prediction and would be
        // taken as loud echo, which hides more of the caller, and so on. Once the gate has
        // learned the line, it stops learning while the caller talks.
        if near_end_speech && self.any_lag.is_learned() {
            self.double_talk_frames = DOUBLE_TALK_HANGOVER_FRAMES;
        } else {
            self.double_talk_frames = self.double_talk_frames.saturating_sub(1);
        }

        let candidate = vad_voice && above_floor;
        GateDecision {
            near_end_speech: candidate && above_echo,
            echo_suppressed: candidate && !above_echo,
            // The floor starts infinite and is at least 1.0 once a frame raised it.
            above_floor_db: to_db(frame_energy / floor.max(1.0)),
        }
    }

    /// Estimated echo delay in milliseconds, once the correlation is trustworthy.
    pub fn delay_ms(&self) -> Option<u32> {
        self.delay_blocks.map(|blocks| blocks as u32 * 10)
    }

    /// Estimated echo return loss in dB (the median of the measured gains, negated), once
    /// the delay is known and enough echo has been measured.
    pub fn echo_return_loss_db(&self) -> Option<f32> {
        self.delay_blocks?;
        self.at_delay.median_db().map(|gain| -gain)
    }

    /// Returns the echo gain the gate currently predicts with, in dB.
    pub fn assumed_gain_db(&self) -> f32 {
        if self.delay_blocks.is_some() && self.at_delay.is_learned() {
            self.at_delay.gain_db
        } else {
            self.any_lag.gain_db
        }
    }

    /// Index into the reference history of the block sent `lag` blocks before the block of
    /// age `age` (0 is the newest).
    fn ref_index(&self, age: usize, lag: usize) -> usize {
        let back = (age + lag) % (MAX_LAG + 1);
        (self.position + MAX_LAG + 1 - back) % (MAX_LAG + 1)
    }

    fn reference_active(&self) -> bool {
        self.ref_energy.iter().any(|&e| e > REF_ACTIVE_ENERGY)
    }

    /// Largest reference energy that can be echoing in the block of age `age`: at any lag, or
    /// around `delay` blocks.
    fn source_energy(&self, age: usize, delay: Option<usize>) -> f32 {
        let (first, last) = match delay {
            Some(delay) => (
                delay.saturating_sub(LAG_SPREAD),
                (delay + LAG_SPREAD).min(MAX_LAG - age),
            ),
            None => (0, MAX_LAG - age),
        };
        (first..=last)
            .map(|lag| self.ref_energy[self.ref_index(age, lag)])
            .fold(0.0, f32::max)
    }

    fn update_correlation(&mut self, energy: f32, age: usize, learn: bool) {
        let rms = energy.sqrt();
        self.in_mean += MEAN_WEIGHT * (rms - self.in_mean);
        if !learn || !self.reference_active() {
            return;
        }
        let received = rms - self.in_mean;
        self.in_variance += CORR_WEIGHT * (received * received - self.in_variance);
        let mut best = (0.0f32, 0usize);
        for lag in 0..=(MAX_LAG - age) {
            let sent = self.ref_envelope[self.ref_index(age, lag)];
            self.correlation[lag] += CORR_WEIGHT * (received * sent - self.correlation[lag]);
            self.ref_variance[lag] += CORR_WEIGHT * (sent * sent - self.ref_variance[lag]);
            let denominator = (self.ref_variance[lag] * self.in_variance).sqrt();
            if denominator > 0.0 {
                let score = self.correlation[lag] / denominator;
                if score > best.0 {
                    best = (score, lag);
                }
            }
        }
        self.corr_blocks = self.corr_blocks.saturating_add(1);
        if self.corr_blocks >= MIN_CORR_BLOCKS && best.0 >= MIN_CORRELATION {
            let moved = self
                .delay_blocks
                .is_none_or(|delay| delay.abs_diff(best.1) > LAG_SPREAD);
            self.delay_blocks = Some(best.1);
            if moved {
                // Gains measured against another lag do not predict the echo at this one.
                // The any-lag gain is the loudest ratio to the loudest block sent, which is
                // the ratio at the true delay whenever that block was the loudest. Starting
                // from it, a little higher, tightens the prediction at once instead of after
                // another 32 samples, during which the caller would stay hidden.
                self.at_delay = if self.any_lag.is_learned() {
                    EchoGain::seeded(self.any_lag.gain_db + SEED_MARGIN_DB)
                } else {
                    EchoGain::new()
                };
            }
        }
    }

    fn update_noise_floor(&mut self, frame_energy: f32) {
        if frame_energy < self.noise_floor {
            // Falls within a few frames, so a quiet line is learned quickly.
            self.noise_floor = if self.noise_floor.is_finite() {
                0.7 * self.noise_floor + 0.3 * frame_energy
            } else {
                frame_energy
            };
        } else {
            // Rises by about 3 dB per second: slow enough that the peaks of speech, 20 dB and
            // more above its pauses, stay above the floor, and fast enough to follow noise
            // whose level drifts (traffic, brown noise).
            self.noise_floor = (self.noise_floor * 1.014).max(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic speech-like signal: noise whose loudness follows syllables of varying
    /// length, with pauses between them.
    struct Talker {
        state: u64,
        syllable_left: usize,
        amplitude: f32,
    }

    impl Talker {
        fn new(seed: u64) -> Self {
            Self {
                state: seed,
                syllable_left: 0,
                amplitude: 0.0,
            }
        }

        fn next_random(&mut self) -> f32 {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        }

        fn sample(&mut self, level: f32) -> f32 {
            if self.syllable_left == 0 {
                self.syllable_left = 1600 + ((self.next_random().abs() * 4000.0) as usize);
                self.amplitude = if self.next_random() > -0.4 {
                    level
                } else {
                    0.0
                };
            }
            self.syllable_left -= 1;
            self.amplitude * self.next_random()
        }
    }

    fn frame_of(samples: &[f32]) -> Frame {
        let mut frame = [0i16; FRAME_SAMPLES];
        for (out, &s) in frame.iter_mut().zip(samples) {
            *out = s.clamp(-32768.0, 32767.0) as i16;
        }
        frame
    }

    /// Runs 8 s of AI speech with its echo and an optional caller `(start second, level)`.
    /// Returns the near-end frames before the caller, those during the caller, and the gate.
    fn run(
        delay_ms: usize,
        attenuation_db: f32,
        caller: Option<(f32, f32)>,
    ) -> (usize, usize, EchoGate) {
        let mut gate = EchoGate::new();
        let mut ai = Talker::new(7);
        let mut person = Talker::new(99);
        let delay = delay_ms * 16;
        let mut sent_history = vec![0f32; delay];
        let gain = 10f32.powf(-attenuation_db / 20.0);
        let (mut before, mut during) = (0, 0);
        for index in 0..(8 * 50) {
            let sent: Vec<f32> = (0..FRAME_SAMPLES).map(|_| ai.sample(8000.0)).collect();
            sent_history.extend_from_slice(&sent);
            let echo = &sent_history[index * FRAME_SAMPLES..(index + 1) * FRAME_SAMPLES];
            let seconds = index as f32 / 50.0;
            let mut received: Vec<f32> = echo.iter().map(|s| s * gain).collect();
            let caller_on = matches!(caller, Some((from, _)) if seconds >= from);
            if let Some((_, level)) = caller.filter(|_| caller_on) {
                for r in received.iter_mut() {
                    *r += person.sample(level);
                }
            }
            gate.push_reference(Some(&frame_of(&sent)));
            let decision = gate.classify(&frame_of(&received), true);
            if decision.near_end_speech {
                if caller_on { during += 1 } else { before += 1 }
            }
        }
        (before, during, gate)
    }

    #[test]
    fn double_talk_keeps_estimates() {
        // The caller talks over the AI from 1.5 s, before the gate could learn much, at the
        // AI's level and 4 dB below it. Its speech must neither raise the echo gain nor move
        // the delay, and must pass nearly whole.
        for (delay, attenuation, level) in [
            (150, 12.0, 8000.0),
            (150, 12.0, 5000.0),
            (100, 12.0, 5000.0),
            (50, 6.0, 8000.0),
            (200, 20.0, 5000.0),
            (150, 30.0, 8000.0),
        ] {
            let case = format!("delay {delay} ms, echo -{attenuation} dB, caller {level}");
            let (before, during, gate) = run(delay, attenuation, Some((1.5, level)));
            assert_eq!(before, 0, "{case}");
            let gain = gate.assumed_gain_db();
            assert!(
                (gain + attenuation).abs() <= 3.0,
                "{case}: gain {gain:.1} dB"
            );
            let estimated = gate.delay_ms().unwrap_or(0);
            assert!(
                estimated.abs_diff(delay as u32) <= 20,
                "{case}: estimated delay {estimated} ms"
            );
            // Of the 325 frames from 1.5 s to 8 s, about 230 carry the caller's syllables.
            assert!(during >= 170, "{case}: only {during} caller frames passed");
        }
    }

    #[test]
    fn echo_never_counts_as_speech() {
        for (delay, attenuation) in [(50, 6.0), (120, 12.0), (240, 18.0), (240, 20.0)] {
            let (before, _, gate) = run(delay, attenuation, None);
            assert_eq!(before, 0, "delay {delay} ms, attenuation {attenuation} dB");
            let estimated = gate.delay_ms().unwrap_or(0);
            assert!(
                estimated.abs_diff(delay as u32) <= 20,
                "estimated delay {estimated} ms for {delay} ms"
            );
        }
    }

    #[test]
    fn echo_return_loss_measured() {
        let (_, _, gate) = run(240, 18.0, None);
        let erl = gate.echo_return_loss_db().unwrap_or(0.0);
        assert!((12.0..=20.0).contains(&erl), "echo return loss {erl} dB");
    }

    #[test]
    fn quiet_caller_passes_over_echo() {
        // AI at about -16 dBFS, echo 18 dB down, caller 6 dB below the AI.
        let (before, during, _) = run(240, 18.0, Some((4.0, 4000.0)));
        assert_eq!(before, 0);
        assert!(during > 20, "only {during} caller frames passed");
    }

    #[test]
    fn talk_over_echo_free_line_passes() {
        // Two seconds of AI speech over a silent line teach the gate that nothing echoes.
        // The caller then talks over the AI. A delay estimate that the caller's own speech
        // may produce must not bring back the assumed echo gain and hide the caller.
        let mut gate = EchoGate::new();
        let mut ai = Talker::new(7);
        let mut person = Talker::new(11);
        let silent = [0i16; FRAME_SAMPLES];
        for _ in 0..100 {
            let sent: Vec<f32> = (0..FRAME_SAMPLES).map(|_| ai.sample(8000.0)).collect();
            gate.push_reference(Some(&frame_of(&sent)));
            assert!(!gate.classify(&silent, false).near_end_speech);
        }
        let (mut audible, mut passed) = (0, 0);
        for _ in 0..100 {
            let sent: Vec<f32> = (0..FRAME_SAMPLES).map(|_| ai.sample(8000.0)).collect();
            let received: Vec<f32> = (0..FRAME_SAMPLES).map(|_| person.sample(6000.0)).collect();
            gate.push_reference(Some(&frame_of(&sent)));
            let frame = frame_of(&received);
            let decision = gate.classify(&frame, true);
            if block_energy(&frame) > 0.0 {
                audible += 1;
                passed += usize::from(decision.near_end_speech);
            }
        }
        assert!(audible > 30, "the caller said too little: {audible} frames");
        assert_eq!(passed, audible, "caller frames hidden as echo");
    }

    #[test]
    fn steady_noise_is_not_speech() {
        let mut gate = EchoGate::new();
        let mut noise = Talker::new(3);
        let mut passed = 0;
        for _ in 0..500 {
            let samples: Vec<f32> = (0..FRAME_SAMPLES)
                .map(|_| 300.0 * noise.next_random())
                .collect();
            gate.push_reference(None);
            if gate.classify(&frame_of(&samples), true).near_end_speech {
                passed += 1;
            }
        }
        assert!(passed <= 2, "{passed} noise frames passed");
    }

    #[test]
    fn gate_open_without_reference() {
        let mut gate = EchoGate::new();
        let mut person = Talker::new(5);
        let mut passed = 0;
        for _ in 0..100 {
            let samples: Vec<f32> = (0..FRAME_SAMPLES).map(|_| person.sample(3000.0)).collect();
            gate.push_reference(None);
            if gate.classify(&frame_of(&samples), true).near_end_speech {
                passed += 1;
            }
        }
        assert!(passed > 30, "only {passed} speech frames passed");
    }
}
