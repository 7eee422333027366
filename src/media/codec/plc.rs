//! Packet loss concealment by pitch-period repetition, for codecs without their own (G.711,
//! G.722).
//!
//! On a loss the concealer estimates the pitch period of the last decoded audio and repeats the
//! last period. It keeps full level for the first 10 ms and fades to silence at 60 ms, the shape
//! of ITU-T G.711 Appendix I. The first packet after a loss is cross-faded from the
//! synthetic continuation so that the splice does not click. This is a simpler scheme than
//! G.711 Appendix I: it repeats one period where the appendix widens the repeated span.

/// Highest fundamental frequency searched, in hertz (a 2.5 ms period).
const MAX_PITCH_HZ: u32 = 400;
/// Lowest fundamental frequency searched, in hertz (a 20 ms period).
const MIN_PITCH_HZ: u32 = 50;
/// Length of the correlation window, in milliseconds.
const WINDOW_MS: u32 = 10;
/// Concealment at full level before the fade starts, in milliseconds.
const HOLD_MS: u32 = 10;
/// Concealment reaches silence after this long, in milliseconds.
const FADE_END_MS: u32 = 60;
/// Cross-fade into the first good packet after a loss, in milliseconds.
const SPLICE_MS: u32 = 5;

/// Pitch-repetition concealer for one stream at one sample rate.
#[derive(Debug, Clone)]
pub struct Concealer {
    /// The most recent decoded samples, oldest first; always `capacity` long.
    history: Vec<i16>,
    /// Decoded samples seen so far, capped at the history length.
    filled: usize,
    min_lag: usize,
    max_lag: usize,
    window: usize,
    hold: usize,
    fade_end: usize,
    splice: usize,
    /// Pitch period chosen at the start of the current loss.
    period: usize,
    /// Samples concealed since the last good packet.
    concealed: usize,
}

impl Concealer {
    /// Creates a concealer for audio at `sample_rate` hertz.
    pub fn new(sample_rate: u32) -> Self {
        let per_ms = |ms: u32| (sample_rate * ms / 1000).max(1) as usize;
        let min_lag = (sample_rate / MAX_PITCH_HZ).max(1) as usize;
        let max_lag = (sample_rate / MIN_PITCH_HZ).max(2) as usize;
        let window = per_ms(WINDOW_MS);
        Self {
            history: vec![0; max_lag + window],
            filled: 0,
            min_lag,
            max_lag,
            window,
            hold: per_ms(HOLD_MS),
            fade_end: per_ms(FADE_END_MS),
            splice: per_ms(SPLICE_MS),
            period: 0,
            concealed: 0,
        }
    }

    /// Records decoded audio. When it follows a loss, its start is first cross-faded from the
    /// concealment so that the splice is smooth.
    pub fn on_decoded(&mut self, pcm: &mut [i16]) {
        if self.concealed > 0 {
            let splice = self.splice.min(pcm.len());
            for (i, sample) in pcm[..splice].iter_mut().enumerate() {
                let synthetic = f32::from(self.synthetic(self.concealed + i));
                let weight = (i + 1) as f32 / (splice + 1) as f32;
                *sample = (synthetic * (1.0 - weight) + f32::from(*sample) * weight) as i16;
            }
            self.concealed = 0;
        }
        self.remember(pcm);
    }

    /// Appends `samples` of concealment for a lost packet to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        if self.concealed == 0 {
            self.period = self.estimate_period();
        }
        out.reserve(samples);
        for i in 0..samples {
            out.push(self.synthetic(self.concealed + i));
        }
        self.concealed += samples;
    }

    /// Forgets all audio, as for a new stream.
    pub fn reset(&mut self) {
        self.history.fill(0);
        self.filled = 0;
        self.concealed = 0;
        self.period = 0;
    }

    /// Returns the last decoded samples, oldest first (at most the history length).
    pub fn recent(&self) -> &[i16] {
        &self.history[self.history.len() - self.filled..]
    }

    /// Sample `index` of the concealment that started at the last loss.
    fn synthetic(&self, index: usize) -> i16 {
        if self.period == 0 || index >= self.fade_end {
            return 0;
        }
        let start = self.history.len() - self.period;
        let source = f32::from(self.history[start + index % self.period]);
        let gain = if index < self.hold {
            1.0
        } else {
            (self.fade_end - index) as f32 / (self.fade_end - self.hold) as f32
        };
        (source * gain) as i16
    }

    fn remember(&mut self, pcm: &[i16]) {
        let capacity = self.history.len();
        if pcm.len() >= capacity {
            self.history.copy_from_slice(&pcm[pcm.len() - capacity..]);
        } else {
            self.history.copy_within(pcm.len().., 0);
            self.history[capacity - pcm.len()..].copy_from_slice(pcm);
        }
        self.filled = (self.filled + pcm.len()).min(capacity);
    }

    /// Picks the lag in the pitch range whose normalised correlation with the most recent
    /// window is highest; returns 0 when there is no usable audio.
    fn estimate_period(&self) -> usize {
        let recent = self.recent();
        if recent.iter().all(|&s| s == 0) {
            return 0;
        }
        let window = self.window.min(recent.len() / 2);
        let max_lag = self.max_lag.min(recent.len() - window);
        if window == 0 || max_lag < self.min_lag {
            return recent.len().min(self.max_lag);
        }
        let target = &recent[recent.len() - window..];
        let mut best = (f64::MIN, max_lag);
        for lag in self.min_lag..=max_lag {
            let candidate = &recent[recent.len() - window - lag..recent.len() - lag];
            let (mut dot, mut energy) = (0f64, 0f64);
            for (&a, &b) in target.iter().zip(candidate) {
                dot += f64::from(a) * f64::from(b);
                energy += f64::from(b) * f64::from(b);
            }
            let score = if energy > 0.0 {
                dot / energy.sqrt()
            } else {
                f64::MIN
            };
            if score > best.0 {
                best = (score, lag);
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, rate: f64, start: usize, len: usize) -> Vec<i16> {
        (start..start + len)
            .map(|n| {
                (10_000.0 * (2.0 * std::f64::consts::PI * frequency * n as f64 / rate).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn period_matches_tone() {
        let mut concealer = Concealer::new(16_000);
        concealer.on_decoded(&mut tone(200.0, 16_000.0, 0, 640));
        assert_eq!(concealer.estimate_period(), 80);
    }

    #[test]
    fn concealment_continues_a_voiced_signal() {
        // The first 10 ms of concealment of a steady tone is close to the tone itself.
        let mut concealer = Concealer::new(8_000);
        concealer.on_decoded(&mut tone(250.0, 8_000.0, 0, 320));
        let mut out = Vec::new();
        concealer.conceal(80, &mut out);
        let expected = tone(250.0, 8_000.0, 320, 80);
        let error: f64 = out
            .iter()
            .zip(&expected)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let energy: f64 = expected.iter().map(|&b| f64::from(b).powi(2)).sum();
        assert!(
            energy / error > 100.0,
            "SNR below 20 dB: {}",
            energy / error
        );
    }

    #[test]
    fn concealment_fades_to_silence() {
        let mut concealer = Concealer::new(8_000);
        concealer.on_decoded(&mut tone(250.0, 8_000.0, 0, 320));
        let mut out = Vec::new();
        concealer.conceal(800, &mut out);
        assert_eq!(out.len(), 800);
        assert!(out[480..].iter().all(|&s| s == 0));
        let early = out[..80]
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap_or(0);
        let late = out[400..480]
            .iter()
            .map(|&s| i32::from(s).abs())
            .max()
            .unwrap_or(0);
        assert!(early > 9_000, "{early}");
        assert!(late < early / 4, "{late} vs {early}");
    }

    #[test]
    fn silence_conceals_as_silence() {
        let mut concealer = Concealer::new(16_000);
        let mut out = Vec::new();
        concealer.conceal(320, &mut out);
        assert!(out.iter().all(|&s| s == 0));
        concealer.on_decoded(&mut [0; 320]);
        concealer.conceal(320, &mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn splice_after_loss_is_smooth() {
        let mut concealer = Concealer::new(8_000);
        concealer.on_decoded(&mut tone(250.0, 8_000.0, 0, 320));
        let mut out = Vec::new();
        concealer.conceal(160, &mut out);
        // The real signal resumes in opposite phase; the first sample must not jump to it.
        let mut resumed: Vec<i16> = tone(250.0, 8_000.0, 480, 160).iter().map(|s| -s).collect();
        let raw_first = resumed[0];
        concealer.on_decoded(&mut resumed);
        let last_concealed = i32::from(*out.last().unwrap_or(&0));
        let step = (i32::from(resumed[0]) - last_concealed).abs();
        let raw_step = (i32::from(raw_first) - last_concealed).abs();
        assert!(step <= raw_step, "{step} > {raw_step}");
        assert_eq!(concealer.concealed, 0);
    }
}
