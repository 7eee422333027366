//! Voice activity detection on internal frames, with `webrtc-vad` (libfvad).
//!
//! `webrtc_vad::Vad` holds a raw pointer, so it is neither `Send` nor `Sync`: a
//! [`VoiceDetector`] is created on the media worker thread that owns the call and never
//! leaves it. The wrapped library panics on an empty slice and rejects lengths other than
//! 10, 20 or 30 ms; [`VoiceDetector::is_voice`] only ever passes whole internal frames.

use webrtc_vad::{SampleRate, Vad, VadMode};

use crate::audio::{FRAME_SAMPLES, Frame};

/// A webrtc-vad instance for 16 kHz internal frames.
pub struct VoiceDetector {
    vad: Vad,
}

impl VoiceDetector {
    /// Creates a detector with aggressiveness `mode` (0 least to 3 most; larger values
    /// are treated as 3).
    pub fn new(mode: u8) -> Self {
        let mode = match mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        Self {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate16kHz, mode),
        }
    }

    /// Classifies one 20 ms frame; returns true when it contains speech.
    pub fn is_voice(&mut self, frame: &Frame) -> bool {
        // The array type fixes the length at 320 samples (20 ms at 16 kHz), one of the three
        // lengths libfvad accepts; an error can therefore only mean "no speech".
        debug_assert_eq!(frame.len(), FRAME_SAMPLES);
        self.vad.is_voice_segment(frame).unwrap_or(false)
    }

    /// Forgets the adaptive noise state, for example after the caller's source changed.
    pub fn reset(&mut self, mode: u8) {
        *self = Self::new(mode);
    }
}

impl std::fmt::Debug for VoiceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceDetector").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f32, hz: f32, frame_index: usize) -> Frame {
        let mut frame = [0i16; FRAME_SAMPLES];
        for (i, sample) in frame.iter_mut().enumerate() {
            let t = (frame_index * FRAME_SAMPLES + i) as f32 / 16_000.0;
            *sample = (amplitude * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16;
        }
        frame
    }

    #[test]
    fn silence_is_not_voice() {
        let mut vad = VoiceDetector::new(3);
        let silent = [0i16; FRAME_SAMPLES];
        for _ in 0..50 {
            assert!(!vad.is_voice(&silent));
        }
    }

    #[test]
    fn voiced_harmonics_are_voice() {
        let mut vad = VoiceDetector::new(0);
        let mut voiced = 0;
        for index in 0..50 {
            // A 150 Hz fundamental with harmonics, like a vowel.
            let mut frame = tone(6000.0, 150.0, index);
            for (h, amplitude) in [(300.0, 3000.0), (450.0, 2000.0), (900.0, 1000.0)] {
                let extra = tone(amplitude, h, index);
                for (s, e) in frame.iter_mut().zip(extra) {
                    *s = s.saturating_add(e);
                }
            }
            if vad.is_voice(&frame) {
                voiced += 1;
            }
        }
        assert!(voiced > 40, "only {voiced} of 50 frames voiced");
    }
}
