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
//! converter costs little more than its working buffer (about 1.2 KiB).
//!
//! `rubato` (a dependency) offers the same conversions, but its sinc resampler keeps the
//! position in floating point and builds a table per instance. Its polynomial resampler has no
//! anti-aliasing filter. So the media path uses this converter, and `benches/codec.rs` compares
//! the two.

use std::sync::{Arc, Mutex};

/// Stopband attenuation of the filter, in decibels.
const STOPBAND_DB: f64 = 60.0;
/// Width of the transition band relative to the lower Nyquist frequency.
const TRANSITION: f64 = 0.3;
/// Largest reduced `up` factor accepted; bounds the coefficient table to about 64 KiB.
const MAX_UP: u32 = 1024;
/// Input samples converted per step, which bounds the working buffer of an instance.
const BLOCK: usize = 256;

/// Error building a converter.
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
    /// that it lines up with the working buffer.
    branches: Vec<f32>,
    /// Start and length of the non-zero coefficients of each branch. With a 2:1 ratio the
    /// sinc's zeros make one branch a single tap, so trimming halves the work.
    spans: Vec<(usize, usize)>,
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

        // The sinc's zero crossings come out as rounding noise; make them exact zeros.
        let peak = prototype.iter().fold(0f64, |max, c| max.max(c.abs()));
        let mut branches = vec![0f32; length];
        for phase in 0..up {
            for k in 0..taps {
                let coefficient = prototype[phase + k * up];
                let coefficient = if coefficient.abs() < peak * 1e-9 {
                    0.0
                } else {
                    coefficient
                };
                branches[phase * taps + (taps - 1 - k)] = coefficient as f32;
            }
        }
        let spans = branches
            .chunks_exact(taps)
            .map(|branch| {
                let first = branch.iter().position(|&c| c != 0.0).unwrap_or(0);
                let last = branch.iter().rposition(|&c| c != 0.0).unwrap_or(0);
                (first, last + 1 - first.min(last + 1))
            })
            .collect();
        Self {
            up,
            down,
            taps,
            branches,
            spans,
            delay_upsampled: center,
        }
    }

    /// Returns the offset and the non-zero coefficients of branch `phase`.
    fn branch(&self, phase: usize) -> (usize, &[f32]) {
        let (start, len) = self.spans[phase];
        let offset = phase * self.taps + start;
        (start, &self.branches[offset..offset + len])
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
    /// The last `taps - 1` input samples, followed while processing by the current block, so
    /// that every filter window is one contiguous slice.
    buffer: Vec<f32>,
    /// Index, among the input samples still to come, of the one the next output needs.
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
            buffer: Self::empty_buffer(taps),
            skip: 0,
            phase: 0,
        })
    }

    fn empty_buffer(taps: usize) -> Vec<f32> {
        let mut buffer = Vec::with_capacity(taps - 1 + BLOCK);
        buffer.resize(taps - 1, 0.0);
        buffer
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
        let kept = taps - 1;
        for block in input.chunks(BLOCK) {
            self.buffer.truncate(kept);
            self.buffer
                .extend(block.iter().map(|&sample| f32::from(sample)));
            // Input sample `i` of the block is `buffer[kept + i]`, so the window that ends
            // on it is `buffer[i..i + taps]`.
            let mut index = self.skip;
            while index < block.len() {
                let window = &self.buffer[index..index + taps];
                loop {
                    let (start, coefficients) = self.filter.branch(self.phase);
                    out.push(to_sample(dot(coefficients, &window[start..])));
                    self.phase += down;
                    let advance = self.phase / up;
                    self.phase %= up;
                    if advance > 0 {
                        index += advance;
                        break;
                    }
                }
            }
            self.skip = index - block.len();
            self.buffer.copy_within(block.len().., 0);
            self.buffer.truncate(kept);
        }
    }

    /// Converts a whole clip, compensating the filter delay. The output starts in step with
    /// the input and contains `ceil(len * to / from)` samples.
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
        self.buffer.truncate(self.filter.taps - 1);
        self.buffer.fill(0.0);
        self.skip = 0;
        self.phase = 0;
    }
}

/// Dot product with eight partial sums. Fixed eight-element slices let the optimiser drop
/// the bounds checks and use SIMD, and plain indexing keeps unoptimised test builds fast.
fn dot(coefficients: &[f32], samples: &[f32]) -> f32 {
    let len = coefficients.len().min(samples.len());
    let mut p = [0f32; 8];
    let mut i = 0;
    while i + 8 <= len {
        let c = &coefficients[i..i + 8];
        let s = &samples[i..i + 8];
        p[0] += c[0] * s[0];
        p[1] += c[1] * s[1];
        p[2] += c[2] * s[2];
        p[3] += c[3] * s[3];
        p[4] += c[4] * s[4];
        p[5] += c[5] * s[5];
        p[6] += c[6] * s[6];
        p[7] += c[7] * s[7];
        i += 8;
    }
    let mut sum = (p[0] + p[4]) + (p[1] + p[5]) + (p[2] + p[6]) + (p[3] + p[7]);
    while i < len {
        sum += coefficients[i] * samples[i];
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
    fn doubling_rate_has_a_single_tap_branch() {
        // Between 8 and 16 kHz every other output is the delayed input sample itself.
        let resampler = Resampler::new(8_000, 16_000).unwrap();
        let spans = &resampler.filter.spans;
        assert_eq!(spans.len(), 2);
        assert!(spans.iter().any(|&(_, len)| len == 1), "{spans:?}");
        let mut out = Vec::new();
        let mut up = Resampler::new(8_000, 16_000).unwrap();
        let input: Vec<i16> = (0..200).map(|n| (n * 97 % 3000) as i16).collect();
        up.process(&input, &mut out);
        let delay = up.delay_output_samples() as usize;
        for n in 0..150 {
            let difference = (i32::from(out[2 * n + delay]) - i32::from(input[n])).abs();
            assert!(
                difference <= 1,
                "sample {n}: {} vs {}",
                out[2 * n + delay],
                input[n]
            );
        }
    }

    #[test]
    fn filters_are_shared_between_instances() {
        let first = Resampler::new(22_050, 16_000).unwrap();
        let second = Resampler::new(44_100, 32_000).unwrap();
        assert!(Arc::ptr_eq(&first.filter, &second.filter));
    }
}
