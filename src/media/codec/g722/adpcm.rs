//! The ADPCM coder of one G.722 sub-band: quantisers, scale factor adaptation and the adaptive
//! predictor, in the fixed-point form of ITU-T G.722. Block names in comments (`QUANTL`,
//! `UPPOL2`, ...) are the recommendation's.
//!
//! The encoder and the decoder update a [`Band`] with the same arithmetic from the same code
//! words, which is what keeps them in step. Products are `>> 15` and sums saturate to `i16`
//! where the recommendation's 16-bit arithmetic does.

/// Saturates to the 16-bit range the recommendation's arithmetic works in.
fn saturate(value: i32) -> i32 {
    value.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// Output levels of the 6-bit lower sub-band quantiser for intervals 1..=30, scaled as the
/// recommendation's `QQ6` table.
const QQ6_LEVELS: [i32; 30] = [
    136, 432, 728, 1040, 1360, 1688, 2032, 2400, 2776, 3168, 3576, 4008, 4464, 4944, 5456, 6000,
    6576, 7192, 7856, 8576, 9360, 10232, 11192, 12280, 13512, 14984, 16704, 19008, 21904, 24808,
];

/// Decision levels of the 6-bit lower sub-band quantiser, interval `i` ending at `Q6[i]`, scaled
/// by 1/8 relative to [`QQ6_LEVELS`].
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0,
];

/// 6-bit code for a negative difference in quantiser interval `mil` (1..=30).
const fn negative_code(mil: usize) -> u8 {
    match mil {
        1 => 63,
        2 => 62,
        _ => (34 - mil) as u8,
    }
}

/// 6-bit code for a positive difference in quantiser interval `mil` (1..=30).
const fn positive_code(mil: usize) -> u8 {
    (62 - mil) as u8
}

/// Inverse 6-bit quantiser indexed by code. An encoder never sends codes 0 to 3, and they decode
/// as the smallest negative level, as in the recommendation's table.
const QQ6: [i32; 64] = {
    let mut table = [-QQ6_LEVELS[0]; 64];
    let mut mil = 1;
    while mil <= 30 {
        table[negative_code(mil) as usize] = -QQ6_LEVELS[mil - 1];
        table[positive_code(mil) as usize] = QQ6_LEVELS[mil - 1];
        mil += 1;
    }
    table
};

/// Inverse 4-bit quantiser of the top four bits of a lower sub-band code, used for prediction
/// and adaptation.
const QQ4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Magnitude class of each 4-bit code, indexing [`WL`].
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Log scale factor multipliers of the lower sub-band.
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Inverse 2-bit quantiser of the higher sub-band, indexed by code.
const QQ2: [i32; 4] = [-7408, -1616, 7408, 1616];

/// Magnitude class of each higher sub-band code, indexing [`WH`].
const RH2: [usize; 4] = [2, 1, 2, 1];

/// Log scale factor multipliers of the higher sub-band.
const WH: [i32; 3] = [0, -214, 798];

/// Higher sub-band decision level, scaled by 2^12.
const Q2: i32 = 564;

/// `2048 * 2^(i/32)`: the antilog table of the scale factor computation.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Sub-band coded by a [`Band`]. The two differ in quantiser, limits and initial scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubBand {
    /// 0 to 4 kHz, 6 bits per sample at 64 kbit/s.
    Lower,
    /// 4 to 8 kHz, 2 bits per sample.
    Higher,
}

impl SubBand {
    /// Upper limit of the log scale factor (`NBL`/`NBH`).
    fn max_log_scale(self) -> i32 {
        match self {
            SubBand::Lower => 18_432,
            SubBand::Higher => 22_528,
        }
    }

    /// Offset of the scale factor exponent (`SCALEL` uses 8, `SCALEH` 10).
    fn scale_shift(self) -> i32 {
        match self {
            SubBand::Lower => 8,
            SubBand::Higher => 10,
        }
    }

    /// Initial scale factor (`DETL = 32`, `DETH = 8`).
    fn initial_scale(self) -> i32 {
        match self {
            SubBand::Lower => 32,
            SubBand::Higher => 8,
        }
    }
}

/// ADPCM state of one sub-band. Index 0 of the arrays is the current sample, 1 the previous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Band {
    kind: SubBand,
    /// Signal estimate `S` for the next sample.
    estimate: i32,
    /// Zero section output `SZ` for the next sample.
    zero_estimate: i32,
    /// Reconstructed signal `R`.
    reconstructed: [i32; 3],
    /// Partially reconstructed signal `P` (zero section output plus difference).
    partial: [i32; 3],
    /// Pole coefficients `A1`, `A2` (index 0 unused).
    poles: [i32; 3],
    /// Quantised difference signal `D`.
    difference: [i32; 7],
    /// Zero coefficients `B1` to `B6` (index 0 unused).
    zeros: [i32; 7],
    /// Log scale factor `NB`.
    log_scale: i32,
    /// Scale factor `DET`.
    scale: i32,
}

impl Band {
    /// Creates the recommendation's reset state.
    pub(super) fn new(kind: SubBand) -> Self {
        Self {
            kind,
            estimate: 0,
            zero_estimate: 0,
            reconstructed: [0; 3],
            partial: [0; 3],
            poles: [0; 3],
            difference: [0; 7],
            zeros: [0; 7],
            log_scale: 0,
            scale: kind.initial_scale(),
        }
    }

    /// Quantises one lower sub-band sample to a 6-bit code and updates the state (`QUANTL`).
    pub(super) fn encode_lower(&mut self, sample: i32) -> u8 {
        let error = saturate(sample - self.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let mut mil = 1;
        while mil < 30 && magnitude >= (Q6[mil] * self.scale) >> 12 {
            mil += 1;
        }
        let code = if error < 0 {
            negative_code(mil)
        } else {
            positive_code(mil)
        };
        self.update_lower(code);
        code
    }

    /// Decodes one 6-bit lower sub-band code (64 kbit/s mode), updates the state and returns
    /// the reconstructed sub-band sample.
    pub(super) fn decode_lower(&mut self, code: u8) -> i32 {
        let code = usize::from(code & 0x3F);
        let difference = (self.scale * QQ6[code]) >> 15;
        let sample = saturate(self.estimate + difference).clamp(-16_384, 16_383);
        self.update_lower(code as u8);
        sample
    }

    /// Quantises one higher sub-band sample to a 2-bit code and updates the state (`QUANTH`).
    pub(super) fn encode_higher(&mut self, sample: i32) -> u8 {
        let error = saturate(sample - self.estimate);
        let magnitude = if error >= 0 { error } else { -(error + 1) };
        let large = magnitude >= (Q2 * self.scale) >> 12;
        let code = match (error < 0, large) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        self.update_higher(code);
        code
    }

    /// Decodes one 2-bit higher sub-band code, updates the state and returns the reconstructed
    /// sub-band sample.
    pub(super) fn decode_higher(&mut self, code: u8) -> i32 {
        let difference = (self.scale * QQ2[usize::from(code & 0x03)]) >> 15;
        let sample = saturate(self.estimate + difference).clamp(-16_384, 16_383);
        self.update_higher(code);
        sample
    }

    fn update_lower(&mut self, code: u8) {
        // Prediction uses only the 4 most significant bits, so that the 56 and 48 kbit/s modes,
        // which drop the low bits, keep the decoder in step.
        let code4 = usize::from(code >> 2) & 0x0F;
        let difference = (self.scale * QQ4[code4]) >> 15;
        self.adapt_scale(WL[RL42[code4]]);
        self.adapt_predictor(difference);
    }

    fn update_higher(&mut self, code: u8) {
        let code = usize::from(code & 0x03);
        let difference = (self.scale * QQ2[code]) >> 15;
        self.adapt_scale(WH[RH2[code]]);
        self.adapt_predictor(difference);
    }

    /// Adapts the log scale factor and computes the scale factor (`LOGSCL`/`SCALEL`,
    /// `LOGSCH`/`SCALEH`).
    fn adapt_scale(&mut self, multiplier: i32) {
        let leaked = (self.log_scale * 32_512) >> 15;
        self.log_scale = (leaked + multiplier).clamp(0, self.kind.max_log_scale());

        let mantissa = ILB[((self.log_scale >> 6) & 31) as usize];
        let shift = self.kind.scale_shift() - (self.log_scale >> 11);
        let scale = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.scale = scale << 2;
    }

    /// Updates the adaptive predictor with a new quantised difference (`RECONS`, `PARREC`,
    /// `UPPOL2`, `UPPOL1`, `UPZERO`, `DELAYA`, `FILTEP`, `FILTEZ`, `PREDIC`).
    fn adapt_predictor(&mut self, difference: i32) {
        self.difference[0] = difference;
        self.reconstructed[0] = saturate(self.estimate + difference);
        self.partial[0] = saturate(self.zero_estimate + difference);

        let signs = self.partial.map(|p| p >> 15);
        let pole2 = self.next_pole2(signs);
        let pole1 = self.next_pole1(signs, pole2);
        let zeros = self.next_zeros();

        // DELAYA: shift the histories and take the new coefficients.
        self.difference.copy_within(0..6, 1);
        self.zeros[1..].copy_from_slice(&zeros[1..]);
        self.reconstructed.copy_within(0..2, 1);
        self.partial.copy_within(0..2, 1);
        self.poles = [0, pole1, pole2];

        // FILTEP: pole section.
        let mut pole_estimate = 0;
        for i in 1..=2 {
            let doubled = saturate(self.reconstructed[i] + self.reconstructed[i]);
            pole_estimate += (self.poles[i] * doubled) >> 15;
        }
        let pole_estimate = saturate(pole_estimate);

        // FILTEZ: zero section.
        let mut zero_estimate = 0;
        for i in (1..=6).rev() {
            let doubled = saturate(self.difference[i] + self.difference[i]);
            zero_estimate += (self.zeros[i] * doubled) >> 15;
        }
        self.zero_estimate = saturate(zero_estimate);

        // PREDIC
        self.estimate = saturate(pole_estimate + self.zero_estimate);
    }

    /// `UPPOL2`: the new second pole coefficient.
    fn next_pole2(&self, signs: [i32; 3]) -> i32 {
        let scaled = saturate(self.poles[1] << 2);
        let term = if signs[0] == signs[1] {
            -scaled
        } else {
            scaled
        }
        .min(32_767);
        let mut pole2 = if signs[0] == signs[2] { 128 } else { -128 };
        pole2 += term >> 7;
        pole2 += (self.poles[2] * 32_512) >> 15;
        pole2.clamp(-12_288, 12_288)
    }

    /// `UPPOL1`: the new first pole coefficient, limited by the stability bound of `pole2`.
    fn next_pole1(&self, signs: [i32; 3], pole2: i32) -> i32 {
        let step = if signs[0] == signs[1] { 192 } else { -192 };
        let pole1 = saturate(step + ((self.poles[1] * 32_640) >> 15));
        let limit = saturate(15_360 - pole2);
        pole1.clamp(-limit, limit)
    }

    /// `UPZERO`: the new zero coefficients (index 0 unused).
    fn next_zeros(&self) -> [i32; 7] {
        let step = if self.difference[0] == 0 { 0 } else { 128 };
        let sign = self.difference[0] >> 15;
        let mut zeros = [0; 7];
        for ((zero, &old), &difference) in zeros
            .iter_mut()
            .zip(&self.zeros)
            .zip(&self.difference)
            .skip(1)
        {
            let term = if difference >> 15 == sign {
                step
            } else {
                -step
            };
            *zero = saturate(term + ((old * 32_640) >> 15));
        }
        zeros
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antilog_table_matches_formula() {
        for (i, &value) in ILB.iter().enumerate() {
            let expected = (2048.0 * 2f64.powf(i as f64 / 32.0)).round() as i32;
            assert_eq!(value, expected, "ILB[{i}]");
        }
    }

    #[test]
    fn every_interval_has_distinct_codes() {
        let mut seen = [false; 64];
        for mil in 1..=30 {
            for code in [negative_code(mil), positive_code(mil)] {
                assert!(!seen[usize::from(code)], "code {code} used twice");
                seen[usize::from(code)] = true;
            }
        }
        assert_eq!(seen.iter().filter(|&&used| used).count(), 60);
        assert!(
            !seen[..4].iter().any(|&used| used),
            "codes 0-3 are reserved"
        );
    }

    #[test]
    fn inverse_quantiser_levels_lie_inside_intervals() {
        // Each output level (scaled by 8 relative to the decision levels) sits in its interval.
        for mil in 1..30 {
            let level = QQ6_LEVELS[mil - 1];
            assert!(level >= Q6[mil - 1] * 8, "interval {mil}");
            assert!(level <= Q6[mil] * 8, "interval {mil}");
            assert_eq!(QQ6[usize::from(positive_code(mil))], level);
            assert_eq!(QQ6[usize::from(negative_code(mil))], -level);
        }
    }

    #[test]
    fn four_bit_levels_follow_six_bit_codes() {
        // A 6-bit code's top four bits select a 4-bit level of the same sign.
        for mil in 3..=30 {
            let positive = QQ4[usize::from(positive_code(mil) >> 2)];
            let negative = QQ4[usize::from(negative_code(mil) >> 2)];
            assert!(positive > 0, "interval {mil}");
            assert!(negative < 0, "interval {mil}");
        }
    }

    #[test]
    fn decoder_state_tracks_encoder_state() {
        let mut encoder = Band::new(SubBand::Lower);
        let mut decoder = Band::new(SubBand::Lower);
        let mut encoder_high = Band::new(SubBand::Higher);
        let mut decoder_high = Band::new(SubBand::Higher);
        for n in 0..4000 {
            let sample = ((n as f64 * 0.07).sin() * 9000.0) as i32;
            let code = encoder.encode_lower(sample);
            decoder.decode_lower(code);
            assert_eq!(encoder, decoder, "sample {n}");
            let code = encoder_high.encode_higher(sample / 4);
            decoder_high.decode_higher(code);
            assert_eq!(encoder_high, decoder_high, "sample {n}");
        }
    }

    #[test]
    fn scale_stays_within_limits_on_full_scale_noise() {
        let mut band = Band::new(SubBand::Lower);
        let mut seed = 1u32;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let sample = ((seed >> 16) as i32 & 0x7FFF) - 16_384;
            band.encode_lower(sample);
            assert!((0..=18_432).contains(&band.log_scale));
            assert!(band.poles[2].abs() <= 12_288);
            assert!(band.poles[1].abs() <= 15_360 - band.poles[2]);
        }
    }
}
