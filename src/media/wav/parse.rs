//! RIFF/WAVE parsing: finds the `fmt ` and `data` chunks and decodes every common sample
//! encoding to 16-bit. Safe on arbitrary bytes: every length is checked before use.

use crate::media::codec::{alaw_to_linear, ulaw_to_linear};

use super::WavError;

/// `WAVE_FORMAT_PCM`.
const FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_IEEE_FLOAT`.
const FORMAT_FLOAT: u16 = 0x0003;
/// `WAVE_FORMAT_ALAW`.
const FORMAT_ALAW: u16 = 0x0006;
/// `WAVE_FORMAT_MULAW`.
const FORMAT_MULAW: u16 = 0x0007;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the first two bytes of the sub-format GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// Most channels accepted; more is not audio we expect.
const MAX_CHANNELS: u16 = 32;
/// Highest sample rate accepted, in hertz.
const MAX_RATE: u32 = 384_000;

/// Sample encoding of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// Linear PCM, 8-bit unsigned or 16, 24 or 32-bit signed.
    Pcm {
        /// Bits per sample.
        bits: u16,
    },
    /// IEEE float, 32 or 64-bit.
    Float {
        /// Bits per sample.
        bits: u16,
    },
    /// G.711 mu-law, 8 bits per sample.
    MuLaw,
    /// G.711 A-law, 8 bits per sample.
    ALaw,
}

impl WavEncoding {
    fn bytes_per_sample(self) -> usize {
        match self {
            Self::Pcm { bits } | Self::Float { bits } => usize::from(bits / 8),
            Self::MuLaw | Self::ALaw => 1,
        }
    }
}

/// The format of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Sample encoding.
    pub encoding: WavEncoding,
    /// Channels, interleaved.
    pub channels: u16,
    /// Sample rate, in hertz.
    pub sample_rate: u32,
}

fn read_u16(bytes: &[u8], offset: usize) -> Option<u16> {
    let slice = bytes.get(offset..offset + 2)?;
    Some(u16::from_le_bytes([slice[0], slice[1]]))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let slice = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
}

/// Returns the format and the sample bytes of a WAV file. A `data` chunk whose size runs past
/// the end of the file (as streaming writers such as `espeak-ng --stdout` leave it) is cut at
/// the end.
pub(super) fn parse(bytes: &[u8]) -> Result<(WavFormat, &[u8]), WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut format = None;
    let mut offset = 12;
    while let (Some(id), Some(size)) = (bytes.get(offset..offset + 4), read_u32(bytes, offset + 4))
    {
        let body_start = offset + 8;
        let body_end = body_start.saturating_add(size as usize).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => format = Some(parse_format(body)?),
            b"data" => {
                let format = format.ok_or(WavError::MissingChunk("fmt "))?;
                let frame = format.encoding.bytes_per_sample() * usize::from(format.channels);
                let whole = body.len() / frame * frame;
                return Ok((format, &body[..whole]));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        offset = body_start
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    Err(WavError::MissingChunk(if format.is_some() {
        "data"
    } else {
        "fmt "
    }))
}

fn parse_format(body: &[u8]) -> Result<WavFormat, WavError> {
    let invalid = |reason| WavError::InvalidFormat(reason);
    let tag = read_u16(body, 0).ok_or(invalid("fmt chunk shorter than 16 bytes"))?;
    let channels = read_u16(body, 2).ok_or(invalid("fmt chunk shorter than 16 bytes"))?;
    let sample_rate = read_u32(body, 4).ok_or(invalid("fmt chunk shorter than 16 bytes"))?;
    let bits = read_u16(body, 14).ok_or(invalid("fmt chunk shorter than 16 bytes"))?;
    let tag = if tag == FORMAT_EXTENSIBLE {
        // cbSize, valid bits and channel mask precede the sub-format GUID at offset 24.
        read_u16(body, 24).ok_or(invalid("extensible fmt chunk without a sub-format"))?
    } else {
        tag
    };
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(WavError::InvalidFormat("channel count out of range"));
    }
    if sample_rate == 0 || sample_rate > MAX_RATE {
        return Err(WavError::InvalidFormat("sample rate out of range"));
    }
    let encoding = match (tag, bits) {
        (FORMAT_PCM, 8 | 16 | 24 | 32) => WavEncoding::Pcm { bits },
        (FORMAT_FLOAT, 32 | 64) => WavEncoding::Float { bits },
        (FORMAT_MULAW, 8) => WavEncoding::MuLaw,
        (FORMAT_ALAW, 8) => WavEncoding::ALaw,
        _ => return Err(WavError::UnsupportedEncoding { tag, bits }),
    };
    Ok(WavFormat {
        encoding,
        channels,
        sample_rate,
    })
}

/// Decodes one sample stored in `bytes` (exactly its width) to 16-bit.
fn decode_sample(encoding: WavEncoding, bytes: &[u8]) -> i16 {
    match (encoding, bytes) {
        (WavEncoding::Pcm { bits: 8 }, [byte]) => (i16::from(*byte) - 128) << 8,
        (WavEncoding::Pcm { bits: 16 }, [low, high]) => i16::from_le_bytes([*low, *high]),
        (WavEncoding::Pcm { bits: 24 }, [_, middle, high]) => i16::from_le_bytes([*middle, *high]),
        (WavEncoding::Pcm { bits: 32 }, [_, _, middle, high]) => {
            i16::from_le_bytes([*middle, *high])
        }
        (WavEncoding::Float { bits: 32 }, [a, b, c, d]) => {
            float_to_sample(f64::from(f32::from_le_bytes([*a, *b, *c, *d])))
        }
        (WavEncoding::Float { bits: 64 }, slice) if slice.len() == 8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(slice);
            float_to_sample(f64::from_le_bytes(raw))
        }
        (WavEncoding::MuLaw, [byte]) => ulaw_to_linear(*byte),
        (WavEncoding::ALaw, [byte]) => alaw_to_linear(*byte),
        _ => 0,
    }
}

fn float_to_sample(value: f64) -> i16 {
    if value.is_nan() {
        return 0;
    }
    (value.clamp(-1.0, 1.0) * 32_767.0).round() as i16
}

/// Decodes interleaved sample bytes and mixes all channels down to mono by averaging.
pub(super) fn decode_mono(format: WavFormat, data: &[u8]) -> Vec<i16> {
    let width = format.encoding.bytes_per_sample();
    let channels = usize::from(format.channels);
    data.chunks_exact(width * channels)
        .map(|frame| {
            let sum: i32 = frame
                .chunks_exact(width)
                .map(|sample| i32::from(decode_sample(format.encoding, sample)))
                .sum();
            (sum / channels as i32) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVE");
        bytes.extend_from_slice(b"fmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&tag.to_le_bytes());
        bytes.extend_from_slice(&channels.to_le_bytes());
        bytes.extend_from_slice(&rate.to_le_bytes());
        bytes.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        bytes.extend_from_slice(&block.to_le_bytes());
        bytes.extend_from_slice(&bits.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn sixteen_bit_stereo_is_averaged() {
        let data: Vec<u8> = [1000i16, 3000, -200, -400]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let bytes = wav(FORMAT_PCM, 2, 8000, 16, &data);
        let (format, samples) = parse(&bytes).unwrap();
        assert_eq!(format.channels, 2);
        assert_eq!(decode_mono(format, samples), vec![2000, -300]);
    }

    #[test]
    fn every_width_decodes_to_the_same_value() {
        let cases: [(u16, u16, Vec<u8>); 6] = [
            (FORMAT_PCM, 8, vec![128 + 64]),
            (FORMAT_PCM, 16, 16_384i16.to_le_bytes().to_vec()),
            (FORMAT_PCM, 24, vec![0, 0, 0x40]),
            (FORMAT_PCM, 32, 0x4000_0000i32.to_le_bytes().to_vec()),
            (FORMAT_FLOAT, 32, 0.5f32.to_le_bytes().to_vec()),
            (FORMAT_FLOAT, 64, 0.5f64.to_le_bytes().to_vec()),
        ];
        for (tag, bits, data) in cases {
            let bytes = wav(tag, 1, 16_000, bits, &data);
            let (format, samples) = parse(&bytes).unwrap();
            let value = decode_mono(format, samples)[0];
            assert!((16_383..=16_384).contains(&value), "{tag} {bits}: {value}");
        }
    }

    #[test]
    fn g711_wav_is_decoded() {
        let bytes = wav(FORMAT_MULAW, 1, 8000, 8, &[0x80, 0xFF]);
        let (format, samples) = parse(&bytes).unwrap();
        assert_eq!(format.encoding, WavEncoding::MuLaw);
        assert_eq!(decode_mono(format, samples), vec![32_124, 0]);
        let bytes = wav(FORMAT_ALAW, 1, 8000, 8, &[0xD5]);
        let (format, samples) = parse(&bytes).unwrap();
        assert_eq!(decode_mono(format, samples), vec![8]);
    }

    #[test]
    fn oversized_data_chunk_is_cut() {
        let mut bytes = wav(FORMAT_PCM, 1, 22_050, 16, &[1, 0, 2, 0, 3]);
        let size_offset = bytes.len() - 5 - 4;
        bytes[size_offset..size_offset + 4].copy_from_slice(&0x7FFF_F000u32.to_le_bytes());
        let (format, samples) = parse(&bytes).unwrap();
        assert_eq!(decode_mono(format, samples), vec![1, 2]);
    }

    #[test]
    fn unknown_chunks_are_skipped() {
        let plain = wav(FORMAT_PCM, 1, 8000, 16, &[5, 0]);
        let mut bytes = plain[..12].to_vec();
        bytes.extend_from_slice(b"LIST");
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 0]);
        bytes.extend_from_slice(&plain[12..]);
        let (format, samples) = parse(&bytes).unwrap();
        assert_eq!(decode_mono(format, samples), vec![5]);
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert!(matches!(parse(b"RIFX....WAVE"), Err(WavError::NotWav)));
        assert!(matches!(
            parse(b"RIFF\0\0\0\0WAVE"),
            Err(WavError::MissingChunk("fmt "))
        ));
        let bad_tag = wav(0x0055, 1, 8000, 16, &[]);
        assert!(matches!(
            parse(&bad_tag),
            Err(WavError::UnsupportedEncoding {
                tag: 0x0055,
                bits: 16
            })
        ));
        let no_channels = wav(FORMAT_PCM, 0, 8000, 16, &[]);
        assert!(matches!(
            parse(&no_channels),
            Err(WavError::InvalidFormat(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let valid = wav(FORMAT_PCM, 2, 8000, 16, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut seed = 7u32;
        for round in 0..2000 {
            let mut bytes = valid.clone();
            for _ in 0..(round % 6 + 1) {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let index = (seed >> 8) as usize % bytes.len();
                bytes[index] = (seed >> 24) as u8;
            }
            bytes.truncate((seed as usize >> 4) % (bytes.len() + 1));
            if let Ok((format, samples)) = parse(&bytes) {
                decode_mono(format, samples);
            }
        }
    }
}
