//! Builds the decoder and encoder for a codec chosen in SDP negotiation.

use crate::media::MediaConfig;
use crate::sip::sdp::{CodecName, NegotiatedCodec};

use super::{
    AudioDecoder, AudioEncoder, CodecError, G711Decoder, G711Encoder, G711Law, G722Decoder,
    G722Encoder, OPUS_CLOCK_RATE, OpusDecoder, OpusEncoder, OpusEncoderSettings,
};

/// Rate at which Opus is decoded and encoded: the internal rate, so no resampler runs.
const OPUS_PCM_RATE: u32 = crate::audio::SAMPLE_RATE;

/// Returns the RTP clock rate a codec must be negotiated with (RFC 3551 §4.5 for G.711 and
/// G.722, RFC 7587 §4.1 for Opus).
pub fn expected_clock_rate(name: CodecName) -> u32 {
    match name {
        CodecName::Pcmu | CodecName::Pcma | CodecName::G722 => 8_000,
        CodecName::Opus => OPUS_CLOCK_RATE,
    }
}

/// Rejects a negotiated codec whose clock rate is not the one its RTP payload format fixes,
/// for example `opus/16000`, which is not RFC 7587 Opus.
fn check_clock_rate(codec: &NegotiatedCodec) -> Result<(), CodecError> {
    let expected = expected_clock_rate(codec.name);
    if codec.clock_rate != expected {
        return Err(CodecError::UnsupportedFormat {
            codec: codec_label(codec.name),
            clock_rate: codec.clock_rate,
        });
    }
    Ok(())
}

/// Short name of a codec, as errors and logs print it.
pub fn codec_label(name: CodecName) -> &'static str {
    match name {
        CodecName::Pcmu => "PCMU",
        CodecName::Pcma => "PCMA",
        CodecName::G722 => "G722",
        CodecName::Opus => "opus",
    }
}

/// Builds a decoder for the negotiated codec. Opus decodes to 16 kHz mono whatever channel
/// count the SDP gives, because RFC 7587 always announces two channels.
pub fn build_decoder(codec: &NegotiatedCodec) -> Result<Box<dyn AudioDecoder>, CodecError> {
    check_clock_rate(codec)?;
    let decoder: Box<dyn AudioDecoder> = match codec.name {
        CodecName::Pcmu => Box::new(G711Decoder::new(G711Law::Mu)),
        CodecName::Pcma => Box::new(G711Decoder::new(G711Law::A)),
        CodecName::G722 => Box::new(G722Decoder::new()),
        CodecName::Opus => Box::new(OpusDecoder::new(OPUS_PCM_RATE)?),
    };
    Ok(decoder)
}

/// Builds an encoder for the negotiated codec. Opus takes its bit rate and complexity from
/// `media.opus_bitrate` and `media.opus_complexity`, limited by the peer's fmtp.
pub fn build_encoder(
    codec: &NegotiatedCodec,
    media: &MediaConfig,
) -> Result<Box<dyn AudioEncoder>, CodecError> {
    check_clock_rate(codec)?;
    let encoder: Box<dyn AudioEncoder> = match codec.name {
        CodecName::Pcmu => Box::new(G711Encoder::new(G711Law::Mu)),
        CodecName::Pcma => Box::new(G711Encoder::new(G711Law::A)),
        CodecName::G722 => Box::new(G722Encoder::new()),
        CodecName::Opus => {
            let settings = OpusEncoderSettings::from_fmtp(
                &codec.fmtp,
                media.opus_bitrate,
                media.opus_complexity,
            );
            Box::new(OpusEncoder::new(OPUS_PCM_RATE, settings)?)
        }
    };
    Ok(encoder)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    pub(crate) fn negotiated(name: CodecName, clock_rate: u32) -> NegotiatedCodec {
        NegotiatedCodec {
            name,
            payload_type: 107,
            clock_rate,
            channels: if name == CodecName::Opus { 2 } else { 1 },
            fmtp: BTreeMap::new(),
        }
    }

    #[test]
    fn every_codec_builds_both_ways() {
        let media = MediaConfig::default();
        for name in [
            CodecName::Pcmu,
            CodecName::Pcma,
            CodecName::G722,
            CodecName::Opus,
        ] {
            let codec = negotiated(name, expected_clock_rate(name));
            let decoder = build_decoder(&codec).unwrap();
            let encoder = build_encoder(&codec, &media).unwrap();
            assert_eq!(encoder.clock_rate(), codec.clock_rate, "{name:?}");
            assert_eq!(decoder.sample_rate(), encoder.sample_rate(), "{name:?}");
        }
    }

    #[test]
    fn opus_at_16000_is_rejected() {
        let codec = negotiated(CodecName::Opus, 16_000);
        let error = build_decoder(&codec).err();
        assert_eq!(
            error,
            Some(CodecError::UnsupportedFormat {
                codec: "opus",
                clock_rate: 16_000
            })
        );
    }

    #[test]
    fn opus_encoder_honours_peer_fmtp() {
        let mut codec = negotiated(CodecName::Opus, 48_000);
        codec
            .fmtp
            .insert("maxaveragebitrate".to_string(), "12000".to_string());
        let media = MediaConfig::default();
        let encoder = build_encoder(&codec, &media).unwrap();
        // 20 ms of 16 kHz input is one valid Opus frame.
        let mut payload = Vec::new();
        let mut encoder = encoder;
        encoder.encode(&[0; 320], &mut payload).unwrap();
        assert!(!payload.is_empty());
    }
}
