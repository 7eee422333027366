//! G.711 mu-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8), ITU-T G.711.

use super::plc::Concealer;
use super::{AudioDecoder, AudioEncoder, CodecError};

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711Law {
    /// mu-law, used in North America and Japan.
    Mu,
    /// A-law, used elsewhere.
    A,
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32_635;

/// Encodes one sample as mu-law, by table lookup.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // The code depends only on the sign and on the magnitude's top 14 bits (G.711 mu-law
    // takes 14-bit input), and a negative sample differs from its magnitude only in bit 7.
    let code = ULAW_ENCODE_TABLE[usize::from(sample.unsigned_abs() >> 2)];
    if sample < 0 { code & 0x7F } else { code }
}

/// Encodes one sample as mu-law by the segment formula; builds [`ULAW_ENCODE_TABLE`].
const fn ulaw_formula(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0
    };
    pcm = if pcm > CLIP { CLIP } else { pcm } + BIAS;
    let zeros = (pcm << 17).leading_zeros();
    let exponent = 7 - if zeros > 7 { 7 } else { zeros } as i32;
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// mu-law codes of the magnitudes `4 * i`, `i` up to 8192 (the magnitude of `i16::MIN`).
static ULAW_ENCODE_TABLE: [u8; 8193] = {
    let mut out = [0u8; 8193];
    let mut i = 0;
    while i < out.len() {
        let magnitude = if i * 4 > i16::MAX as usize {
            i16::MAX
        } else {
            (i * 4) as i16
        };
        out[i] = ulaw_formula(magnitude);
        i += 1;
    }
    out
};

/// Decodes one mu-law byte.
pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = ((byte >> 4) & 0x07) as i32;
    let mantissa = (byte & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let segment = match pcm {
        p if p < 0x20 => 0,
        p if p < 0x40 => 1,
        p if p < 0x80 => 2,
        p if p < 0x100 => 3,
        p if p < 0x200 => 4,
        p if p < 0x400 => 5,
        p if p < 0x800 => 6,
        p if p < 0x1000 => 7,
        _ => 8,
    };
    let byte = if segment >= 8 {
        0x7F
    } else if segment < 2 {
        (pcm >> 1) & 0x0F | (segment << 4)
    } else {
        (pcm >> segment) & 0x0F | (segment << 4)
    };
    (byte ^ mask) as u8
}

/// Decodes one A-law byte.
pub const fn alaw_to_linear(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let mut magnitude = ((byte & 0x0F) as i32) << 4;
    let segment = ((byte & 0x70) >> 4) as i32;
    magnitude = match segment {
        0 => magnitude + 8,
        1 => magnitude + 0x108,
        _ => (magnitude + 0x108) << (segment - 1),
    };
    if byte & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn table(law: G711Law) -> [i16; 256] {
    let mut out = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        out[i] = match law {
            G711Law::Mu => ulaw_to_linear(i as u8),
            G711Law::A => alaw_to_linear(i as u8),
        };
        i += 1;
    }
    out
}

static ULAW_TABLE: [i16; 256] = table(G711Law::Mu);
static ALAW_TABLE: [i16; 256] = table(G711Law::A);

/// G.711 decoder with pitch-repetition concealment that fades out over consecutive losses.
#[derive(Debug)]
pub struct G711Decoder {
    table: &'static [i16; 256],
    name: &'static str,
    concealer: Concealer,
}

impl G711Decoder {
    /// Creates a decoder for `law`.
    pub fn new(law: G711Law) -> Self {
        let (table, name) = match law {
            G711Law::Mu => (&ULAW_TABLE, "PCMU"),
            G711Law::A => (&ALAW_TABLE, "PCMA"),
        };
        Self {
            table,
            name,
            concealer: Concealer::new(8_000),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        8_000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload {
                codec: self.name,
                reason: "empty payload",
            });
        }
        let start = out.len();
        out.extend(payload.iter().map(|&b| self.table[usize::from(b)]));
        self.concealer.on_decoded(&mut out[start..]);
        Ok(payload.len())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        self.concealer.conceal(samples, out);
    }

    fn reset(&mut self) {
        self.concealer.reset();
    }
}

/// G.711 encoder.
#[derive(Debug)]
pub struct G711Encoder {
    law: G711Law,
}

impl G711Encoder {
    /// Creates an encoder for `law`.
    pub fn new(law: G711Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
    fn sample_rate(&self) -> u32 {
        8_000
    }

    fn clock_rate(&self) -> u32 {
        8_000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self.law {
            G711Law::Mu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            G711Law::A => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
        Ok(())
    }

    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_table_matches_formula() {
        for sample in i16::MIN..=i16::MAX {
            assert_eq!(
                linear_to_ulaw(sample),
                ulaw_formula(sample),
                "sample {sample}"
            );
        }
    }

    #[test]
    fn ulaw_round_trip_every_code() {
        for byte in 0..=255u8 {
            let sample = ulaw_to_linear(byte);
            let again = linear_to_ulaw(sample);
            // 0x7F and 0xFF both decode to zero.
            assert_eq!(ulaw_to_linear(again), sample, "byte {byte:#04x}");
        }
    }

    #[test]
    fn alaw_round_trip_every_code() {
        for byte in 0..=255u8 {
            let sample = alaw_to_linear(byte);
            assert_eq!(linear_to_alaw(sample), byte, "byte {byte:#04x}");
        }
    }

    #[test]
    fn ulaw_known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
    }

    #[test]
    fn encode_error_is_bounded() {
        for law in [G711Law::Mu, G711Law::A] {
            let mut encoder = G711Encoder::new(law);
            let mut decoder = G711Decoder::new(law);
            for sample in (-32_000i16..32_000).step_by(97) {
                let mut payload = Vec::new();
                encoder.encode(&[sample], &mut payload).unwrap();
                let mut pcm = Vec::new();
                decoder.decode(&payload, &mut pcm).unwrap();
                let error = (i32::from(pcm[0]) - i32::from(sample)).abs();
                // Quantisation step of the top segment is 1024 (mu-law) or 1024 (A-law).
                assert!(error <= 1024, "{law:?} {sample} -> {}", pcm[0]);
            }
        }
    }

    #[test]
    fn conceal_repeats_then_fades_to_silence() {
        let mut decoder = G711Decoder::new(G711Law::Mu);
        let mut pcm = Vec::new();
        decoder.decode(&[0x80; 160], &mut pcm).unwrap();
        let mut concealed = Vec::new();
        decoder.conceal(160, &mut concealed);
        assert_eq!(concealed.len(), 160);
        assert!(concealed[0] > 30_000);
        assert!(concealed[159] < concealed[0]);
        let mut later = Vec::new();
        decoder.conceal(480, &mut later);
        assert_eq!(*later.last().unwrap(), 0);
    }

    #[test]
    fn empty_payload_is_an_error() {
        let mut decoder = G711Decoder::new(G711Law::A);
        assert!(decoder.decode(&[], &mut Vec::new()).is_err());
    }
}
