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
    /// Inner loop that [`Resampler::process`] runs for this ratio.
    kernel: Kernel,
}

/// Inner loop of a conversion ratio. Both 2:1 paths rely on the half-band property of the
/// filter designed for them: its cutoff sits at a quarter of the upsampled rate, so every
/// other coefficient except the centre one is zero.
#[derive(Debug, Clone, PartialEq)]
enum Kernel {
    /// Any ratio: one branch per output, chosen by the phase.
    General,
    /// 1:2 (8 -> 16 kHz): one branch is dense, the other is the single centre tap, so every
    /// other output is a scaled copy of an input sample.
    Interpolate2 {
        /// Phase (0 or 1) of the single-tap branch.
        single_phase: usize,
        /// Window offset and coefficient of the single tap.
        centre: (usize, f32),
    },
    /// 2:1 (16 -> 8 kHz): the single branch has non-zero coefficients only on one parity of
    /// the window plus the centre tap on the other. Splitting the input into even and odd
    /// samples turns that into a contiguous dot product of half the length.
    Decimate2 {
        /// Window offset of the first non-zero coefficient of the dense parity.
        first: usize,
        /// The dense parity's coefficients, every second one of the window.
        dense: Vec<f32>,
        /// Window offset and coefficient of the centre tap.
        centre: (usize, f32),
    },
}

impl Kernel {
    /// Picks the cheapest inner loop the coefficients of a ratio allow.
    fn select(up: usize, down: usize, taps: usize, branches: &[f32]) -> Self {
        let non_zero = |branch: &[f32]| -> Vec<usize> {
            (0..branch.len()).filter(|&i| branch[i] != 0.0).collect()
        };
        match (up, down) {
            (2, 1) => {
                let single: Vec<(usize, usize)> = (0..2)
                    .filter_map(|phase| {
                        match non_zero(&branches[phase * taps..(phase + 1) * taps]).as_slice() {
                            &[offset] => Some((phase, offset)),
                            _ => None,
                        }
                    })
                    .collect();
                match single.as_slice() {
                    &[(single_phase, offset)] => Self::Interpolate2 {
                        single_phase,
                        centre: (offset, branches[single_phase * taps + offset]),
                    },
                    _ => Self::General,
                }
            }
            (1, 2) => {
                let positions = non_zero(branches);
                let (even, odd): (Vec<usize>, Vec<usize>) =
                    positions.iter().partition(|&&i| i.is_multiple_of(2));
                let (dense, single) = if even.len() >= odd.len() {
                    (even, odd)
                } else {
                    (odd, even)
                };
                match (dense.first(), single.as_slice()) {
                    (Some(&first), &[centre]) => Self::Decimate2 {
                        first,
                        dense: (first..=dense[dense.len() - 1])
                            .step_by(2)
                            .map(|i| branches[i])
                            .collect(),
                        centre: (centre, branches[centre]),
                    },
                    _ => Self::General,
                }
            }
            _ => Self::General,
        }
    }
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
        let kernel = Kernel::select(up, down, taps, &branches);
        Self {
            up,
            down,
            taps,
            branches,
            spans,
            delay_upsampled: center,
            kernel,
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
    /// Zero samples at the end of the input so far, to spot digital silence.
    quiet_inputs: usize,
    /// The buffer split into even and odd samples by the 2:1 path; empty for other ratios.
    split: Vec<f32>,
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
        let split = match filter.kernel {
            Kernel::Decimate2 { .. } => Vec::with_capacity(taps + BLOCK),
            _ => Vec::new(),
        };
        Ok(Self {
            from,
            to,
            filter,
            buffer: Self::empty_buffer(taps),
            skip: 0,
            phase: 0,
            quiet_inputs: usize::MAX,
            split,
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
        let (up, down) = (self.filter.up, self.filter.down);
        out.reserve(input.len() * up / down + 1);
        let kept = self.filter.taps - 1;
        for block in input.chunks(BLOCK) {
            // Digital silence in and in the whole history gives exact zeros out, so the
            // filter arithmetic can be skipped (muted or silence-suppressed calls).
            let silent = self.quiet_inputs >= kept && block.iter().all(|&s| s == 0);
            self.quiet_inputs = match block.iter().rposition(|&s| s != 0) {
                Some(last) => block.len() - 1 - last,
                None => self.quiet_inputs.saturating_add(block.len()),
            };
            self.buffer.truncate(kept);
            self.buffer
                .extend(block.iter().map(|&sample| f32::from(sample)));
            let filter = Arc::clone(&self.filter);
            let index = match &filter.kernel {
                _ if silent => self.process_silent(block.len(), out),
                Kernel::General => self.process_general(block.len(), out),
                Kernel::Interpolate2 {
                    single_phase,
                    centre,
                } => self.process_interpolate2(block.len(), *single_phase, *centre, out),
                Kernel::Decimate2 {
                    first,
                    dense,
                    centre,
                } => self.process_decimate2(block.len(), *first, dense, *centre, out),
            };
            self.skip = index - block.len();
            self.buffer.copy_within(block.len().., 0);
            self.buffer.truncate(kept);
        }
    }

    /// Steps the output grid over `len` new input samples, emitting zeros. Returns the index
    /// of the next output's window, like the other loops.
    fn process_silent(&mut self, len: usize, out: &mut Vec<i16>) -> usize {
        let (up, down) = (self.filter.up, self.filter.down);
        let mut index = self.skip;
        while index < len {
            out.push(0);
            self.phase += down;
            index += self.phase / up;
            self.phase %= up;
        }
        index
    }

    /// Any ratio. Input sample `i` of the block is `buffer[kept + i]`, so the window that
    /// ends on it is `buffer[i..i + taps]`.
    fn process_general(&mut self, len: usize, out: &mut Vec<i16>) -> usize {
        let (up, down, taps) = (self.filter.up, self.filter.down, self.filter.taps);
        let mut index = self.skip;
        while index < len {
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
        index
    }

    /// 1:2. Each input sample gives a phase 0 output (unless the grid starts on phase 1) and
    /// a phase 1 output on the same window.
    fn process_interpolate2(
        &mut self,
        len: usize,
        single_phase: usize,
        (offset, coefficient): (usize, f32),
        out: &mut Vec<i16>,
    ) -> usize {
        let taps = self.filter.taps;
        let (start, dense) = self.filter.branch(1 - single_phase);
        let mut index = self.skip;
        while index < len {
            let window = &self.buffer[index..index + taps];
            for phase in self.phase..2 {
                let value = if phase == single_phase {
                    coefficient * window[offset]
                } else {
                    dot(dense, &window[start..])
                };
                out.push(to_sample(value));
            }
            self.phase = 0;
            index += 1;
        }
        index
    }

    /// 2:1. Outputs sit on every second input sample, so within a block all windows start on
    /// the same parity: splitting the buffer into samples `skip, skip + 2, ...` and
    /// `skip + 1, skip + 3, ...` makes the dense taps of output `j` a contiguous slice.
    fn process_decimate2(
        &mut self,
        len: usize,
        first: usize,
        dense: &[f32],
        (centre, coefficient): (usize, f32),
        out: &mut Vec<i16>,
    ) -> usize {
        let skip = self.skip;
        if skip >= len {
            return skip;
        }
        let count = (len - skip).div_ceil(2);
        let samples = &self.buffer[skip..];
        self.split.clear();
        self.split.extend(samples.iter().step_by(2));
        let odd_from = self.split.len();
        self.split.extend(samples.iter().skip(1).step_by(2));
        let (even, odd) = self.split.split_at(odd_from);
        // Window offset `r + 2u` of output `j` is stream `r` at `u + j`.
        let stream = |offset: usize| if offset.is_multiple_of(2) { even } else { odd };
        let (dense_stream, dense_from) = (stream(first), first / 2);
        let (centre_stream, centre_from) = (stream(centre), centre / 2);
        // TODO: the dense taps are symmetric, so folding the window would halve the multiplies,
        // but reversed loads cost shuffles; measure before adopting.
        for j in 0..count {
            let window = &dense_stream[dense_from + j..dense_from + j + dense.len()];
            let sum = dot(dense, window) + coefficient * centre_stream[centre_from + j];
            out.push(to_sample(sum));
        }
        skip + 2 * count
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
        self.quiet_inputs = usize::MAX;
    }
}

/// Dot product with eight partial sums. Fixed eight-element arrays from `chunks_exact` let
/// the optimiser drop the bounds checks and use two SIMD registers of four lanes.
fn dot(coefficients: &[f32], samples: &[f32]) -> f32 {
    let len = coefficients.len().min(samples.len());
    let (coefficients, samples) = (&coefficients[..len], &samples[..len]);
    let mut partial = [0f32; 8];
    let pairs = coefficients.chunks_exact(8).zip(samples.chunks_exact(8));
    for (c, s) in pairs {
        for lane in 0..8 {
            partial[lane] += c[lane] * s[lane];
        }
    }
    let mut sum = (partial[0] + partial[4])
        + (partial[1] + partial[5])
        + (partial[2] + partial[6])
        + (partial[3] + partial[7]);
    let tail = len - len % 8;
    for (c, s) in coefficients[tail..].iter().zip(&samples[tail..]) {
        sum += c * s;
    }
    sum
}

/// Rounds half away from zero and saturates. `f32::round` is a libm call on baseline x86-64;
/// adding a signed half and letting the saturating `as` truncate is a few instructions.
fn to_sample(value: f32) -> i16 {
    (value + 0.5f32.copysign(value)) as i16
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

    /// A converter for `from -> to` that always runs the general polyphase loop and never
    /// takes the silence shortcut, as the reference for the faster paths.
    struct Reference(Resampler);

    impl Reference {
        fn new(from: u32, to: u32) -> Self {
            let mut resampler = Resampler::new(from, to).unwrap();
            let filter = &resampler.filter;
            resampler.filter = Arc::new(Filter {
                up: filter.up,
                down: filter.down,
                taps: filter.taps,
                branches: filter.branches.clone(),
                spans: filter.spans.clone(),
                delay_upsampled: filter.delay_upsampled,
                kernel: Kernel::General,
            });
            Self(resampler)
        }

        fn process(&mut self, input: &[i16]) -> Vec<i16> {
            let mut out = Vec::new();
            for chunk in input.chunks(7) {
                self.0.quiet_inputs = 0;
                self.0.process(chunk, &mut out);
            }
            out
        }
    }

    /// Speech-like test signal: two tones, noise, and a stretch of digital silence.
    fn mixed_signal(rate: u32, len: usize) -> Vec<i16> {
        let mut seed = 0x1234_5678u32;
        (0..len)
            .map(|n| {
                if (len / 3..len / 2).contains(&n) {
                    return 0;
                }
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let t = n as f64 / f64::from(rate);
                let noise = f64::from(seed % 2001) - 1000.0;
                let tones = 9_000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()
                    + 9_000.0 * (2.0 * std::f64::consts::PI * 3_100.0 * t).sin();
                (tones + noise).clamp(-32_768.0, 32_767.0) as i16
            })
            .collect()
    }

    #[test]
    fn half_band_paths_selected() {
        let up = Resampler::new(8_000, 16_000).unwrap();
        assert!(
            matches!(up.filter.kernel, Kernel::Interpolate2 { .. }),
            "8 -> 16 kHz runs {:?}",
            up.filter.kernel
        );
        let down = Resampler::new(16_000, 8_000).unwrap();
        match &down.filter.kernel {
            Kernel::Decimate2 { dense, .. } => {
                // The 24 odd-offset taps of the 47-tap filter; the centre tap is kept apart.
                assert_eq!(dense.len(), 24);
                assert!(dense.iter().all(|&c| c != 0.0));
            }
            other => panic!("16 -> 8 kHz runs {other:?}"),
        }
        let other = Resampler::new(48_000, 16_000).unwrap();
        assert_eq!(other.filter.kernel, Kernel::General);
    }

    #[test]
    fn half_band_paths_match_the_general_loop() {
        for (from, to) in [(8_000, 16_000), (16_000, 8_000)] {
            let input = mixed_signal(from, from as usize);
            let expected = Reference::new(from, to).process(&input);
            for chunk in [1usize, 2, 3, 160, 255, 256, 257, 320, 1000] {
                let mut resampler = Resampler::new(from, to).unwrap();
                let mut out = Vec::new();
                for piece in input.chunks(chunk) {
                    resampler.process(piece, &mut out);
                }
                assert_eq!(
                    out.len(),
                    expected.len(),
                    "{from}->{to} in chunks of {chunk}"
                );
                for (n, (&a, &b)) in out.iter().zip(&expected).enumerate() {
                    // Only the summation order differs, so at most a rounding step apart.
                    assert!(
                        (i32::from(a) - i32::from(b)).abs() <= 1,
                        "{from}->{to} chunks of {chunk}, sample {n}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn half_band_output_count_exact() {
        for (from, to) in [(8_000, 16_000), (16_000, 8_000)] {
            let input = mixed_signal(from, 20_000);
            let mut resampler = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            let mut consumed = 0;
            for chunk in [1usize, 7, 160, 441, 13, 960, 2, 320].iter().cycle() {
                let end = (consumed + chunk).min(input.len());
                let expected = resampler.output_len(end - consumed);
                let before = out.len();
                resampler.process(&input[consumed..end], &mut out);
                assert_eq!(out.len() - before, expected, "{from}->{to} at {consumed}");
                consumed = end;
                if consumed == input.len() {
                    break;
                }
            }
            let total = (input.len() as u64 * u64::from(to)).div_ceil(u64::from(from));
            assert_eq!(out.len() as u64, total, "{from}->{to}");
        }
    }

    /// Level of `frequency` in `samples`, relative to full scale, by a single-bin DFT.
    fn tone_level(samples: &[i16], rate: u32, frequency: f64) -> f64 {
        let (mut re, mut im) = (0f64, 0f64);
        for (n, &s) in samples.iter().enumerate() {
            let angle = 2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(rate);
            re += f64::from(s) * angle.cos();
            im += f64::from(s) * angle.sin();
        }
        2.0 * (re * re + im * im).sqrt() / samples.len() as f64
    }

    /// Streams one second of a tone through a converter in 20 ms frames and returns the
    /// output level over the last half, in decibels relative to the input level.
    fn streamed_gain_db(from: u32, to: u32, frequency: f64) -> f64 {
        let input = tone(frequency, from, from as usize, 10_000.0);
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for frame in input.chunks(from as usize / 50) {
            resampler.process(frame, &mut out);
        }
        let half = &out[out.len() / 2..];
        let level = tone_level(half, to, frequency);
        let reference = tone_level(&input[input.len() / 2..], from, frequency);
        20.0 * (level / reference).log10()
    }

    #[test]
    fn half_band_passband_1_khz() {
        for (from, to) in [(8_000, 16_000), (16_000, 8_000)] {
            let gain = streamed_gain_db(from, to, 1_000.0);
            assert!(gain.abs() < 0.5, "{from}->{to}: {gain:.2} dB");
        }
    }

    #[test]
    fn decimator_rejects_6_khz() {
        let input = tone(6_000.0, 16_000, 16_000, 10_000.0);
        let mut resampler = Resampler::new(16_000, 8_000).unwrap();
        let mut out = Vec::new();
        for frame in input.chunks(320) {
            resampler.process(frame, &mut out);
        }
        // 6 kHz folds to 2 kHz at 8 kHz.
        let alias = tone_level(&out[800..], 8_000, 2_000.0);
        let gain = 20.0 * (alias / 10_000.0).log10();
        assert!(gain < -50.0, "alias at {gain:.1} dB");
    }

    #[test]
    fn silence_shortcut_keeps_grid() {
        for (from, to) in [(8_000, 16_000), (16_000, 8_000), (48_000, 16_000)] {
            let mut input = mixed_signal(from, 3_000);
            input.extend(std::iter::repeat_n(0, 2_000));
            input.extend(mixed_signal(from, 3_000));
            let expected = Reference::new(from, to).process(&input);
            let mut resampler = Resampler::new(from, to).unwrap();
            let mut out = Vec::new();
            for frame in input.chunks(from as usize / 50) {
                resampler.process(frame, &mut out);
            }
            assert_eq!(out.len(), expected.len(), "{from}->{to}");
            let worst = out
                .iter()
                .zip(&expected)
                .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
                .max();
            assert!(worst <= Some(1), "{from}->{to}: {worst:?}");
        }
    }

    #[test]
    fn filters_are_shared_between_instances() {
        let first = Resampler::new(22_050, 16_000).unwrap();
        let second = Resampler::new(44_100, 32_000).unwrap();
        assert!(Arc::ptr_eq(&first.filter, &second.filter));
    }
}
