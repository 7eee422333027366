//! G.722 wideband ADPCM at 64 kbit/s (ITU-T G.722, RTP payload type 9).
//!
//! G.722 samples at 16 kHz, but its RTP clock runs at 8000 Hz because RFC 1890 assigned that
//! rate by mistake and it was kept for compatibility (RFC 3551 §4.5.2). A 20 ms packet contains
//! 160 bytes for 320 samples and advances the timestamp by 160.
//!
//! The coder follows the recommendation's fixed-point description, and a test shows it matches
//! libg722 bit for bit. Only the 64 kbit/s mode (6 bits in the lower sub-band) is implemented,
//! because it is the only mode RTP carries.

mod adpcm;
mod qmf;

use adpcm::{Band, SubBand};
use qmf::{AnalysisFilter, SynthesisFilter};

use super::plc::Concealer;
use super::{AudioDecoder, AudioEncoder, CodecError};

/// Sample rate of G.722 audio, in hertz.
pub const G722_SAMPLE_RATE: u32 = 16_000;
/// RTP clock rate of G.722 (RFC 3551 §4.5.2).
pub const G722_CLOCK_RATE: u32 = 8_000;

const NAME: &str = "G722";

/// G.722 encoder: pairs of 16 kHz samples to one byte each.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    analysis: AnalysisFilter,
    lower: Band,
    higher: Band,
}

impl G722Encoder {
    /// Creates an encoder in the reset state.
    pub fn new() -> Self {
        Self {
            analysis: AnalysisFilter::new(),
            lower: Band::new(SubBand::Lower),
            higher: Band::new(SubBand::Higher),
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        let (lower, higher) = self.analysis.split(first, second);
        let lower_code = self.lower.encode_lower(lower);
        let higher_code = self.higher.encode_higher(higher);
        (higher_code << 6) | lower_code
    }
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioEncoder for G722Encoder {
    fn sample_rate(&self) -> u32 {
        G722_SAMPLE_RATE
    }

    fn clock_rate(&self) -> u32 {
        G722_CLOCK_RATE
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::InvalidFrame {
                codec: NAME,
                samples: pcm.len(),
            });
        }
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            let byte = self.encode_pair(pair[0], pair[1]);
            out.push(byte);
        }
        Ok(())
    }

    fn reset(&mut self) {
        *self = Self::new();
    }
}

/// G.722 decoder with pitch-repetition concealment.
///
/// On a loss it plays the concealment and also encodes that concealment into its own ADPCM
/// state, as if those codes had arrived. The predictor and scale factors then follow the
/// concealed signal instead of freezing, so the first packet after the loss decodes without the
/// burst a stale predictor gives. This is not the PLC of ITU-T G.722 Appendix III or IV.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    synthesis: SynthesisFilter,
    lower: Band,
    higher: Band,
    concealer: Concealer,
    /// Transmit QMF that re-encodes concealment into the ADPCM state during a loss.
    shadow_analysis: AnalysisFilter,
    /// Whether the previous call was a concealment, so the shadow filter is already primed.
    concealing: bool,
    /// Scratch for concealment samples, kept to avoid allocating per loss.
    concealment: Vec<i16>,
}

impl G722Decoder {
    /// Creates a decoder in the reset state.
    pub fn new() -> Self {
        Self {
            synthesis: SynthesisFilter::new(),
            lower: Band::new(SubBand::Lower),
            higher: Band::new(SubBand::Higher),
            concealer: Concealer::new(G722_SAMPLE_RATE),
            shadow_analysis: AnalysisFilter::new(),
            concealing: false,
            concealment: Vec::new(),
        }
    }

    fn decode_byte(&mut self, byte: u8) -> (i16, i16) {
        let lower = self.lower.decode_lower(byte & 0x3F);
        let higher = self.higher.decode_higher(byte >> 6);
        self.synthesis.join(lower, higher)
    }
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioDecoder for G722Decoder {
    fn sample_rate(&self) -> u32 {
        G722_SAMPLE_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload {
                codec: NAME,
                reason: "empty payload",
            });
        }
        let start = out.len();
        out.reserve(payload.len() * 2);
        for &byte in payload {
            let (first, second) = self.decode_byte(byte);
            out.push(first);
            out.push(second);
        }
        self.concealer.on_decoded(&mut out[start..]);
        self.concealing = false;
        Ok(out.len() - start)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let mut concealment = std::mem::take(&mut self.concealment);
        concealment.clear();
        self.concealer.conceal(samples, &mut concealment);
        out.extend_from_slice(&concealment);

        // Encode the concealment with an encoder that shares this decoder's ADPCM state, and
        // decode the codes it yields, so that the state follows what the listener heard.
        if !self.concealing {
            self.shadow_analysis.prime(self.concealer.recent());
            self.concealing = true;
        }
        let mut lower = self.lower;
        let mut higher = self.higher;
        for pair in concealment.chunks_exact(2) {
            let (lower_sample, higher_sample) = self.shadow_analysis.split(pair[0], pair[1]);
            let byte =
                (higher.encode_higher(higher_sample) << 6) | lower.encode_lower(lower_sample);
            self.decode_byte(byte);
        }
        self.concealment = concealment;
    }

    fn reset(&mut self) {
        *self = Self {
            concealment: std::mem::take(&mut self.concealment),
            ..Self::new()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frequency: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * frequency * n as f64 / 16_000.0;
                (amplitude * phase.sin()) as i16
            })
            .collect()
    }

    /// SNR in dB of `decoded` against `reference` delayed by `delay` samples.
    fn snr_db(reference: &[i16], decoded: &[i16], delay: usize, skip: usize) -> f64 {
        let (mut signal, mut noise) = (0f64, 0f64);
        for n in skip..reference.len().min(decoded.len() - delay) {
            let expected = f64::from(reference[n]);
            signal += expected * expected;
            noise += (f64::from(decoded[n + delay]) - expected).powi(2);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    /// Delay of the QMF pair, in samples: 23 taps of group delay at 16 kHz, rounded to the pair.
    const CODEC_DELAY: usize = 22;

    fn round_trip(pcm: &[i16]) -> Vec<i16> {
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut decoded = Vec::new();
        for frame in pcm.chunks(320) {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            assert_eq!(payload.len(), frame.len() / 2);
            decoder.decode(&payload, &mut decoded).unwrap();
        }
        decoded
    }

    #[test]
    fn tones_round_trip_with_high_snr() {
        for frequency in [300.0, 1000.0, 3000.0, 5000.0, 7000.0] {
            let pcm = tone(frequency, 8000.0, 16_000);
            let decoded = round_trip(&pcm);
            let snr = snr_db(&pcm, &decoded, CODEC_DELAY, 1600);
            let floor = if frequency > 4000.0 { 15.0 } else { 30.0 };
            assert!(snr > floor, "{frequency} Hz: {snr:.1} dB");
        }
    }

    #[test]
    fn silence_decodes_near_silence() {
        let decoded = round_trip(&[0; 3200]);
        let peak = decoded
            .iter()
            .map(|s| i32::from(*s).abs())
            .max()
            .unwrap_or(0);
        assert!(peak <= 8, "{peak}");
    }

    #[test]
    fn payload_size_and_clock_rate() {
        let mut encoder = G722Encoder::new();
        let mut payload = Vec::new();
        encoder.encode(&[0; 320], &mut payload).unwrap();
        assert_eq!(payload.len(), 160);
        assert_eq!(encoder.clock_rate(), 8_000);
        assert_eq!(encoder.sample_rate(), 16_000);
    }

    #[test]
    fn odd_sample_count_is_rejected() {
        let mut encoder = G722Encoder::new();
        let error = encoder.encode(&[0; 321], &mut Vec::new()).unwrap_err();
        assert_eq!(
            error,
            CodecError::InvalidFrame {
                codec: "G722",
                samples: 321
            }
        );
    }

    #[test]
    fn every_byte_decodes_without_overflow() {
        let mut decoder = G722Decoder::new();
        let payload: Vec<u8> = (0..=255u8).cycle().take(16_000).collect();
        let mut out = Vec::new();
        assert_eq!(decoder.decode(&payload, &mut out).unwrap(), 32_000);
    }

    #[test]
    fn empty_payload_is_an_error() {
        let mut decoder = G722Decoder::new();
        assert!(decoder.decode(&[], &mut Vec::new()).is_err());
    }

    #[test]
    fn concealment_beats_silence_on_a_tone() {
        let pcm = tone(220.0, 8000.0, 16_000);
        let mut encoder = G722Encoder::new();
        let mut decoder = G722Decoder::new();
        let mut decoded = Vec::new();
        for (index, frame) in pcm.chunks(320).enumerate() {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            if index == 25 {
                decoder.conceal(320, &mut decoded);
            } else {
                decoder.decode(&payload, &mut decoded).unwrap();
            }
        }
        assert_eq!(decoded.len(), pcm.len());
        // The lost frame and the frame after it, compared with the original.
        let lost = 25 * 320;
        let window = lost..lost + 640;
        let snr = snr_db(&pcm[..lost + 640], &decoded, CODEC_DELAY, window.start);
        assert!(snr > 6.0, "concealed SNR {snr:.1} dB");
        // Two frames later the decoder is back in step with the encoder.
        let after = snr_db(&pcm[..lost + 1600], &decoded, CODEC_DELAY, lost + 960);
        assert!(after > 25.0, "recovered SNR {after:.1} dB");
    }

    #[test]
    fn reset_restores_initial_state() {
        let mut decoder = G722Decoder::new();
        let mut first = Vec::new();
        decoder.decode(&[0x55; 160], &mut first).unwrap();
        decoder.decode(&[0xAA; 160], &mut Vec::new()).unwrap();
        decoder.reset();
        let mut again = Vec::new();
        decoder.decode(&[0x55; 160], &mut again).unwrap();
        assert_eq!(first, again);
    }
}
