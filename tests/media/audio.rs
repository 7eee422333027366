//! Test audio made at run time: speech from espeak-ng (resampled by sox), noise, and the echo
//! a telephone line returns (delay, attenuation, 3.4 kHz low-pass).

use std::process::Command;

/// Speaks `text` with espeak-ng `voice` and returns mono PCM at `rate` Hz.
pub fn speak(text: &str, voice: &str, rate: u32) -> Vec<i16> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wav = dir.path().join("speech.wav");
    let raw = dir.path().join("speech.raw");
    let espeak = Command::new("espeak-ng")
        .args(["-v", voice, "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(espeak.success(), "espeak-ng failed for voice {voice}");
    let sox = Command::new("sox")
        .arg(&wav)
        .args([
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-L",
        ])
        .args(["-r", &rate.to_string()])
        .arg(&raw)
        .status()
        .expect("sox runs");
    assert!(sox.success(), "sox failed");
    std::fs::read(&raw)
        .expect("sox output")
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

/// Level of the active part of `samples` (ignoring near-silence), in dBFS.
pub fn active_level_dbfs(samples: &[i16]) -> f64 {
    let active: Vec<f64> = samples
        .iter()
        .map(|&s| f64::from(s))
        .filter(|s| s.abs() > 100.0)
        .collect();
    let power = active.iter().map(|s| s * s).sum::<f64>() / active.len().max(1) as f64;
    10.0 * (power / (32768.0 * 32768.0)).max(1e-20).log10()
}

/// Scales `samples` so that their active level is `dbfs`.
pub fn set_level(samples: &mut [i16], dbfs: f64) {
    let gain = 10f64.powf((dbfs - active_level_dbfs(samples)) / 20.0);
    for s in samples.iter_mut() {
        *s = (f64::from(*s) * gain).clamp(-32768.0, 32767.0) as i16;
    }
}

/// Kinds of steady line and background noise.
#[derive(Debug, Clone, Copy)]
pub enum Noise {
    /// Flat spectrum.
    White,
    /// -3 dB per octave (Paul Kellet's filter).
    Pink,
    /// -6 dB per octave (integrated white noise).
    Brown,
    /// 50 Hz mains hum with harmonics plus a little white noise.
    Hum,
}

/// Deterministic noise of `kind` at `dbfs` RMS.
pub fn noise(kind: Noise, dbfs: f64, len: usize, rate: f64, seed: u64) -> Vec<f64> {
    let mut state = seed
        .wrapping_mul(2862933555777941757)
        .wrapping_add(3037000493);
    let mut white = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut out = Vec::with_capacity(len);
    let (mut b0, mut b1, mut b2, mut brown) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..len {
        let w = white();
        let sample = match kind {
            Noise::White => w,
            Noise::Pink => {
                b0 = 0.99765 * b0 + w * 0.0990460;
                b1 = 0.96300 * b1 + w * 0.2965164;
                b2 = 0.57000 * b2 + w * 1.0526913;
                b0 + b1 + b2 + w * 0.1848
            }
            Noise::Brown => {
                brown = (brown + 0.02 * w) * 0.998;
                brown
            }
            Noise::Hum => {
                let t = i as f64 / rate;
                let mut hum = 0.0;
                for harmonic in 1..=5 {
                    let h = f64::from(harmonic);
                    hum += (2.0 * std::f64::consts::PI * 50.0 * h * t).sin() / h;
                }
                hum + 0.05 * w
            }
        };
        out.push(sample);
    }
    let rms = (out.iter().map(|s| s * s).sum::<f64>() / len.max(1) as f64).sqrt();
    let target = 32768.0 * 10f64.powf(dbfs / 20.0);
    let gain = if rms > 0.0 { target / rms } else { 0.0 };
    out.iter_mut().for_each(|s| *s *= gain);
    out
}

/// The echo path of a telephone line: a delay, an attenuation and a 3.4 kHz low-pass.
pub struct EchoPath {
    history: Vec<f64>,
    delay: usize,
    gain: f64,
    filter: [f64; 4],
    coefficients: ([f64; 3], [f64; 2]),
}

impl EchoPath {
    /// An echo `attenuation_db` below the sent signal, `delay_ms` later, at `rate` Hz.
    pub fn new(delay_ms: u32, attenuation_db: f64, rate: f64) -> Self {
        let omega = 2.0 * std::f64::consts::PI * 3400.0_f64.min(rate * 0.45) / rate;
        let alpha = omega.sin() / (2.0 * std::f64::consts::FRAC_1_SQRT_2);
        let cos = omega.cos();
        let a0 = 1.0 + alpha;
        let b = [
            (1.0 - cos) / 2.0 / a0,
            (1.0 - cos) / a0,
            (1.0 - cos) / 2.0 / a0,
        ];
        let a = [-2.0 * cos / a0, (1.0 - alpha) / a0];
        let delay = (f64::from(delay_ms) * rate / 1000.0) as usize;
        Self {
            history: vec![0.0; delay],
            delay,
            gain: 10f64.powf(-attenuation_db / 20.0),
            filter: [0.0; 4],
            coefficients: (b, a),
        }
    }

    /// Feeds samples we sent and returns the echo that comes back for the same duration.
    pub fn process(&mut self, sent: &[i16]) -> Vec<f64> {
        let (b, a) = self.coefficients;
        let mut out = Vec::with_capacity(sent.len());
        for &s in sent {
            self.history.push(f64::from(s));
            let x = self.history[self.history.len() - 1 - self.delay];
            let [x1, x2, y1, y2] = self.filter;
            let y = b[0] * x + b[1] * x1 + b[2] * x2 - a[0] * y1 - a[1] * y2;
            self.filter = [x, x1, y, y1];
            out.push(y * self.gain);
        }
        let keep = self.delay + 1;
        if self.history.len() > keep * 4 + 4096 {
            let cut = self.history.len() - keep;
            self.history.drain(..cut);
        }
        out
    }
}
