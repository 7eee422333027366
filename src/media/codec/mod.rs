//! Audio codecs: RTP payloads to PCM and back.
//!
//! A decoder turns one RTP payload into PCM at the codec's own sample rate and can conceal a
//! lost packet; an encoder turns PCM at its own rate into one payload. Converting between the
//! codec rate and the internal 16 kHz is the resampler's job, not the codec's; [`Decoder16k`]
//! and [`Encoder16k`] combine the two for the media path. What is and is not implemented is
//! listed in `docs/codecs.md`.

mod adapter;
mod factory;
mod g711;
mod g722;
mod opus;
mod plc;

pub use adapter::{Decoder16k, EncodedPacket, Encoder16k};
pub use factory::{build_decoder, build_encoder, codec_label, expected_clock_rate};

pub use g711::{
    G711Decoder, G711Encoder, G711Law, alaw_to_linear, linear_to_alaw, linear_to_ulaw,
    ulaw_to_linear,
};
pub use g722::{G722_CLOCK_RATE, G722_SAMPLE_RATE, G722Decoder, G722Encoder};
pub use opus::{
    INITIAL_FEC_LOSS_PERCENT, OPUS_CLOCK_RATE, OpusBandwidth, OpusDecoder, OpusEncoder,
    OpusEncoderSettings,
};
pub use plc::Concealer;

/// Why a payload could not be decoded or PCM could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The payload is not valid for this codec.
    #[error("invalid {codec} payload: {reason}")]
    InvalidPayload {
        /// Codec name.
        codec: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The PCM given to an encoder has an unusable length.
    #[error("{codec} cannot encode {samples} samples")]
    InvalidFrame {
        /// Codec name.
        codec: &'static str,
        /// Samples given.
        samples: usize,
    },
    /// The negotiated clock rate is not the one the codec's RTP payload format fixes.
    #[error("unsupported {codec} format at clock rate {clock_rate} Hz")]
    UnsupportedFormat {
        /// Codec name.
        codec: &'static str,
        /// Clock rate from the SDP.
        clock_rate: u32,
    },
    /// The codec library reported an error.
    #[error("{codec} library error: {message}")]
    Library {
        /// Codec name.
        codec: &'static str,
        /// Library message.
        message: String,
    },
}

/// Decodes one stream's RTP payloads.
pub trait AudioDecoder: Send {
    /// Sample rate of the PCM this decoder produces, in hertz.
    fn sample_rate(&self) -> u32;
    /// Decodes one payload and appends its PCM to `out`; returns the samples appended.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError>;
    /// Appends `samples` of concealment for a lost packet.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>);
    /// Returns true when [`decode_fec`](Self::decode_fec) can rebuild a lost packet from the
    /// next one.
    fn supports_fec(&self) -> bool {
        false
    }
    /// Appends `samples` rebuilt for a lost packet from the forward error correction data in
    /// `next_payload`, the packet that followed it; returns the samples appended. Codecs
    /// without in-band FEC conceal instead. Decode `next_payload` itself normally afterwards.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<usize, CodecError> {
        let _ = next_payload;
        self.conceal(samples, out);
        Ok(samples)
    }
    /// Returns to the initial state, as for a new RTP source.
    fn reset(&mut self);
}

/// Encodes PCM into RTP payloads for one stream.
pub trait AudioEncoder: Send {
    /// Sample rate of the PCM this encoder takes, in hertz.
    fn sample_rate(&self) -> u32;
    /// RTP timestamp clock rate (8000 for G.722 although it samples at 16 kHz, RFC 3551 §4.5.2).
    fn clock_rate(&self) -> u32;
    /// Encodes one packet's worth of PCM, appending the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Returns the packet duration this encoder uses when the peer requests `requested_ms`, in
    /// milliseconds. Codecs with a fixed set of frame sizes pick the nearest one they support.
    fn packet_ms(&self, requested_ms: u32) -> u32 {
        requested_ms.max(10)
    }
    /// Returns true when `payload`, just encoded, is a discontinuous transmission packet that
    /// need not be sent (Opus DTX in silence).
    fn is_discontinuous(&self, payload: &[u8]) -> bool {
        let _ = payload;
        false
    }
    /// Tells the encoder the packet loss the peer reports (RTCP fraction lost), in percent, so
    /// that codecs with loss protection can adapt. Others ignore it.
    fn set_packet_loss(&mut self, percent: u8) {
        let _ = percent;
    }
    /// Returns to the initial state.
    fn reset(&mut self);
}
