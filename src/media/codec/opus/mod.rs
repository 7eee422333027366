//! Opus (RFC 6716) through libopus, with the RTP conventions of RFC 7587.
//!
//! The RTP clock of Opus is always 48 kHz and the SDP always announces `opus/48000/2`,
//! whatever the stream really carries (RFC 7587 §4.1 and §7). Inside voicegate audio is 16 kHz
//! mono, so the decoder requests 16 kHz mono output from libopus and the encoder takes 16 kHz
//! input. libopus converts internally and downmixes stereo streams, so no extra resampler
//! runs. Other rates are available for tests and tools.

mod settings;

pub use settings::{INITIAL_FEC_LOSS_PERCENT, OpusBandwidth, OpusEncoderSettings};

use audiopus::coder::{Decoder, Encoder, GenericCtl};
use audiopus::{Application, Bitrate, Channels, SampleRate, Signal};

use super::{AudioDecoder, AudioEncoder, CodecError};

/// RTP clock rate of Opus (RFC 7587 §4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;

const NAME: &str = "opus";

/// Maximum packet duration Opus allows, in milliseconds.
const MAX_PACKET_MS: u32 = 120;

/// Largest encoded packet libopus documents as ever needed, in bytes.
const MAX_PAYLOAD: usize = 4_000;

/// Frame durations the encoder accepts, in milliseconds, shortest first.
const PACKET_MS: [u32; 4] = [10, 20, 40, 60];

fn sample_rate(rate: u32) -> Result<SampleRate, CodecError> {
    match rate {
        8_000 => Ok(SampleRate::Hz8000),
        12_000 => Ok(SampleRate::Hz12000),
        16_000 => Ok(SampleRate::Hz16000),
        24_000 => Ok(SampleRate::Hz24000),
        48_000 => Ok(SampleRate::Hz48000),
        _ => Err(CodecError::Library {
            codec: NAME,
            message: format!("unsupported sample rate {rate} Hz"),
        }),
    }
}

fn library_error(error: audiopus::Error) -> CodecError {
    CodecError::Library {
        codec: NAME,
        message: error.to_string(),
    }
}

/// Opus decoder producing mono PCM, with libopus loss concealment and in-band FEC recovery.
#[derive(Debug)]
pub struct OpusDecoder {
    decoder: Decoder,
    rate: u32,
    /// Samples in 2.5 ms, the granularity libopus conceals in.
    quantum: usize,
}

impl OpusDecoder {
    /// Creates a mono decoder with output at `rate` hertz (8000, 12000, 16000, 24000 or 48000).
    pub fn new(rate: u32) -> Result<Self, CodecError> {
        let decoder = Decoder::new(sample_rate(rate)?, Channels::Mono).map_err(library_error)?;
        Ok(Self {
            decoder,
            rate,
            quantum: (rate / 400) as usize,
        })
    }

    fn max_samples(&self) -> usize {
        (self.rate * MAX_PACKET_MS / 1000) as usize
    }

    /// Runs libopus on `payload` (or on nothing for a loss) into `out`, with room for `room`
    /// samples, and returns the samples it wrote.
    fn run(
        &mut self,
        payload: Option<&[u8]>,
        room: usize,
        fec: bool,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let start = out.len();
        out.resize(start + room, 0);
        let result = self.decoder.decode(payload, &mut out[start..], fec);
        let written = match result {
            Ok(written) => written.min(room),
            Err(audiopus::Error::Opus(audiopus::ErrorCode::InvalidPacket)) => {
                out.truncate(start);
                return Err(CodecError::InvalidPayload {
                    codec: NAME,
                    reason: "libopus rejected the packet",
                });
            }
            Err(error) => {
                out.truncate(start);
                return Err(library_error(error));
            }
        };
        out.truncate(start + written);
        Ok(written)
    }
}

impl AudioDecoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload {
                codec: NAME,
                reason: "empty payload",
            });
        }
        let room = self.max_samples();
        self.run(Some(payload), room, false, out)
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        // libopus conceals in multiples of 2.5 ms; a remainder shorter than that is silence.
        let mut remaining = samples;
        let chunk_limit = (self.rate / 50) as usize;
        while remaining >= self.quantum {
            let chunk = remaining.min(chunk_limit) / self.quantum * self.quantum;
            let start = out.len();
            match self.run(None, chunk, false, out) {
                Ok(written) if written == chunk => {}
                _ => {
                    out.truncate(start);
                    out.resize(start + chunk, 0);
                }
            }
            remaining -= chunk;
        }
        out.resize(out.len() + remaining, 0);
    }

    fn supports_fec(&self) -> bool {
        true
    }

    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let usable = samples / self.quantum * self.quantum;
        if next_payload.is_empty() || usable == 0 || usable > self.max_samples() {
            self.conceal(samples, out);
            return Ok(samples);
        }
        // Without FEC data in `next_payload`, libopus falls back to its concealment.
        let start = out.len();
        if let Err(error) = self.run(Some(next_payload), usable, true, out) {
            tracing::trace!(%error, "opus FEC decode failed, concealing");
            out.truncate(start);
            self.conceal(samples, out);
            return Ok(samples);
        }
        out.resize(start + samples, 0);
        Ok(samples)
    }

    fn reset(&mut self) {
        if let Err(error) = self.decoder.reset_state() {
            tracing::warn!(%error, "opus decoder reset failed");
        }
    }
}

/// Mono Opus encoder set up from [`OpusEncoderSettings`].
#[derive(Debug)]
pub struct OpusEncoder {
    encoder: Encoder,
    rate: u32,
    settings: OpusEncoderSettings,
}

impl OpusEncoder {
    /// Creates an encoder for mono input at `rate` hertz (8000, 12000, 16000, 24000 or 48000).
    pub fn new(rate: u32, settings: OpusEncoderSettings) -> Result<Self, CodecError> {
        let encoder = Encoder::new(sample_rate(rate)?, Channels::Mono, Application::Voip)
            .map_err(library_error)?;
        let mut encoder = Self {
            encoder,
            rate,
            settings,
        };
        encoder.configure()?;
        Ok(encoder)
    }

    /// Returns the settings in force.
    pub fn settings(&self) -> &OpusEncoderSettings {
        &self.settings
    }

    /// Bit rate libopus reports, in bits per second.
    pub fn library_bitrate(&self) -> Result<u32, CodecError> {
        match self.encoder.bitrate().map_err(library_error)? {
            Bitrate::BitsPerSecond(bits) => Ok(bits.max(0) as u32),
            other => Err(CodecError::Library {
                codec: NAME,
                message: format!("unexpected bitrate setting {other:?}"),
            }),
        }
    }

    /// Maximum bandwidth libopus reports.
    pub fn library_max_bandwidth(&self) -> Result<Option<OpusBandwidth>, CodecError> {
        let bandwidth = self.encoder.max_bandwidth().map_err(library_error)?;
        Ok(OpusBandwidth::from_library(bandwidth))
    }

    /// Returns whether libopus reports in-band FEC and DTX as enabled, in that order.
    pub fn library_fec_and_dtx(&self) -> Result<(bool, bool), CodecError> {
        let fec = self.encoder.inband_fec().map_err(library_error)?;
        let dtx = self
            .encoder
            .encoder_ctl_request(audiopus::ffi::OPUS_GET_DTX_REQUEST)
            .map_err(library_error)?;
        Ok((fec, dtx == 1))
    }

    fn configure(&mut self) -> Result<(), CodecError> {
        let settings = self.settings.clone();
        let bitrate = i32::try_from(settings.bitrate).unwrap_or(i32::MAX);
        let encoder = &mut self.encoder;
        encoder
            .set_bitrate(Bitrate::BitsPerSecond(bitrate))
            .map_err(library_error)?;
        encoder
            .set_complexity(settings.complexity)
            .map_err(library_error)?;
        encoder
            .set_max_bandwidth(settings.max_bandwidth.to_library())
            .map_err(library_error)?;
        encoder
            .set_inband_fec(settings.inband_fec)
            .map_err(library_error)?;
        encoder
            .set_packet_loss_perc(settings.packet_loss_percent.min(100))
            .map_err(library_error)?;
        encoder
            .set_encoder_ctl_request(audiopus::ffi::OPUS_SET_DTX_REQUEST, i32::from(settings.dtx))
            .map_err(library_error)?;
        encoder.set_vbr(!settings.cbr).map_err(library_error)?;
        encoder.set_signal(Signal::Voice).map_err(library_error)?;
        Ok(())
    }

    fn is_frame_size(&self, samples: usize) -> bool {
        PACKET_MS
            .iter()
            .any(|&ms| samples == (self.rate * ms / 1000) as usize)
    }
}

impl AudioEncoder for OpusEncoder {
    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn clock_rate(&self) -> u32 {
        OPUS_CLOCK_RATE
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if !self.is_frame_size(pcm.len()) {
            return Err(CodecError::InvalidFrame {
                codec: NAME,
                samples: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PAYLOAD, 0);
        match self.encoder.encode(pcm, &mut out[start..]) {
            Ok(written) => {
                out.truncate(start + written);
                Ok(())
            }
            Err(error) => {
                out.truncate(start);
                Err(library_error(error))
            }
        }
    }

    fn packet_ms(&self, requested_ms: u32) -> u32 {
        let (low, high) = self.settings.ptime_range_ms;
        let wanted = requested_ms.clamp(low, high.max(low));
        PACKET_MS
            .iter()
            .rev()
            .copied()
            .find(|&ms| ms <= wanted)
            .unwrap_or(PACKET_MS[0])
    }

    fn is_discontinuous(&self, payload: &[u8]) -> bool {
        // libopus documents packets of two bytes or less as DTX packets.
        self.settings.dtx && payload.len() <= 2
    }

    fn set_packet_loss(&mut self, percent: u8) {
        let percent = if self.settings.inband_fec {
            // Keep some FEC in the stream even while no loss is reported, so that the first
            // loss can be repaired.
            percent.clamp(1, 100)
        } else {
            percent.min(100)
        };
        if percent == self.settings.packet_loss_percent {
            return;
        }
        match self.encoder.set_packet_loss_perc(percent) {
            Ok(()) => self.settings.packet_loss_percent = percent,
            Err(error) => tracing::warn!(%error, percent, "opus packet loss setting failed"),
        }
    }

    fn reset(&mut self) {
        if let Err(error) = self.encoder.reset_state() {
            tracing::warn!(%error, "opus encoder reset failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings() -> OpusEncoderSettings {
        OpusEncoderSettings::from_fmtp(&BTreeMap::new(), 24_000, 5)
    }

    fn tone(frequency: f64, rate: u32, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let phase = 2.0 * std::f64::consts::PI * frequency * n as f64 / f64::from(rate);
                (8000.0 * phase.sin()) as i16
            })
            .collect()
    }

    #[test]
    fn frame_round_trip_keeps_length() {
        let mut encoder = OpusEncoder::new(16_000, settings()).unwrap();
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        let pcm = tone(440.0, 16_000, 320);
        let mut payload = Vec::new();
        encoder.encode(&pcm, &mut payload).unwrap();
        assert!(!payload.is_empty());
        let mut out = Vec::new();
        assert_eq!(decoder.decode(&payload, &mut out).unwrap(), 320);
        assert_eq!(out.len(), 320);
    }

    #[test]
    fn wrong_frame_size_is_rejected() {
        let mut encoder = OpusEncoder::new(16_000, settings()).unwrap();
        let error = encoder.encode(&[0; 300], &mut Vec::new()).unwrap_err();
        assert_eq!(
            error,
            CodecError::InvalidFrame {
                codec: "opus",
                samples: 300
            }
        );
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        let mut out = vec![7; 3];
        let mut seed = 5u32;
        for len in 1..200 {
            let payload: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            let before = out.len();
            match decoder.decode(&payload, &mut out) {
                Ok(written) => assert_eq!(out.len(), before + written),
                Err(_) => assert_eq!(out.len(), before),
            }
        }
        assert_eq!(&out[..3], &[7, 7, 7]);
    }

    #[test]
    fn empty_payload_is_an_error() {
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        assert!(decoder.decode(&[], &mut Vec::new()).is_err());
    }

    #[test]
    fn conceal_appends_exactly_requested_samples() {
        let mut decoder = OpusDecoder::new(16_000).unwrap();
        for samples in [0, 1, 39, 40, 320, 333, 960, 2000] {
            let mut out = Vec::new();
            decoder.conceal(samples, &mut out);
            assert_eq!(out.len(), samples, "{samples}");
        }
    }

    #[test]
    fn packet_duration_follows_supported_sizes() {
        let encoder = OpusEncoder::new(16_000, settings()).unwrap();
        assert_eq!(encoder.packet_ms(20), 20);
        assert_eq!(encoder.packet_ms(30), 20);
        assert_eq!(encoder.packet_ms(40), 40);
        assert_eq!(encoder.packet_ms(5), 10);
        assert_eq!(encoder.packet_ms(100), 60);
    }

    #[test]
    fn rtp_clock_is_48k_at_any_input_rate() {
        let encoder = OpusEncoder::new(16_000, settings()).unwrap();
        assert_eq!(encoder.clock_rate(), 48_000);
        assert_eq!(encoder.sample_rate(), 16_000);
    }

    #[test]
    fn loss_report_updates_fec_planning() {
        let mut fmtp = BTreeMap::new();
        fmtp.insert("useinbandfec".to_string(), "1".to_string());
        let settings = OpusEncoderSettings::from_fmtp(&fmtp, 24_000, 5);
        let mut encoder = OpusEncoder::new(16_000, settings).unwrap();
        encoder.set_packet_loss(25);
        assert_eq!(encoder.settings().packet_loss_percent, 25);
        assert_eq!(encoder.encoder.packet_loss_perc().unwrap(), 25);
        encoder.set_packet_loss(0);
        assert_eq!(encoder.encoder.packet_loss_perc().unwrap(), 1);
    }
}
