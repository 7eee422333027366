//! Sample rate conversion between the internal 16 kHz and the rates codecs, files and speech
//! synthesisers use (8000, 11025, 22050, 24000, 32000, 44100, 48000 Hz and any other pair whose
//! reduced ratio is small enough).
//!
//! [`Resampler`] is a streaming rational polyphase FIR converter. The input and output rates
//! reduce to `up / down`. Output sample `n` sits at `n * down / up` input samples, tracked as
//! an integer position and phase, so the output never drifts however long a call runs. After
//! `k` input samples exactly `ceil(k * up / down)` output samples have been produced, whatever
//! the chunk sizes: 160 samples at 8 kHz always give 320 at 16 kHz.
//!
//! The filter is a Kaiser-windowed sinc with 60 dB stopband attenuation and its -6 dB point at
//! the lower of the two Nyquist frequencies. The transition band is 30% of that frequency
//! wide (3.4-4.6 kHz between 8 and 16 kHz). That is the anti-aliasing filter when downsampling
//! and the anti-imaging filter when upsampling. Tones inside the transition band alias only
//! into the band above the passband. The filter length follows from the width, which keeps the
//! group delay short: about 1.5 ms between 8 and 16 kHz and 0.75 ms from 48 kHz.
//! Coefficient tables are computed once per ratio and shared by every instance, so a
//! converter costs little more than its history buffer.
//!
//! `rubato` (a dependency) offers the same conversions; its sinc resampler keeps a position in
//! floating point and a table per instance, and its polynomial one has no anti-aliasing
//! filter, so the media path uses this converter. `benches/codec.rs` compares the two.

use std::sync::{Arc, Mutex};

/// Stopband attenuation of the filter, in decibels.
const STOPBAND_DB: f64 = 60.0;
/// Width of the transition band relative to the lower Nyquist frequency.
const TRANSITION: f64 = 0.3;
/// Largest reduced `up` factor accepted; bounds the coefficient table to about 64 KiB.
const MAX_UP: u32 = 1024;

/// Why a converter could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// A rate is zero or above 384 kHz.
    #[error("invalid sample rate {0} Hz")]
    InvalidRate(u32),
    /// The reduced ratio needs more polyphase branches than the converter supports.
    #[error("unsupported conversion from {from} Hz to {to} Hz")]
    UnsupportedRatio {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
}

/// Polyphase branches of one conversion ratio, shared between converters.
#[derive(Debug)]
struct Filter {
    up: usize,
    down: usize,
    taps: usize,
    /// `up` branches of `taps` coefficients each, every branch stored newest-sample-last so
    /// that it lines up with the history buffer.
    branches: Vec<f32>,
    /// Group delay in input samples of the upsampled rate (`(length - 1) / 2`).
    delay_upsampled: f64,
}

impl Filter {
    fn design(up: usize, down: usize) -> Self {
        // Frequencies are relative to the input rate: its Nyquist frequency is 0.5, the
        // output's is `0.5 * up / down`, and zero-stuffing runs the filter at rate `up`.
        let upsampled_rate = up as f64;
        let nyquist = (0.5 * up as f64 / down as f64).min(0.5);
        let width = TRANSITION * nyquist;
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let length_estimate =
            (STOPBAND_DB - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * width / upsampled_rate);
        let taps = ((length_estimate / up as f64).ceil() as usize).max(2);
        let length = taps * up;
        // An odd prototype puts the group delay on a whole sample of the upsampled rate, so
        // converting 16 -> 8 -> 16 kHz delays by whole samples and keeps waveforms aligned.
        // The branch table is then padded with one zero coefficient.
        let designed = if length.is_multiple_of(2) {
            length - 1
        } else {
            length
        };
        let center = (designed - 1) as f64 / 2.0;
        let cutoff = nyquist / upsampled_rate;

        let mut prototype: Vec<f64> = (0..length)
            .map(|j| {
                if j >= designed {
                    return 0.0;
                }
                let offset = j as f64 - center;
                let sinc = if offset == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * offset).sin()
                        / (std::f64::consts::PI * offset)
                };
                let ratio = offset / (center + 0.5);
                let window =
                    bessel_i0(beta * (1.0 - ratio * ratio).max(0.0).sqrt()) / bessel_i0(beta);
                sinc * window
            })
            .collect();
        // Unity gain at DC after zero-stuffing, which divides the level by `up`.
        let sum: f64 = prototype.iter().sum();
        for coefficient in &mut prototype {
            *coefficient *= up as f64 / sum;
        }

        let mut branches = vec![0f32; length];
        for phase in 0..up {
            for k in 0..taps {
                branches[phase * taps + (taps - 1 - k)] = prototype[phase + k * up] as f32;
            }
        }
        Self {
            up,
            down,
            taps,
            branches,
            delay_upsampled: center,
        }
    }

    fn branch(&self, phase: usize) -> &[f32] {
        &self.branches[phase * self.taps..(phase + 1) * self.taps]
    }
}

/// Zeroth-order modified Bessel function of the first kind, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= half / k as f64;
        sum += term * term;
        if term * term < sum * 1e-17 {
            break;
        }
    }
    sum
}

fn greatest_common_divisor(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Returns the shared filter for a reduced ratio, designing it on first use.
fn shared_filter(up: usize, down: usize) -> Arc<Filter> {
    static FILTERS: Mutex<Vec<Arc<Filter>>> = Mutex::new(Vec::new());
    let mut filters = FILTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = filters.iter().find(|f| f.up == up && f.down == down) {
        return Arc::clone(found);
    }
    let filter = Arc::new(Filter::design(up, down));
    filters.push(Arc::clone(&filter));
    filter
}

/// Streaming sample rate converter for mono 16-bit audio.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    filter: Arc<Filter>,
    /// Last `taps` input samples, written twice (at `i` and `i + taps`) so that the newest
    /// `taps` always form one contiguous slice ending at `write + taps`.
    history: Vec<f32>,
    write: usize,
    /// Input samples still to skip before the next output, when `down > up`.
    skip: usize,
    /// Polyphase branch of the next output, `0..up`.
    phase: usize,
}

impl Resampler {
    /// Creates a converter from `from` hertz to `to` hertz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        for rate in [from, to] {
            if rate == 0 || rate > 384_000 {
                return Err(ResampleError::InvalidRate(rate));
            }
        }
        let divisor = greatest_common_divisor(from, to);
        let (up, down) = (to / divisor, from / divisor);
        if up > MAX_UP || down > 8 * MAX_UP {
            return Err(ResampleError::UnsupportedRatio { from, to });
        }
        let filter = shared_filter(up as usize, down as usize);
        let taps = filter.taps;
        Ok(Self {
            from,
            to,
            filter,
            history: vec![0.0; 2 * taps],
            write: 0,
            skip: 0,
            phase: 0,
        })
    }

    /// Input rate, in hertz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate, in hertz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// Group delay the filter adds, in seconds.
    pub fn delay_seconds(&self) -> f64 {
        self.filter.delay_upsampled / (self.filter.up as f64 * f64::from(self.from))
    }

    /// Group delay the filter adds, in output samples (may be fractional).
    pub fn delay_output_samples(&self) -> f64 {
        self.filter.delay_upsampled / self.filter.down as f64
    }

    /// Output samples that `input` more input samples will produce, given the current state.
    pub fn output_len(&self, input: usize) -> usize {
        let (up, down) = (self.filter.up, self.filter.down);
        if input <= self.skip {
            return 0;
        }
        // Outputs land on input samples skip, skip + step, ... with phase advancing by `down`.
        let mut count = 0;
        let mut position = self.skip;
        let mut phase = self.phase;
        while position < input {
            count += 1;
            phase += down;
            position += phase / up;
            phase %= up;
        }
        count
    }

    /// Converts `input` and appends the output samples it completes to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        let (up, down, taps) = (self.filter.up, self.filter.down, self.filter.taps);
        out.reserve(input.len() * up / down + 1);
        for &sample in input {
            let value = f32::from(sample);
            self.history[self.write] = value;
            self.history[self.write + taps] = value;
            self.write = (self.write + 1) % taps;

            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            let recent = &self.history[self.write..self.write + taps];
            loop {
                out.push(to_sample(dot(self.filter.branch(self.phase), recent)));
                self.phase += down;
                let advance = self.phase / up;
                self.phase %= up;
                if advance > 0 {
                    self.skip = advance - 1;
                    break;
                }
            }
        }
    }

    /// Converts a whole clip, compensating the filter delay: the output starts in step with
    /// the input and holds `ceil(len * to / from)` samples.
    pub fn convert_clip(&mut self, input: &[i16]) -> Vec<i16> {
        self.reset();
        let expected = (input.len() as u64 * u64::from(self.to)).div_ceil(u64::from(self.from));
        let expected = usize::try_from(expected).unwrap_or(usize::MAX);
        // Start the output grid where the filter delay lands on a whole output sample, so
        // that output sample `lead` is input time zero exactly.
        let (up, down) = (self.filter.up, self.filter.down);
        let center = self.filter.delay_upsampled as usize;
        let lead = center / down;
        let start = center - lead * down;
        self.skip = start / up;
        self.phase = start % up;
        let mut out = Vec::with_capacity(expected + lead + 2);
        self.process(input, &mut out);
        let tail = self.filter.taps + 1;
        let zeros = [0i16; 64];
        let mut fed = 0;
        while out.len() < expected + lead && fed < tail * down {
            let chunk = zeros.len().min(tail * down - fed);
            self.process(&zeros[..chunk], &mut out);
            fed += chunk;
        }
        out.drain(..lead.min(out.len()));
        out.truncate(expected);
        self.reset();
        out
    }

    /// Clears the history, as for a new stream.
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.write = 0;
        self.skip = 0;
        self.phase = 0;
    }
}

/// Dot product with eight partial sums, which the optimiser turns into SIMD. Plain indexing
/// keeps unoptimised test builds fast too.
fn dot(coefficients: &[f32], samples: &[f32]) -> f32 {
    let len = coefficients.len().min(samples.len());
    let (c, s) = (&coefficients[..len], &samples[..len]);
    let mut p = [0f32; 8];
    let mut i = 0;
    while i + 8 <= len {
        p[0] += c[i] * s[i];
        p[1] += c[i + 1] * s[i + 1];
        p[2] += c[i + 2] * s[i + 2];
        p[3] += c[i + 3] * s[i + 3];
        p[4] += c[i + 4] * s[i + 4];
        p[5] += c[i + 5] * s[i + 5];
        p[6] += c[i + 6] * s[i + 6];
        p[7] += c[i + 7] * s[i + 7];
        i += 8;
    }
    let mut sum = (p[0] + p[4]) + (p[1] + p[5]) + (p[2] + p[6]) + (p[3] + p[7]);
    while i < len {
        sum += c[i] * s[i];
        i += 1;
    }
    sum
}

fn to_sample(value: f32) -> i16 {
    value
        .round()
        .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
}

/// Converts a whole clip from `from` to `to` hertz with the delay compensated (see
/// [`Resampler::convert_clip`]); returns the input unchanged when the rates are equal.
pub fn convert_clip(input: &[i16], from: u32, to: u32) -> Result<Vec<i16>, ResampleError> {
    if from == to {
        return Ok(input.to_vec());
    }
    Ok(Resampler::new(from, to)?.convert_clip(input))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, rate: u32, len: usize, amplitude: f64) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(rate);
                (amplitude * phase.sin()) as i16
            })
            .collect()
    }

    fn rms(samples: &[i16]) -> f64 {
        let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (energy / samples.len().max(1) as f64).sqrt()
    }

    const RATES: [u32; 8] = [
        8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
    ];

    #[test]
    fn output_count_is_exact_for_any_chunking() {
        for from in RATES {
            let mut resampler = Resampler::new(from, 16_000).unwrap();
            let mut out = Vec::new();
            let mut total = 0usize;
            for (i, chunk) in [1usize, 7, 160, 441, 13, 960, 2]
                .iter()
                .cycle()
                .take(60)
                .enumerate()
            {
                let input = vec![0i16; *chunk];
                let expected = resampler.output_len(input.len());
                let before = out.len();
                resampler.process(&input, &mut out);
                assert_eq!(out.len() - before, expected, "{from} Hz chunk {i}");
                total += chunk;
            }
            let expected_total = (total as u64 * 16_000).div_ceil(u64::from(from));
            assert_eq!(out.len() as u64, expected_total, "{from} Hz");
        }
    }

    #[test]
    fn packet_of_8k_gives_one_internal_frame() {
        let mut up = Resampler::new(8_000, 16_000).unwrap();
        let mut down = Resampler::new(16_000, 8_000).unwrap();
        for _ in 0..10 {
            let mut frame = Vec::new();
            up.process(&[100; 160], &mut frame);
            assert_eq!(frame.len(), 320);
            let mut packet = Vec::new();
            down.process(&frame, &mut packet);
            assert_eq!(packet.len(), 160);
        }
    }

    #[test]
    fn passband_tone_keeps_its_level() {
        for from in RATES {
            for to in [16_000, 8_000] {
                if from == to {
                    continue;
                }
                let frequency = 1000.0;
                let input = tone(frequency, from, from as usize, 10_000.0);
                let output = convert_clip(&input, from, to).unwrap();
                let level = rms(&output[output.len() / 4..]) / rms(&input[input.len() / 4..]);
                assert!(
                    (0.94..1.06).contains(&level),
                    "{from}->{to}: gain {level:.3}"
                );
            }
        }
    }

    #[test]
    fn downsampling_rejects_aliases() {
        // A 6 kHz tone cannot exist at 8 kHz; it must not fold down to 2 kHz.
        for from in [16_000, 22_050, 44_100, 48_000] {
            let input = tone(6000.0, from, from as usize, 10_000.0);
            let output = convert_clip(&input, from, 8_000).unwrap();
            let level = rms(&output[1000..]) / rms(&input);
            // The filter is designed for 60 dB; allow its ripple and the 16-bit rounding noise.
            assert!(
                level < 0.0015,
                "{from}->8000: alias at {:.1} dB",
                20.0 * level.log10()
            );
        }
        // 12 kHz at 48 kHz must vanish at 16 kHz.
        let input = tone(12_000.0, 48_000, 48_000, 10_000.0);
        let output = convert_clip(&input, 48_000, 16_000).unwrap();
        assert!(rms(&output[1000..]) / rms(&input) < 0.0015);
    }

    #[test]
    fn upsampling_rejects_images() {
        // A 1 kHz tone at 8 kHz upsampled to 16 kHz has its image at 7 kHz; measure it with a
        // single-bin DFT.
        let input = tone(1000.0, 8_000, 8_000, 10_000.0);
        let output = convert_clip(&input, 8_000, 16_000).unwrap();
        let bin = |frequency: f64| {
            let (mut re, mut im) = (0f64, 0f64);
            for (n, &s) in output[1600..].iter().enumerate() {
                let angle = 2.0 * std::f64::consts::PI * frequency * n as f64 / 16_000.0;
                re += f64::from(s) * angle.cos();
                im += f64::from(s) * angle.sin();
            }
            (re * re + im * im).sqrt()
        };
        let ratio = bin(7000.0) / bin(1000.0);
        assert!(ratio < 0.001, "image at {:.1} dB", 20.0 * ratio.log10());
    }

    #[test]
    fn clip_conversion_keeps_timing() {
        // An impulse in the middle stays in the middle after conversion.
        let mut input = vec![0i16; 8000];
        input[4000] = 20_000;
        let output = convert_clip(&input, 8_000, 16_000).unwrap();
        assert_eq!(output.len(), 16_000);
        let peak = output
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| s.unsigned_abs())
            .map(|(i, _)| i)
            .unwrap_or(0);
        assert!((7999..=8001).contains(&peak), "peak at {peak}");
    }

    #[test]
    fn delay_is_short() {
        let cases = [
            (8_000, 16_000),
            (16_000, 8_000),
            (48_000, 16_000),
            (22_050, 16_000),
        ];
        for (from, to) in cases {
            let resampler = Resampler::new(from, to).unwrap();
            let delay = resampler.delay_seconds();
            assert!(delay > 0.0, "{from}->{to}");
            assert!(delay < 0.002, "{from}->{to}: {delay} s");
        }
    }

    #[test]
    fn unsupported_rates_are_rejected() {
        assert_eq!(
            Resampler::new(0, 16_000).unwrap_err(),
            ResampleError::InvalidRate(0)
        );
        assert_eq!(
            Resampler::new(16_000, 16_001).unwrap_err(),
            ResampleError::UnsupportedRatio {
                from: 16_000,
                to: 16_001
            }
        );
    }

    #[test]
    fn filters_are_shared_between_instances() {
        let first = Resampler::new(22_050, 16_000).unwrap();
        let second = Resampler::new(44_100, 32_000).unwrap();
        assert!(Arc::ptr_eq(&first.filter, &second.filter));
    }
}
