//! Adapters that let the media path see only 16 kHz internal audio: [`Decoder16k`] turns RTP
//! payloads, losses and silence gaps into 16 kHz samples, and [`Encoder16k`] turns 16 kHz
//! frames into payloads of the negotiated packet time.
//!
//! Both convert between the codec rate and 16 kHz with a [`Resampler`], whose output count is
//! exact: a 20 ms packet of any codec yields 320 samples, and 320 samples fill 20 ms of payload.
//! Neither allocates per frame once its buffers have grown to the packet size.

use crate::audio::SAMPLE_RATE;
use crate::media::MediaConfig;
use crate::media::resample::Resampler;
use crate::sip::sdp::NegotiatedCodec;

use super::factory::{build_decoder, build_encoder, expected_clock_rate};
use super::{AudioDecoder, AudioEncoder, CodecError};

/// Builds a resampler between two rates, or none when they are equal.
fn resampler(from: u32, to: u32, codec: &'static str) -> Result<Option<Resampler>, CodecError> {
    if from == to {
        return Ok(None);
    }
    Resampler::new(from, to)
        .map(Some)
        .map_err(|error| CodecError::Library {
            codec,
            message: error.to_string(),
        })
}

/// Converts a duration in RTP clock ticks to samples at `rate`.
fn ticks_to_samples(ticks: u32, clock_rate: u32, rate: u32) -> usize {
    (u64::from(ticks) * u64::from(rate) / u64::from(clock_rate.max(1))) as usize
}

/// A call's receive side: RTP payloads in, 16 kHz mono samples out.
pub struct Decoder16k {
    decoder: Box<dyn AudioDecoder>,
    clock_rate: u32,
    resampler: Option<Resampler>,
    /// PCM at the codec rate before conversion, reused between packets.
    scratch: Vec<i16>,
    /// State of the comfort noise generator (xorshift32).
    noise_seed: u32,
}

impl std::fmt::Debug for Decoder16k {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Decoder16k")
            .field("clock_rate", &self.clock_rate)
            .field("codec_rate", &self.decoder.sample_rate())
            .finish_non_exhaustive()
    }
}

impl Decoder16k {
    /// Creates the decoder for a negotiated codec.
    pub fn new(codec: &NegotiatedCodec) -> Result<Self, CodecError> {
        let decoder = build_decoder(codec)?;
        Self::from_decoder(decoder, expected_clock_rate(codec.name))
    }

    /// Wraps any decoder whose RTP clock runs at `clock_rate` hertz.
    pub fn from_decoder(
        decoder: Box<dyn AudioDecoder>,
        clock_rate: u32,
    ) -> Result<Self, CodecError> {
        let resampler = resampler(decoder.sample_rate(), SAMPLE_RATE, "decoder")?;
        Ok(Self {
            decoder,
            clock_rate,
            resampler,
            scratch: Vec::new(),
            noise_seed: 0x2F6B_3A91,
        })
    }

    /// RTP clock rate of the stream, in hertz.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Returns true when [`decode_fec`](Self::decode_fec) can rebuild a lost packet from the
    /// next one.
    pub fn supports_fec(&self) -> bool {
        self.decoder.supports_fec()
    }

    /// 16 kHz samples that `ticks` of the RTP clock cover.
    pub fn samples_for(&self, ticks: u32) -> usize {
        ticks_to_samples(ticks, self.clock_rate, SAMPLE_RATE)
    }

    /// Decodes one payload and appends its 16 kHz samples to `out`; returns how many.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        self.scratch.clear();
        self.decoder.decode(payload, &mut self.scratch)?;
        Ok(self.convert(out))
    }

    /// Appends concealment for a lost packet of `ticks` RTP clock ticks; returns the samples
    /// appended.
    pub fn conceal(&mut self, ticks: u32, out: &mut Vec<i16>) -> usize {
        let samples = ticks_to_samples(ticks, self.clock_rate, self.decoder.sample_rate());
        self.scratch.clear();
        self.decoder.conceal(samples, &mut self.scratch);
        self.convert(out)
    }

    /// Rebuilds a lost packet of `ticks` RTP clock ticks from the forward error correction
    /// data in `next_payload` (Opus), or conceals it for codecs without FEC. Decode
    /// `next_payload` itself with [`decode`](Self::decode) afterwards.
    pub fn decode_fec(&mut self, next_payload: &[u8], ticks: u32, out: &mut Vec<i16>) -> usize {
        let samples = ticks_to_samples(ticks, self.clock_rate, self.decoder.sample_rate());
        self.scratch.clear();
        if let Err(error) = self
            .decoder
            .decode_fec(next_payload, samples, &mut self.scratch)
        {
            tracing::trace!(%error, "FEC decode failed, concealing");
            self.scratch.clear();
            self.decoder.conceal(samples, &mut self.scratch);
        }
        self.convert(out)
    }

    /// Appends silence for a gap of `ticks` RTP clock ticks that the sender left on purpose
    /// (DTX or a comfort noise period). Nothing is decoded.
    pub fn silence(&mut self, ticks: u32, out: &mut Vec<i16>) -> usize {
        let samples = ticks_to_samples(ticks, self.clock_rate, self.decoder.sample_rate());
        self.scratch.clear();
        self.scratch.resize(samples, 0);
        self.convert(out)
    }

    /// Appends comfort noise for a gap of `ticks` RTP clock ticks at the level an RFC 3389
    /// payload gives, white rather than spectrally shaped. A payload without a level byte,
    /// or a level below -78 dBov, gives silence.
    pub fn comfort_noise(&mut self, payload: &[u8], ticks: u32, out: &mut Vec<i16>) -> usize {
        // RFC 3389 §3: the first byte is the noise level in -dBov, 0 to 127.
        let level_dbov = match payload.first() {
            Some(&level) if level & 0x7F <= 78 => -f32::from(level & 0x7F),
            _ => return self.silence(ticks, out),
        };
        let samples = ticks_to_samples(ticks, self.clock_rate, self.decoder.sample_rate());
        // 0 dBov is a full-scale square wave, RMS 32767; uniform noise has RMS peak / sqrt(3).
        let rms = 32_767.0 * 10f32.powf(level_dbov / 20.0);
        let peak = (rms * 3f32.sqrt()).min(32_767.0);
        self.scratch.clear();
        for _ in 0..samples {
            self.noise_seed ^= self.noise_seed << 13;
            self.noise_seed ^= self.noise_seed >> 17;
            self.noise_seed ^= self.noise_seed << 5;
            let unit = (self.noise_seed as f32 / u32::MAX as f32) * 2.0 - 1.0;
            self.scratch.push((unit * peak) as i16);
        }
        self.convert(out)
    }

    /// Returns to the initial state, for a new RTP source (SSRC change).
    pub fn reset(&mut self) {
        self.decoder.reset();
        if let Some(resampler) = &mut self.resampler {
            resampler.reset();
        }
    }

    fn convert(&mut self, out: &mut Vec<i16>) -> usize {
        let start = out.len();
        match &mut self.resampler {
            Some(resampler) => resampler.process(&self.scratch, out),
            None => out.extend_from_slice(&self.scratch),
        }
        out.len() - start
    }
}

/// One encoded packet, borrowed from the [`Encoder16k`] until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedPacket<'a> {
    /// RTP payload.
    pub payload: &'a [u8],
    /// RTP clock ticks the payload covers: the timestamp of the next packet is this much later.
    pub timestamp_increment: u32,
    /// The encoder chose discontinuous transmission for this packet (Opus DTX in silence): it
    /// need not be sent, but the timestamp still advances.
    pub discontinuous: bool,
}

/// A call's send side: 16 kHz frames in, RTP payloads of the negotiated packet time out.
pub struct Encoder16k {
    encoder: Box<dyn AudioEncoder>,
    resampler: Option<Resampler>,
    packet_ms: u32,
    /// Samples per packet at the codec rate.
    packet_samples: usize,
    timestamp_increment: u32,
    /// Codec-rate samples waiting for a full packet.
    pending: Vec<i16>,
    payload: Vec<u8>,
}

impl std::fmt::Debug for Encoder16k {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Encoder16k")
            .field("packet_ms", &self.packet_ms)
            .field("timestamp_increment", &self.timestamp_increment)
            .finish_non_exhaustive()
    }
}

impl Encoder16k {
    /// Creates the encoder for a negotiated codec and the packet time the peer asked for.
    /// The packet time actually used may differ where the codec cannot frame it (Opus has no
    /// 30 ms frame, so it sends 20 ms); [`packet_ms`](Self::packet_ms) returns it.
    pub fn new(
        codec: &NegotiatedCodec,
        ptime_ms: u32,
        media: &MediaConfig,
    ) -> Result<Self, CodecError> {
        let encoder = build_encoder(codec, media)?;
        Self::from_encoder(encoder, ptime_ms)
    }

    /// Wraps any encoder, sending packets of about `ptime_ms` milliseconds.
    pub fn from_encoder(encoder: Box<dyn AudioEncoder>, ptime_ms: u32) -> Result<Self, CodecError> {
        let packet_ms = encoder.packet_ms(ptime_ms.clamp(10, 200));
        let resampler = resampler(SAMPLE_RATE, encoder.sample_rate(), "encoder")?;
        let packet_samples = (encoder.sample_rate() * packet_ms / 1000) as usize;
        let timestamp_increment = encoder.clock_rate() * packet_ms / 1000;
        Ok(Self {
            encoder,
            resampler,
            packet_ms,
            packet_samples,
            timestamp_increment,
            pending: Vec::with_capacity(2 * packet_samples),
            payload: Vec::new(),
        })
    }

    /// Packet duration in use, in milliseconds.
    pub fn packet_ms(&self) -> u32 {
        self.packet_ms
    }

    /// RTP clock ticks per packet.
    pub fn timestamp_increment(&self) -> u32 {
        self.timestamp_increment
    }

    /// Encodes 16 kHz samples (usually one 20 ms frame) and calls `emit` for each packet they
    /// complete, in order; returns the number of packets. With a 40 ms packet time every
    /// second frame completes one packet, with 10 ms every frame completes two.
    pub fn encode(
        &mut self,
        pcm: &[i16],
        mut emit: impl FnMut(EncodedPacket<'_>),
    ) -> Result<usize, CodecError> {
        match &mut self.resampler {
            Some(resampler) => resampler.process(pcm, &mut self.pending),
            None => self.pending.extend_from_slice(pcm),
        }
        let mut packets = 0;
        let mut offset = 0;
        while self.pending.len() - offset >= self.packet_samples {
            let frame = &self.pending[offset..offset + self.packet_samples];
            self.payload.clear();
            let result = self.encoder.encode(frame, &mut self.payload);
            offset += self.packet_samples;
            if let Err(error) = result {
                self.pending.drain(..offset);
                return Err(error);
            }
            emit(EncodedPacket {
                payload: &self.payload,
                timestamp_increment: self.timestamp_increment,
                discontinuous: self.encoder.is_discontinuous(&self.payload),
            });
            packets += 1;
        }
        self.pending.drain(..offset);
        Ok(packets)
    }

    /// Passes the packet loss the peer reports (RTCP fraction lost, in percent) to the codec.
    pub fn set_packet_loss(&mut self, percent: u8) {
        self.encoder.set_packet_loss(percent);
    }

    /// Drops buffered audio and returns to the initial state.
    pub fn reset(&mut self) {
        self.encoder.reset();
        self.pending.clear();
        if let Some(resampler) = &mut self.resampler {
            resampler.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sip::sdp::CodecName;

    fn negotiated(name: CodecName) -> NegotiatedCodec {
        NegotiatedCodec {
            name,
            payload_type: 96,
            clock_rate: expected_clock_rate(name),
            channels: if name == CodecName::Opus { 2 } else { 1 },
            fmtp: BTreeMap::new(),
        }
    }

    const ALL: [CodecName; 4] = [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::Opus,
    ];

    #[test]
    fn every_packet_gives_one_frame() {
        let media = MediaConfig::default();
        for name in ALL {
            let codec = negotiated(name);
            let mut encoder = Encoder16k::new(&codec, 20, &media).unwrap();
            let mut decoder = Decoder16k::new(&codec).unwrap();
            for index in 0..20 {
                let frame: Vec<i16> = (0..320).map(|n| ((n * 37 + index) % 2000) as i16).collect();
                let mut payloads = Vec::new();
                let packets = encoder
                    .encode(&frame, |packet| payloads.push(packet.payload.to_vec()))
                    .unwrap();
                assert_eq!(packets, 1, "{name:?}");
                let mut out = Vec::new();
                assert_eq!(
                    decoder.decode(&payloads[0], &mut out).unwrap(),
                    320,
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn timestamp_increment_follows_rtp_clock() {
        let media = MediaConfig::default();
        let cases = [
            (CodecName::Pcmu, 20, 160),
            (CodecName::G722, 20, 160),
            (CodecName::Opus, 20, 960),
            (CodecName::Pcma, 30, 240),
            (CodecName::G722, 40, 320),
            (CodecName::Opus, 30, 960),
        ];
        for (name, ptime, increment) in cases {
            let encoder = Encoder16k::new(&negotiated(name), ptime, &media).unwrap();
            assert_eq!(
                encoder.timestamp_increment(),
                increment,
                "{name:?} {ptime} ms"
            );
        }
    }

    #[test]
    fn packet_time_groups_frames() {
        let media = MediaConfig::default();
        let codec = negotiated(CodecName::Pcmu);
        let mut long = Encoder16k::new(&codec, 40, &media).unwrap();
        let mut sizes = Vec::new();
        for _ in 0..4 {
            long.encode(&[0; 320], |packet| sizes.push(packet.payload.len()))
                .unwrap();
        }
        assert_eq!(sizes, vec![320, 320]);

        let mut short = Encoder16k::new(&codec, 10, &media).unwrap();
        let mut sizes = Vec::new();
        short
            .encode(&[0; 320], |packet| sizes.push(packet.payload.len()))
            .unwrap();
        assert_eq!(sizes, vec![80, 80]);
    }

    #[test]
    fn loss_and_silence_keep_timing() {
        for name in ALL {
            let mut decoder = Decoder16k::new(&negotiated(name)).unwrap();
            let ticks = expected_clock_rate(name) / 50;
            let mut out = Vec::new();
            assert_eq!(decoder.conceal(ticks, &mut out), 320, "{name:?}");
            assert_eq!(decoder.silence(ticks, &mut out), 320, "{name:?}");
            assert_eq!(decoder.decode_fec(&[], ticks, &mut out), 320, "{name:?}");
            assert_eq!(
                decoder.comfort_noise(&[40], ticks, &mut out),
                320,
                "{name:?}"
            );
            assert_eq!(out.len(), 4 * 320);
        }
    }

    #[test]
    fn comfort_noise_has_the_payload_level() {
        let mut decoder = Decoder16k::new(&negotiated(CodecName::Pcmu)).unwrap();
        let mut out = Vec::new();
        decoder.comfort_noise(&[40], 8000, &mut out);
        let rms = (out[400..]
            .iter()
            .map(|&s| f64::from(s).powi(2))
            .sum::<f64>()
            / (out.len() - 400) as f64)
            .sqrt();
        let dbov = 20.0 * (rms / 32_767.0).log10();
        assert!((dbov + 40.0).abs() < 1.5, "{dbov:.1} dBov");
    }

    #[test]
    fn comfort_noise_without_level_is_silence() {
        let mut decoder = Decoder16k::new(&negotiated(CodecName::Pcmu)).unwrap();
        let mut out = Vec::new();
        decoder.comfort_noise(&[], 160, &mut out);
        decoder.comfort_noise(&[127], 160, &mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn invalid_payload_leaves_output_untouched() {
        let mut decoder = Decoder16k::new(&negotiated(CodecName::Pcmu)).unwrap();
        let mut out = vec![1, 2, 3];
        assert!(decoder.decode(&[], &mut out).is_err());
        assert_eq!(out, vec![1, 2, 3]);
    }

    #[test]
    fn odd_frame_is_buffered_not_rejected() {
        // 8 kHz codecs get 160 samples per 320-sample frame, so half frames still add up.
        let media = MediaConfig::default();
        let mut encoder = Encoder16k::new(&negotiated(CodecName::G722), 20, &media).unwrap();
        let mut count = 0;
        encoder.encode(&[0; 100], |_| count += 1).unwrap();
        encoder.encode(&[0; 220], |_| count += 1).unwrap();
        assert_eq!(count, 1);
    }
}
