//! G.722 against reference vectors and measured quality bounds.

use voicegate::media::codec::{AudioDecoder, AudioEncoder, G722Decoder, G722Encoder};

/// Deterministic test signal: a triangle wave of sweeping period mixed with LCG noise, in four
/// quarter-second sections (moderate, loud noise, quiet noise, clipped). It exercises every
/// quantiser interval and the saturation paths.
fn reference_input() -> Vec<i16> {
    let mut seed: u32 = 1;
    let mut phase: i32 = 0;
    (0..16_000i32)
        .map(|n| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = ((seed >> 16) & 0x7FFF) as i32 - 16_384;
            let period = 16 + (n / 100) % 120;
            phase = (phase + 1) % period;
            let triangle = if phase < period / 2 {
                phase * 4 * 6000 / period - 6000
            } else {
                18_000 - phase * 4 * 6000 / period
            };
            let value = match n / 4000 {
                0 => triangle + noise.div_euclid(8),
                1 => noise * 2,
                2 => noise.div_euclid(64),
                _ => triangle * 5 + noise,
            };
            value.clamp(-32_768, 32_767) as i16
        })
        .collect()
}

/// Codes and decoded output of the same input from libg722 1.2.8 (the ITU-T G.722 code
/// shipped in Asterisk and FreeSWITCH, which its authors test against the ITU vectors),
/// generated once with its Python binding: `G722(16000, 64000).encode(...)` then `.decode(...)`.
const REFERENCE_CODES: &[u8] = include_bytes!("../data/g722/reference.g722");
const REFERENCE_DECODED: &[u8] = include_bytes!("../data/g722/reference-decoded.raw");

#[test]
fn encoder_matches_reference_codes() {
    let input = reference_input();
    let mut encoder = G722Encoder::new();
    let mut codes = Vec::new();
    for frame in input.chunks(320) {
        encoder.encode(frame, &mut codes).unwrap();
    }
    assert_eq!(codes.len(), REFERENCE_CODES.len());
    let first_difference = codes.iter().zip(REFERENCE_CODES).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "codes differ");
}

#[test]
fn decoder_matches_reference_output() {
    let mut decoder = G722Decoder::new();
    let mut decoded = Vec::new();
    for payload in REFERENCE_CODES.chunks(160) {
        decoder.decode(payload, &mut decoded).unwrap();
    }
    let expected: Vec<i16> = REFERENCE_DECODED
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    assert_eq!(decoded.len(), expected.len());
    let first_difference = decoded.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "decoded samples differ");
}
