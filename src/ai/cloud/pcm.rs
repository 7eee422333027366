//! Conversions between the internal 16 kHz PCM and the audio formats providers send or accept:
//! 16-bit little-endian PCM at several rates and 8 kHz mu-law.
//!
//! Audio arrives from providers in chunks of any length, so both directions keep state between
//! calls: an odd byte of a 16-bit sample split across chunks, and the resampler's filter history.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::audio::SAMPLE_RATE;
use crate::media::codec::{AudioDecoder, AudioEncoder, G711Decoder, G711Encoder, G711Law};

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

/// Error from converting audio between sample rates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resampling {from} Hz to {to} Hz failed: {message}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    message: String,
}

/// A resampler for a stream that arrives in chunks of any length. Output is delayed by less
/// than one 20 ms block plus the filter delay; [`StreamResampler::finish`] flushes the rest.
pub struct StreamResampler {
    from: u32,
    to: u32,
    inner: Option<Fft<f32>>,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    delay_left: usize,
    consumed: u64,
    produced: u64,
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

impl StreamResampler {
    /// Creates a resampler from `from` Hz to `to` Hz; equal rates pass samples through.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let inner = if from == to {
            None
        } else {
            // One 20 ms block per call keeps the added latency at one packet.
            let chunk = (from / 50).max(1) as usize;
            let fft = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input)
                .map_err(|err| ResampleError {
                    from,
                    to,
                    message: err.to_string(),
                })?;
            Some(fft)
        };
        let delay_left = inner.as_ref().map_or(0, |fft| fft.output_delay());
        Ok(Self {
            from,
            to,
            inner,
            pending: Vec::new(),
            scratch: Vec::new(),
            delay_left,
            consumed: 0,
            produced: 0,
        })
    }

    /// Resamples `input`, appending whatever output is ready to `out`.
    pub fn push(&mut self, input: &[i16], out: &mut Vec<i16>) -> Result<(), ResampleError> {
        self.consumed += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.produced += input.len() as u64;
            return Ok(());
        }
        self.pending
            .extend(input.iter().map(|&s| f32::from(s) / 32_768.0));
        while let Some(needed) = self.inner.as_ref().map(|fft| fft.input_frames_next()) {
            if self.pending.len() < needed {
                break;
            }
            self.process(needed, None, out)?;
        }
        Ok(())
    }

    /// Flushes the samples still inside the filter, so the total output matches the input
    /// length times the rate ratio.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        let Some(ratio) = self.inner.as_ref().map(|fft| fft.resample_ratio()) else {
            return Ok(());
        };
        let expected = (self.consumed as f64 * ratio).round() as u64;
        // Each pass yields one full block, so a few passes always suffice; the bound guards
        // against a resampler that reports no progress.
        for _ in 0..64 {
            if self.produced >= expected {
                break;
            }
            let partial = self.pending.len();
            let needed = partial.max(1);
            self.process(needed, Some(partial), out)?;
        }
        let excess = self.produced.saturating_sub(expected) as usize;
        out.truncate(out.len().saturating_sub(excess));
        self.produced -= excess as u64;
        Ok(())
    }

    fn process(
        &mut self,
        take: usize,
        partial: Option<usize>,
        out: &mut Vec<i16>,
    ) -> Result<(), ResampleError> {
        let (from, to) = (self.from, self.to);
        let error = |message: String| ResampleError { from, to, message };
        let Some(fft) = self.inner.as_mut() else {
            return Ok(());
        };
        let frames_in = fft.input_frames_next();
        // With a partial block the resampler still reads a full block, padding with silence.
        if self.pending.len() < frames_in {
            self.pending.resize(frames_in, 0.0);
        }
        self.scratch.resize(fft.output_frames_max(), 0.0);
        let frames_out = self.scratch.len();
        let input = InterleavedSlice::new(&self.pending[..frames_in], 1, frames_in)
            .map_err(|err| error(err.to_string()))?;
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, frames_out)
            .map_err(|err| error(err.to_string()))?;
        let indexing = partial.map(|len| Indexing::new().partial_len(len));
        let (_, produced) = fft
            .process_into_buffer(&input, &mut output, indexing.as_ref())
            .map_err(|err| error(err.to_string()))?;
        self.pending.drain(..take.min(self.pending.len()));
        if partial.is_some() {
            self.pending.clear();
        }
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend(self.scratch[skip..produced].iter().map(|&s| to_i16(s)));
        self.produced += (produced - skip) as u64;
        Ok(())
    }
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16
}

/// Turns provider audio bytes into 16 kHz PCM.
#[derive(Debug)]
pub struct PcmDecoder {
    format: WireFormat,
    odd_byte: Option<u8>,
    mulaw: G711Decoder,
    samples: Vec<i16>,
    resampler: StreamResampler,
}

impl PcmDecoder {
    /// Creates a decoder for `format`.
    pub fn new(format: WireFormat) -> Result<Self, ResampleError> {
        Ok(Self {
            format,
            odd_byte: None,
            mulaw: G711Decoder::new(G711Law::Mu),
            samples: Vec::new(),
            resampler: StreamResampler::new(format.sample_rate(), SAMPLE_RATE)?,
        })
    }

    /// Decodes the next bytes, appending ready 16 kHz samples to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), ResampleError> {
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
        let samples = std::mem::take(&mut self.samples);
        let result = self.resampler.push(&samples, out);
        self.samples = samples;
        result
    }

    /// Flushes the resampler at the end of the stream. A dangling odd byte is dropped.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> Result<(), ResampleError> {
        self.odd_byte = None;
        self.resampler.finish(out)
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
    resampler: StreamResampler,
    mulaw: G711Encoder,
    samples: Vec<i16>,
}

impl PcmEncoder {
    /// Creates an encoder for `format`.
    pub fn new(format: WireFormat) -> Result<Self, ResampleError> {
        Ok(Self {
            format,
            resampler: StreamResampler::new(SAMPLE_RATE, format.sample_rate())?,
            mulaw: G711Encoder::new(G711Law::Mu),
            samples: Vec::new(),
        })
    }

    /// Encodes `pcm`, appending ready bytes to `out`.
    pub fn push(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), ResampleError> {
        self.samples.clear();
        self.resampler.push(pcm, &mut self.samples)?;
        match self.format {
            WireFormat::Linear16 { .. } => {
                out.extend(self.samples.iter().flat_map(|s| s.to_le_bytes()));
            }
            WireFormat::Mulaw8k => {
                // G.711 encoding accepts any length and cannot fail.
                let _ = self.mulaw.encode(&self.samples, out);
            }
        }
        Ok(())
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

    fn resample_in_chunks(from: u32, to: u32, input: &[i16], chunk: usize) -> Vec<i16> {
        let mut resampler = StreamResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            resampler.push(piece, &mut out).unwrap();
        }
        resampler.finish(&mut out).unwrap();
        out
    }

    /// Estimates the dominant frequency by counting zero crossings.
    fn frequency(samples: &[i16], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        crossings as f32 / 2.0 / (samples.len() as f32 / rate as f32)
    }

    #[test]
    fn resample_24k_to_16k_keeps_length_and_pitch() {
        let input = sine(24_000, 440.0, 24_000);
        let out = resample_in_chunks(24_000, 16_000, &input, 333);
        assert_eq!(out.len(), 16_000);
        let hz = frequency(&out[1_000..15_000], 16_000);
        assert!((hz - 440.0).abs() < 5.0, "measured {hz} Hz");
    }

    #[test]
    fn resample_8k_to_16k_keeps_length_and_pitch() {
        let input = sine(8_000, 300.0, 4_000);
        let out = resample_in_chunks(8_000, 16_000, &input, 77);
        assert_eq!(out.len(), 8_000);
        let hz = frequency(&out[500..7_500], 16_000);
        assert!((hz - 300.0).abs() < 5.0, "measured {hz} Hz");
    }

    #[test]
    fn resample_output_is_aligned_with_input() {
        // A step in the middle must stay in the middle once the filter delay is removed.
        let mut input = vec![0i16; 2_400];
        input.extend(vec![8_000i16; 2_400]);
        let out = resample_in_chunks(24_000, 16_000, &input, 480);
        let rise = out.iter().position(|&s| s > 4_000).unwrap();
        assert!((1_590..=1_610).contains(&rise), "step at {rise}");
    }

    #[test]
    fn chunking_does_not_change_output() {
        let input = sine(24_000, 1_000.0, 4_800);
        let whole = resample_in_chunks(24_000, 16_000, &input, 4_800);
        let bytes = resample_in_chunks(24_000, 16_000, &input, 7);
        assert_eq!(whole, bytes);
    }

    #[test]
    fn equal_rates_pass_through() {
        let input = sine(16_000, 440.0, 1_000);
        assert_eq!(resample_in_chunks(16_000, 16_000, &input, 13), input);
    }

    #[test]
    fn decoder_joins_sample_split_across_chunks() {
        let mut decoder = PcmDecoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        let bytes = [0x34, 0x12, 0xFF, 0x7F, 0x00, 0x80];
        decoder.push(&bytes[..1], &mut out).unwrap();
        decoder.push(&bytes[1..3], &mut out).unwrap();
        decoder.push(&bytes[3..], &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out, vec![0x1234, i16::MAX, i16::MIN]);
    }

    #[test]
    fn decoder_drops_dangling_odd_byte() {
        let mut decoder = PcmDecoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        decoder.push(&[1, 0, 7], &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out, vec![1]);
    }

    #[test]
    fn mulaw_decodes_and_doubles_rate() {
        let mut decoder = PcmDecoder::new(WireFormat::Mulaw8k).unwrap();
        let mut tone = Vec::new();
        G711Encoder::new(G711Law::Mu)
            .encode(&sine(8_000, 400.0, 800), &mut tone)
            .unwrap();
        let mut out = Vec::new();
        decoder.push(&tone, &mut out).unwrap();
        decoder.finish(&mut out).unwrap();
        assert_eq!(out.len(), 1_600);
        let hz = frequency(&out[200..1_400], 16_000);
        assert!((hz - 400.0).abs() < 10.0, "measured {hz} Hz");
    }

    #[test]
    fn encoder_linear16_at_16k_is_little_endian() {
        let mut encoder = PcmEncoder::new(WireFormat::Linear16 { rate: 16_000 }).unwrap();
        let mut out = Vec::new();
        encoder.push(&[0x1234, -2], &mut out).unwrap();
        assert_eq!(out, vec![0x34, 0x12, 0xFE, 0xFF]);
    }

    #[test]
    fn encoder_mulaw_halves_the_rate() {
        let mut encoder = PcmEncoder::new(WireFormat::Mulaw8k).unwrap();
        let mut out = Vec::new();
        for _ in 0..10 {
            encoder.push(&[0i16; 320], &mut out).unwrap();
        }
        // 200 ms in; all but the last block's worth is out already.
        assert!(
            out.len() >= 1_400 && out.len() <= 1_600,
            "{} bytes",
            out.len()
        );
        assert!(out.iter().all(|&b| b == 0xFF));
    }
}
