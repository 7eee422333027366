//! The 24-tap quadrature mirror filters of ITU-T G.722 that split 16 kHz audio into two 8 kHz
//! sub-bands and join them again.

/// Even-indexed QMF coefficients `h0, h2, ..., h22`. The filter is symmetric, so the odd ones
/// `h1, h3, ..., h23` are the same values in reverse order.
const COEFFICIENTS: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];

/// Taps of the filter.
const TAPS: usize = 24;

/// Returns the sums `(odd, even)` of `x[2i] * h(2i+1)` and `x[2i+1] * h(2i)` over the delay
/// line, where `x[23]` is the newest sample.
fn filter(line: &[i32; TAPS]) -> (i32, i32) {
    let mut odd = 0;
    let mut even = 0;
    for i in 0..12 {
        odd += line[2 * i] * COEFFICIENTS[i];
        even += line[2 * i + 1] * COEFFICIENTS[11 - i];
    }
    (odd, even)
}

/// Transmit QMF: two 16 kHz samples in, one lower and one higher sub-band sample out.
#[derive(Debug, Clone)]
pub(super) struct AnalysisFilter {
    line: [i32; TAPS],
}

impl AnalysisFilter {
    pub(super) fn new() -> Self {
        Self { line: [0; TAPS] }
    }

    /// Filters the pair `(first, second)` of input samples and returns `(lower, higher)`.
    pub(super) fn split(&mut self, first: i16, second: i16) -> (i32, i32) {
        self.line.copy_within(2.., 0);
        self.line[22] = i32::from(first);
        self.line[23] = i32::from(second);
        let (odd, even) = filter(&self.line);
        // The coefficients sum to 2^13, and the sub-bands carry half the input level so that
        // 16-bit input fits the 15-bit sub-band range the quantisers expect.
        ((even + odd) >> 14, (even - odd) >> 14)
    }

    /// Replaces the delay line with the last samples of a signal, oldest first.
    pub(super) fn prime(&mut self, history: &[i16]) {
        self.line = [0; TAPS];
        let take = history.len().min(TAPS);
        for (slot, &sample) in self.line[TAPS - take..]
            .iter_mut()
            .zip(&history[history.len() - take..])
        {
            *slot = i32::from(sample);
        }
    }
}

/// Receive QMF: one lower and one higher sub-band sample in, two 16 kHz samples out.
#[derive(Debug, Clone)]
pub(super) struct SynthesisFilter {
    line: [i32; TAPS],
}

impl SynthesisFilter {
    pub(super) fn new() -> Self {
        Self { line: [0; TAPS] }
    }

    /// Joins one sample of each sub-band and returns the two output samples in time order.
    pub(super) fn join(&mut self, lower: i32, higher: i32) -> (i16, i16) {
        self.line.copy_within(2.., 0);
        self.line[22] = lower + higher;
        self.line[23] = lower - higher;
        let (odd, even) = filter(&self.line);
        (to_sample(even >> 11), to_sample(odd >> 11))
    }
}

fn to_sample(value: i32) -> i16 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficients_have_unit_dc_gain() {
        // Both polyphase halves sum to 2^12, so the pair of filters passes DC at unity.
        assert_eq!(COEFFICIENTS.iter().sum::<i32>(), 4096);
    }

    #[test]
    fn split_then_join_restores_dc() {
        let mut analysis = AnalysisFilter::new();
        let mut synthesis = SynthesisFilter::new();
        let mut last = (0, 0);
        for _ in 0..64 {
            let (lower, higher) = analysis.split(10_000, 10_000);
            last = synthesis.join(lower, higher);
        }
        assert!((i32::from(last.0) - 10_000).abs() <= 4, "{last:?}");
        assert!((i32::from(last.1) - 10_000).abs() <= 4, "{last:?}");
    }

    #[test]
    fn high_tone_goes_to_higher_band() {
        // A 7 kHz tone at 16 kHz lands almost entirely in the 4-8 kHz sub-band.
        let mut analysis = AnalysisFilter::new();
        let (mut lower_energy, mut higher_energy) = (0f64, 0f64);
        for n in 0..800 {
            let tone = |k: usize| {
                (8000.0 * (2.0 * std::f64::consts::PI * 7000.0 * k as f64 / 16000.0).sin()) as i16
            };
            let (lower, higher) = analysis.split(tone(2 * n), tone(2 * n + 1));
            if n > 24 {
                lower_energy += f64::from(lower).powi(2);
                higher_energy += f64::from(higher).powi(2);
            }
        }
        assert!(
            higher_energy > 1000.0 * lower_energy,
            "{lower_energy} {higher_energy}"
        );
    }
}
