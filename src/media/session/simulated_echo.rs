//! A simulated echo path for the test caller: the audio a session hears is sent back to the
//! far end, attenuated and delayed, like the echo of a telephone hybrid or a speakerphone.

use std::collections::VecDeque;

use crate::audio::{FRAME_SAMPLES, Frame, SAMPLE_RATE};

/// Gain and delay of a simulated echo path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedEcho {
    /// Gain of the echo relative to the heard audio, in dB (negative attenuates).
    pub gain_db: f32,
    /// Time from hearing a sample to sending its echo, in milliseconds.
    pub delay_ms: u32,
}

/// The delay line of a [`SimulatedEcho`], fed one heard frame per 20 ms frame.
#[derive(Debug, Clone)]
pub struct EchoDelayLine {
    gain: f32,
    /// Heard samples not yet echoed, oldest first. Outside `next_echo` it contains exactly the
    /// delay's worth of samples, so the front is the sample whose echo is due next.
    pending: VecDeque<i16>,
    echo: Frame,
}

impl EchoDelayLine {
    /// Creates a line that starts out silent for the first `delay_ms`.
    pub fn new(settings: SimulatedEcho) -> Self {
        let delay_samples = settings.delay_ms as usize * SAMPLE_RATE as usize / 1_000;
        Self {
            gain: 10f32.powf(settings.gain_db / 20.0),
            pending: std::iter::repeat_n(0, delay_samples).collect(),
            echo: [0; FRAME_SAMPLES],
        }
    }

    /// Feeds the frame heard in this frame period (`None`, when nothing was heard, counts as
    /// silence so that the delay stays true to wall time) and returns the echo due now.
    pub fn next_echo(&mut self, heard: Option<&Frame>) -> &Frame {
        match heard {
            Some(frame) => self.pending.extend(frame.iter()),
            None => self.pending.extend(std::iter::repeat_n(0, FRAME_SAMPLES)),
        }
        for (out, sample) in self
            .echo
            .iter_mut()
            .zip(self.pending.drain(..FRAME_SAMPLES))
        {
            *out = (f32::from(sample) * self.gain).round() as i16;
        }
        &self.echo
    }
}

/// Adds `echo` to `out`, saturating at full scale, and returns whether the echo had any
/// non-zero sample.
pub fn mix_echo(out: &mut Frame, echo: &Frame) -> bool {
    let mut audible = false;
    for (sample, &added) in out.iter_mut().zip(echo.iter()) {
        *sample = sample.saturating_add(added);
        audible |= added != 0;
    }
    audible
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(value: i16) -> Frame {
        [value; FRAME_SAMPLES]
    }

    fn line(gain_db: f32, delay_ms: u32) -> EchoDelayLine {
        EchoDelayLine::new(SimulatedEcho { gain_db, delay_ms })
    }

    #[test]
    fn zero_delay_echoes_same_frame() {
        let mut line = line(0.0, 0);
        assert_eq!(line.next_echo(Some(&frame(1_000))), &frame(1_000));
        assert_eq!(line.next_echo(None), &frame(0));
    }

    #[test]
    fn delay_shifts_by_whole_frames() {
        let mut line = line(0.0, 60);
        let mut echoes = Vec::new();
        for value in [100, 200, 300, 400, 500] {
            echoes.push(line.next_echo(Some(&frame(value)))[0]);
        }
        assert_eq!(echoes, [0, 0, 0, 100, 200]);
    }

    #[test]
    fn delay_inside_a_frame_splits_it() {
        // 5 ms is 80 samples at 16 kHz.
        let mut line = line(0.0, 5);
        let first = *line.next_echo(Some(&frame(100)));
        assert!(first[..80].iter().all(|&s| s == 0), "{:?}", &first[..80]);
        assert!(first[80..].iter().all(|&s| s == 100), "{:?}", &first[80..]);
        let second = *line.next_echo(Some(&frame(200)));
        assert!(second[..80].iter().all(|&s| s == 100));
        assert!(second[80..].iter().all(|&s| s == 200));
    }

    #[test]
    fn missing_frames_count_as_silence() {
        let mut line = line(0.0, 20);
        line.next_echo(Some(&frame(100)));
        assert_eq!(line.next_echo(None), &frame(100));
        assert_eq!(line.next_echo(Some(&frame(300))), &frame(0));
        assert_eq!(line.next_echo(None), &frame(300));
    }

    #[test]
    fn gain_attenuates_in_decibels() {
        for (gain_db, expected) in [(0.0, 10_000), (-6.0, 5_012), (-20.0, 1_000), (-40.0, 100)] {
            let mut line = line(gain_db, 0);
            let echo = line.next_echo(Some(&frame(10_000)))[0];
            assert_eq!(echo, expected, "gain {gain_db} dB");
        }
        let mut line = line(-12.0, 0);
        assert_eq!(line.next_echo(Some(&frame(-8_000)))[0], -2_010);
    }

    #[test]
    fn mix_adds_echo_to_played_audio() {
        let mut out = frame(1_000);
        assert!(mix_echo(&mut out, &frame(-250)));
        assert_eq!(out, frame(750));
    }

    #[test]
    fn mix_of_silent_echo_is_not_audible() {
        let mut out = frame(1_000);
        assert!(!mix_echo(&mut out, &frame(0)));
        assert_eq!(out, frame(1_000));
    }

    #[test]
    fn mix_saturates_at_full_scale() {
        let mut loud = frame(30_000);
        mix_echo(&mut loud, &frame(10_000));
        assert_eq!(loud, frame(i16::MAX));
        let mut low = frame(-30_000);
        mix_echo(&mut low, &frame(-10_000));
        assert_eq!(low, frame(i16::MIN));
    }
}
