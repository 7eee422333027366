//! In-band DTMF tones (ITU-T Q.23 frequency pairs), for calls that did not negotiate
//! telephone-event.

use crate::audio::{Frame, SAMPLE_RATE};

use super::outbound::{DTMF_GAP, DTMF_TONE};

/// A tone being played, followed by its gap.
#[derive(Debug, Clone, Copy)]
pub struct DtmfTone {
    low: f32,
    high: f32,
    sample: u32,
}

impl DtmfTone {
    /// Returns the tone of `digit`, or `None` for a character that is not a DTMF digit.
    pub fn new(digit: char) -> Option<Self> {
        const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
        const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
        let (row, column) = match digit {
            '1' => (0, 0),
            '2' => (0, 1),
            '3' => (0, 2),
            'A' => (0, 3),
            '4' => (1, 0),
            '5' => (1, 1),
            '6' => (1, 2),
            'B' => (1, 3),
            '7' => (2, 0),
            '8' => (2, 1),
            '9' => (2, 2),
            'C' => (2, 3),
            '*' => (3, 0),
            '0' => (3, 1),
            '#' => (3, 2),
            'D' => (3, 3),
            _ => return None,
        };
        Some(Self {
            low: LOW[row],
            high: HIGH[column],
            sample: 0,
        })
    }

    /// Fills the next frame with the tone or the gap after it.
    pub fn fill(&mut self, frame: &mut Frame) {
        let tone_samples = duration_samples(DTMF_TONE.as_millis());
        let two_pi = 2.0 * std::f32::consts::PI;
        for sample in frame.iter_mut() {
            *sample = if self.sample < tone_samples {
                let t = self.sample as f32 / SAMPLE_RATE as f32;
                // About -10 dBm0 per frequency, like the RFC 4733 events we send otherwise.
                let value = (two_pi * self.low * t).sin() + (two_pi * self.high * t).sin();
                (5_000.0 * value) as i16
            } else {
                0
            };
            self.sample += 1;
        }
    }

    /// True once the tone and its gap have been played.
    pub fn is_done(&self) -> bool {
        self.sample >= duration_samples((DTMF_TONE + DTMF_GAP).as_millis())
    }
}

fn duration_samples(ms: u128) -> u32 {
    (ms as u32) * SAMPLE_RATE / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn energy_at(samples: &[i16], hz: f32) -> f32 {
        // Goertzel power at one frequency.
        let coefficient = 2.0 * (2.0 * std::f32::consts::PI * hz / SAMPLE_RATE as f32).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in samples {
            let s0 = f32::from(x) + coefficient * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - coefficient * s1 * s2
    }

    #[test]
    fn digit_five_has_its_two_frequencies() {
        let mut tone = DtmfTone::new('5').unwrap();
        let mut samples = Vec::new();
        for _ in 0..4 {
            let mut frame = [0i16; FRAME_SAMPLES];
            tone.fill(&mut frame);
            samples.extend_from_slice(&frame);
        }
        let on = energy_at(&samples, 770.0).min(energy_at(&samples, 1336.0));
        let off = energy_at(&samples, 697.0).max(energy_at(&samples, 1209.0));
        assert!(on > off * 20.0, "on {on} off {off}");
    }

    #[test]
    fn tone_then_gap_then_done() {
        let mut tone = DtmfTone::new('#').unwrap();
        let mut frame = [0i16; FRAME_SAMPLES];
        for _ in 0..6 {
            assert!(!tone.is_done());
            tone.fill(&mut frame);
        }
        assert!(
            frame.iter().all(|&s| s == 0),
            "the sixth frame is in the gap"
        );
        for _ in 0..2 {
            tone.fill(&mut frame);
        }
        assert!(tone.is_done());
        assert!(DtmfTone::new('x').is_none());
    }
}
