//! Audio codecs: RTP payloads to PCM and back.
//!
//! A decoder turns one RTP payload into PCM at the codec's own sample rate and can conceal a
//! lost packet; an encoder turns PCM at its own rate into one payload. Converting between the
//! codec rate and the internal 16 kHz is the resampler's job, not the codec's.

mod g711;

pub use g711::{G711Decoder, G711Encoder, G711Law};

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
}

/// Encodes PCM into RTP payloads for one stream.
pub trait AudioEncoder: Send {
    /// Sample rate of the PCM this encoder takes, in hertz.
    fn sample_rate(&self) -> u32;
    /// RTP timestamp clock rate (8000 for G.722 although it samples at 16 kHz, RFC 3551 §4.5.2).
    fn clock_rate(&self) -> u32;
    /// Encodes one packet's worth of PCM, appending the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}
