//! The 16 kHz adapters on real speech: quality per codec and no allocation per frame.

use std::collections::BTreeMap;

use voicegate::media::MediaConfig;
use voicegate::media::codec::{Decoder16k, Encoder16k, expected_clock_rate};
use voicegate::sip::sdp::{CodecName, NegotiatedCodec};

use super::support::{allocations, snr_db, speech, speech_with_effects};

fn negotiated(name: CodecName) -> NegotiatedCodec {
    NegotiatedCodec {
        name,
        payload_type: 96,
        clock_rate: expected_clock_rate(name),
        channels: if name == CodecName::Opus { 2 } else { 1 },
        fmtp: BTreeMap::new(),
    }
}

/// Sends `pcm` (16 kHz) through the encoder and decoder adapters of `name`.
fn through(name: CodecName, pcm: &[i16]) -> Vec<i16> {
    let media = MediaConfig::default();
    let codec = negotiated(name);
    let mut encoder = Encoder16k::new(&codec, 20, &media).unwrap();
    let mut decoder = Decoder16k::new(&codec).unwrap();
    let mut decoded = Vec::new();
    for frame in pcm.chunks_exact(320) {
        encoder
            .encode(frame, |packet| {
                decoder.decode(packet.payload, &mut decoded).unwrap();
            })
            .unwrap();
    }
    decoded
}

#[test]
fn speech_round_trip_quality() {
    let text = "Hello, you have reached the bakery. How can I help you today?";
    // Narrowband codecs are measured against speech low-passed below the resamplers'
    // transition band (3.4 to 4.6 kHz), so that the score is the codec's, not the upper band
    // that 8 kHz sampling cannot carry.
    let narrow = speech_with_effects(text, 16_000, &["sinc", "-3300"]);
    let wide = speech(text, 16_000);
    let cases = [
        (CodecName::Pcmu, &narrow, 33.0),
        (CodecName::Pcma, &narrow, 33.0),
        (CodecName::G722, &wide, 25.0),
    ];
    for (name, input, floor) in cases {
        let decoded = through(name, input);
        assert_eq!(decoded.len(), input.len() / 320 * 320, "{name:?}");
        let snr = snr_db(input, &decoded, 80);
        assert!(snr > floor, "{name:?}: {snr:.1} dB");
    }
}

#[test]
fn opus_speech_keeps_its_envelope() {
    // Opus is perceptual, so compare 20 ms energies rather than waveforms.
    let input = speech("Hello, you have reached the bakery.", 16_000);
    let decoded = through(CodecName::Opus, &input);
    let energies = |pcm: &[i16]| -> Vec<f64> {
        pcm.chunks_exact(320)
            .map(|frame| frame.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>())
            .collect()
    };
    let (a, b) = (energies(&input), energies(&decoded));
    // The codec delays by a few milliseconds, well under a frame; correlate frame energies.
    let len = a.len().min(b.len());
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(&a[..len]), mean(&b[..len]));
    let mut cov = 0.0;
    let (mut va, mut vb) = (0.0, 0.0);
    for i in 0..len {
        cov += (a[i] - ma) * (b[i] - mb);
        va += (a[i] - ma).powi(2);
        vb += (b[i] - mb).powi(2);
    }
    let correlation = cov / (va * vb).sqrt();
    assert!(correlation > 0.9, "envelope correlation {correlation:.2}");
}

#[test]
fn no_allocation_per_frame_after_warm_up() {
    let media = MediaConfig::default();
    let frame: Vec<i16> = (0..320).map(|n| ((n * 91) % 4000) as i16 - 2000).collect();
    for name in [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::Opus,
    ] {
        let codec = negotiated(name);
        let mut encoder = Encoder16k::new(&codec, 20, &media).unwrap();
        let mut decoder = Decoder16k::new(&codec).unwrap();
        let mut packet = Vec::with_capacity(4000);
        let mut decoded = Vec::with_capacity(4 * 320);
        let ticks = encoder.timestamp_increment();
        let mut cycle = |encoder: &mut Encoder16k, decoder: &mut Decoder16k, round: usize| {
            packet.clear();
            encoder
                .encode(&frame, |encoded| packet.extend_from_slice(encoded.payload))
                .unwrap();
            decoded.clear();
            match round % 4 {
                0 => {
                    decoder.conceal(ticks, &mut decoded);
                }
                1 => {
                    decoder.decode_fec(&packet, ticks, &mut decoded);
                }
                _ => {
                    decoder.decode(&packet, &mut decoded).unwrap();
                }
            }
        };
        for round in 0..50 {
            cycle(&mut encoder, &mut decoder, round);
        }
        let before = allocations();
        for round in 0..200 {
            cycle(&mut encoder, &mut decoder, round);
        }
        assert_eq!(allocations() - before, 0, "{name:?} allocated per frame");
    }
}
