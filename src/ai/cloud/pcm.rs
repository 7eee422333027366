//! Conversions between the internal 16 kHz PCM and the audio formats providers send or accept:
//! 16-bit little-endian PCM at several rates and 8 kHz mu-law.
//!
//! Audio arrives from providers in chunks of any length, so both directions keep state between
//! calls: an odd byte of a 16-bit sample split across chunks, and the resampler's filter history
//! ([`crate::media::resample::Resampler`], which after `k` input samples has produced exactly
//! `ceil(k * to / from)` output samples, delayed by the filter's group delay of 1.5 ms or less).

use crate::audio::SAMPLE_RATE;
use crate::media::codec::{AudioDecoder, AudioEncoder, G711Decoder, G711Encoder, G711Law};
use crate::media::resample::{ResampleError, Resampler};

/// Raw audio formats exchanged with providers (mono, no container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    /// Signed 16-bit little-endian PCM at the given rate in hertz.
    Linear16 {
        /// Sample rate in hertz.
        rate: u32,
    },
    /// ITU-T G.711 mu-law at 8 kHz, one byte per sample.
    Mulaw8k,
}

impl WireFormat {
    /// Sample rate in hertz.
    pub fn sample_rate(self) -> u32 {
        match self {
            WireFormat::Linear16 { rate } => rate,
            WireFormat::Mulaw8k => 8_000,
        }
    }

    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> u32 {
        match self {
            WireFormat::Linear16 { .. } => 2,
            WireFormat::Mulaw8k => 1,
        }
    }

    /// Bytes per second of audio.
    pub fn bytes_per_second(self) -> u32 {
        self.sample_rate() * self.bytes_per_sample()
    }
}

/// Builds a converter, or `None` when the rates are equal and samples pass through.
fn converter(from: u32, to: u32) -> Result<Option<Resampler>, ResampleError> {
    if from == to {
        return Ok(None);
    }
    Resampler::new(from, to).map(Some)
}

/// Turns provider audio bytes into 16 kHz PCM.
#[derive(Debug)]
pub struct PcmDecoder {
    format: WireFormat,
    odd_byte: Option<u8>,
    mulaw: G711Decoder,
    samples: Vec<i16>,
    resampler: Option<Resampler>,
}

impl PcmDecoder {
    /// Creates a decoder for `format`.
    pub fn new(format: WireFormat) -> Result<Self, ResampleError> {
        Ok(Self {
            format,
            odd_byte: None,
            mulaw: G711Decoder::new(G711Law::Mu),
            samples: Vec::new(),
            resampler: converter(format.sample_rate(), SAMPLE_RATE)?,
        })
    }

    /// Decodes the next bytes, appending the 16 kHz samples they complete to `out`. A byte
    /// left over from an odd-length chunk waits for the next chunk.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) {
        self.samples.clear();
        match self.format {
            WireFormat::Linear16 { .. } => self.push_linear16(bytes),
            WireFormat::Mulaw8k => {
                // G.711 decoding fails only on an empty payload, which is skipped here.
                if !bytes.is_empty() {
                    let _ = self.mulaw.decode(bytes, &mut self.samples);
                }
            }
        }
        match self.resampler.as_mut() {
            Some(resampler) => resampler.process(&self.samples, out),
            None => out.extend_from_slice(&self.samples),
        }
    }

    fn push_linear16(&mut self, mut bytes: &[u8]) {
        if let Some(low) = self.odd_byte.take() {
            let Some((&high, rest)) = bytes.split_first() else {
                self.odd_byte = Some(low);
                return;
            };
            self.samples.push(i16::from_le_bytes([low, high]));
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        self.samples.extend(
            pairs
                .by_ref()
                .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
        );
        self.odd_byte = pairs.remainder().first().copied();
    }
}

/// Turns 16 kHz PCM into a provider's input format.
#[derive(Debug)]
pub struct PcmEncoder {
    format: WireFormat,
    resampler: Option<Resampler>,
    mulaw: G711Encoder,
    samples: Vec<i16>,
}

impl PcmEncoder {
    /// Creates an encoder for `format`.
    pub fn new(format: WireFormat) -> Result<Self, ResampleError> {
        Ok(Self {
            format,
            resampler: converter(SAMPLE_RATE, format.sample_rate())?,
            mulaw: G711Encoder::new(G711Law::Mu),
            samples: Vec::new(),
        })
    }

    /// Encodes `pcm`, appending the bytes it completes to `out`.
    pub fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        let samples = match self.resampler.as_mut() {
            Some(resampler) => {
                self.samples.clear();
                resampler.process(pcm, &mut self.samples);
                &self.samples[..]
            }
            None => pcm,
        };
        match self.format {
            WireFormat::Linear16 { .. } => {
                out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
            }
            WireFormat::Mulaw8k => {
                // G.711 encoding takes any length and has no error case.
                let _ = self.mulaw.encode(samples, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, hz: f32, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (10_000.0 * (2.0 * std::f32::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    /// Estimates the dominant frequency by counting zero crossings.
    fn frequency(samples: &[i16], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    fn decode_in_chunks(format: WireFormat, bytes: &[u8], chunk: usize) -> Vec<i16> {
        let mut decoder = PcmDecoder::new(format).unwrap();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            decoder.push(piece, &mut out);
        }
        out
    }

    fn le_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn pcm_24k_becomes_16k_with_same_pitch() {
        let bytes = le_bytes(&sine(24_000, 440.0, 24_000));
        let out = decode_in_chunks(WireFormat::Linear16 { rate: 24_000 }, &bytes, 333);
        assert_eq!(out.len(), 16_000);
        let hz = frequency(&out[1_000..15_000], 16_000);
        assert!((hz - 440.0).abs() < 5.0, "measured {hz} Hz");
    }

    #[test]
    fn chunking_does_not_change_output() {
        let bytes = le_bytes(&sine(24_000, 1_000.0, 4_800));
        let whole = decode_in_chunks(WireFormat::Linear16 { rate: 24_000 }, &bytes, bytes.len());
        let small = decode_in_chunks(WireFormat::Linear16 { rate: 24_000 }, &bytes, 7);
        assert_eq!(whole, small);
    }

    #[test]
    fn pcm_16k_passes_through() {
        let input = sine(16_000, 440.0, 1_000);
        let out = decode_in_chunks(WireFormat::Linear16 { rate: 16_000 }, &le_bytes(&input), 13);
        assert_eq!(out, input);
    }

    #[test]
    fn decoder_joins_sample_split_across_chunks() {
        let mut decoder = PcmDecoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        let bytes = [0x34, 0x12, 0xFF, 0x7F, 0x00, 0x80];
        decoder.push(&bytes[..1], &mut out);
        decoder.push(&bytes[1..3], &mut out);
        decoder.push(&[], &mut out);
        decoder.push(&bytes[3..], &mut out);
        assert_eq!(out, vec![0x1234, i16::MAX, i16::MIN]);
    }

    #[test]
    fn decoder_holds_dangling_odd_byte() {
        let mut decoder = PcmDecoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        decoder.push(&[1, 0, 7], &mut out);
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn mulaw_decodes_and_doubles_rate() {
        let mut tone = Vec::new();
        G711Encoder::new(G711Law::Mu)
            .encode(&sine(8_000, 400.0, 800), &mut tone)
            .unwrap();
        let out = decode_in_chunks(WireFormat::Mulaw8k, &tone, 77);
        assert_eq!(out.len(), 1_600);
        let hz = frequency(&out[200..1_400], 16_000);
        assert!((hz - 400.0).abs() < 10.0, "measured {hz} Hz");
    }

    #[test]
    fn encoder_linear16_at_16k_is_little_endian() {
        let mut encoder = PcmEncoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        encoder.push(&[0x1234, -2], &mut out);
        assert_eq!(out, vec![0x34, 0x12, 0xFE, 0xFF]);
    }

    #[test]
    fn encoder_mulaw_halves_the_rate() {
        let mut encoder = PcmEncoder::new(WireFormat::Mulaw8k).unwrap();
        let mut out = Vec::new();
        for _ in 0..10 {
            encoder.push(&[0i16; 320], &mut out);
        }
        assert_eq!(out.len(), 1_600);
        assert!(out.iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn encoder_linear16_at_8k_keeps_pitch() {
        let mut encoder = PcmEncoder::new(WireFormat::Linear16 { rate: 8_000 }).unwrap();
        let mut bytes = Vec::new();
        for frame in sine(16_000, 500.0, 16_000).chunks(320) {
            encoder.push(frame, &mut bytes);
        }
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        assert_eq!(samples.len(), 8_000);
        let hz = frequency(&samples[500..7_500], 8_000);
        assert!((hz - 500.0).abs() < 5.0, "measured {hz} Hz");
    }
}
