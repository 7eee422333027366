//! Opus through the factory and directly: fmtp limits, FEC against PLC, stereo downmix, DTX.

use std::collections::BTreeMap;

use voicegate::media::MediaConfig;
use voicegate::media::codec::{
    AudioDecoder, AudioEncoder, Decoder16k, Encoder16k, OpusBandwidth, OpusDecoder, OpusEncoder,
    OpusEncoderSettings,
};
use voicegate::sip::sdp::{CodecName, NegotiatedCodec};

use super::support::{band_energy, rms, snr_at, speech};

fn fmtp(text: &str) -> BTreeMap<String, String> {
    text.split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn opus(fmtp_text: &str) -> NegotiatedCodec {
    NegotiatedCodec {
        name: CodecName::Opus,
        payload_type: 107,
        clock_rate: 48_000,
        channels: 2,
        fmtp: fmtp(fmtp_text),
    }
}

/// Deterministic broadband noise, so that any band the encoder keeps has energy.
fn noise(len: usize, amplitude: f64) -> Vec<i16> {
    let mut seed = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            ((f64::from(seed) / f64::from(u32::MAX) * 2.0 - 1.0) * amplitude) as i16
        })
        .collect()
}

/// Encodes `pcm` at `rate` in 20 ms frames and decodes the packets at 48 kHz.
fn encode_decode_48k(pcm: &[i16], rate: u32, settings: OpusEncoderSettings) -> Vec<i16> {
    let mut encoder = OpusEncoder::new(rate, settings).unwrap();
    let mut decoder = OpusDecoder::new(48_000).unwrap();
    let mut decoded = Vec::new();
    for frame in pcm.chunks_exact((rate / 50) as usize) {
        let mut payload = Vec::new();
        encoder.encode(frame, &mut payload).unwrap();
        decoder.decode(&payload, &mut decoded).unwrap();
    }
    decoded
}

#[test]
fn maxplaybackrate_limits_decoded_spectrum() {
    // Fullband noise at 48 kHz and 64 kbit/s: without a limit the decoded audio reaches far
    // above 8 kHz, with maxplaybackrate=16000 it must not.
    let input = noise(48_000, 8000.0);
    let open = OpusEncoderSettings::from_fmtp(&BTreeMap::new(), 64_000, 9);
    let limited = OpusEncoderSettings::from_fmtp(&fmtp("maxplaybackrate=16000"), 64_000, 9);
    assert_eq!(limited.max_bandwidth, OpusBandwidth::Wideband);

    let wide = encode_decode_48k(&input, 48_000, open);
    let narrow = encode_decode_48k(&input, 48_000, limited);
    let high_share = |pcm: &[i16]| {
        band_energy(pcm, 48_000, 9_000.0, 20_000.0) / band_energy(pcm, 48_000, 100.0, 7_500.0)
    };
    let open_share = high_share(&wide);
    let limited_share = high_share(&narrow);
    assert!(
        open_share > 0.5,
        "unlimited encoder kept little above 9 kHz: {open_share}"
    );
    assert!(
        limited_share < 0.001,
        "limited encoder sent {limited_share} above 9 kHz"
    );
}

#[test]
fn narrowband_limit_applies_at_16k_input() {
    let input = noise(16_000, 8000.0);
    let settings = OpusEncoderSettings::from_fmtp(&fmtp("maxplaybackrate=8000"), 32_000, 9);
    let decoded = encode_decode_48k(&input, 16_000, settings);
    let share = band_energy(&decoded, 48_000, 4_600.0, 8_000.0)
        / band_energy(&decoded, 48_000, 100.0, 3_800.0);
    assert!(
        share < 0.001,
        "narrowband encoder sent {share} above 4.6 kHz"
    );
}

#[test]
fn desk_phone_fmtp_reaches_libopus() {
    let codec = opus(
        "maxplaybackrate=16000;sprop-maxcapturerate=16000;maxaveragebitrate=24000;stereo=0;\
         sprop-stereo=0;useinbandfec=1",
    );
    let settings = OpusEncoderSettings::from_fmtp(&codec.fmtp, 32_000, 5);
    let encoder = OpusEncoder::new(16_000, settings).unwrap();
    assert_eq!(encoder.library_bitrate().unwrap(), 24_000);
    assert_eq!(
        encoder.library_max_bandwidth().unwrap(),
        Some(OpusBandwidth::Wideband)
    );
    assert_eq!(encoder.library_fec_and_dtx().unwrap(), (true, false));
}

#[test]
fn bitrate_cap_limits_payload_sizes() {
    let pcm = speech(
        "Thank you for calling the bakery. We open at seven on Saturday.",
        16_000,
    );
    let media = MediaConfig {
        opus_bitrate: 64_000,
        ..MediaConfig::default()
    };
    let codec = opus("maxaveragebitrate=16000");
    let mut encoder = Encoder16k::new(&codec, 20, &media).unwrap();
    let mut bytes = 0usize;
    let mut packets = 0usize;
    for frame in pcm.chunks_exact(320) {
        encoder
            .encode(frame, |packet| {
                bytes += packet.payload.len();
                packets += 1;
            })
            .unwrap();
    }
    let bitrate = bytes as f64 * 8.0 / (packets as f64 * 0.02);
    // VBR overshoots on loud frames; the average stays near the cap.
    assert!(
        bitrate < 16_000.0 * 1.15,
        "average {bitrate:.0} bit/s over a 16 kbit/s cap"
    );
    assert!(
        bitrate > 6_000.0,
        "average {bitrate:.0} bit/s is implausibly low"
    );
}

#[test]
fn fec_recovers_loss_better_than_plc() {
    let pcm = speech(
        "Our address is twelve Market Street. We bake bread, rolls and cakes every morning.",
        16_000,
    );
    let settings = OpusEncoderSettings::from_fmtp(&fmtp("useinbandfec=1"), 32_000, 9);
    let mut encoder = OpusEncoder::new(16_000, settings).unwrap();
    encoder.set_packet_loss(20);
    let packets: Vec<Vec<u8>> = pcm
        .chunks_exact(320)
        .map(|frame| {
            let mut payload = Vec::new();
            encoder.encode(frame, &mut payload).unwrap();
            payload
        })
        .collect();

    let mut clean = OpusDecoder::new(16_000).unwrap();
    let mut with_plc = OpusDecoder::new(16_000).unwrap();
    let mut with_fec = OpusDecoder::new(16_000).unwrap();
    let (mut reference, mut plc, mut fec) = (Vec::new(), Vec::new(), Vec::new());
    let mut lost_ranges = Vec::new();
    for (index, payload) in packets.iter().enumerate() {
        clean.decode(payload, &mut reference).unwrap();
        let lost = index % 7 == 3 && index + 1 < packets.len();
        if lost {
            lost_ranges.push(plc.len()..plc.len() + 320);
            with_plc.conceal(320, &mut plc);
            with_fec
                .decode_fec(&packets[index + 1], 320, &mut fec)
                .unwrap();
        } else {
            with_plc.decode(payload, &mut plc).unwrap();
            with_fec.decode(payload, &mut fec).unwrap();
        }
    }
    assert_eq!(plc.len(), reference.len());
    assert_eq!(fec.len(), reference.len());

    // Compare the lost frames with what a decoder without losses produced, skipping silence.
    let (mut plc_total, mut fec_total, mut frames) = (0.0, 0.0, 0);
    for range in lost_ranges {
        if rms(&reference[range.clone()]) < 300.0 {
            continue;
        }
        plc_total += snr_at(&reference[range.clone()], &plc[range.clone()], 0);
        fec_total += snr_at(&reference[range.clone()], &fec[range.clone()], 0);
        frames += 1;
    }
    assert!(frames >= 5, "too few voiced lost frames: {frames}");
    let (plc_mean, fec_mean) = (plc_total / f64::from(frames), fec_total / f64::from(frames));
    assert!(
        fec_mean > plc_mean + 3.0,
        "FEC {fec_mean:.1} dB is not clearly better than PLC {plc_mean:.1} dB"
    );
}

#[test]
fn stereo_stream_is_downmixed_to_mono() {
    // A peer sends real stereo: 500 Hz on the left, 1500 Hz on the right.
    let mut encoder = audiopus::coder::Encoder::new(
        audiopus::SampleRate::Hz48000,
        audiopus::Channels::Stereo,
        audiopus::Application::Voip,
    )
    .unwrap();
    encoder
        .set_bitrate(audiopus::Bitrate::BitsPerSecond(64_000))
        .unwrap();

    let mut interleaved = Vec::new();
    for n in 0..48_000 {
        let time = n as f64 / 48_000.0;
        interleaved.push((6000.0 * (2.0 * std::f64::consts::PI * 500.0 * time).sin()) as i16);
        interleaved.push((6000.0 * (2.0 * std::f64::consts::PI * 1500.0 * time).sin()) as i16);
    }

    let mut decoder = Decoder16k::new(&opus("stereo=1;sprop-stereo=1")).unwrap();
    let mut mono = Vec::new();
    for frame in interleaved.chunks_exact(1920) {
        let mut payload = vec![0u8; 4000];
        let written = encoder.encode(frame, &mut payload).unwrap();
        let decoded = decoder.decode(&payload[..written], &mut mono).unwrap();
        assert_eq!(decoded, 320);
    }

    let left = band_energy(&mono, 16_000, 400.0, 600.0);
    let right = band_energy(&mono, 16_000, 1_400.0, 1_600.0);
    let total = band_energy(&mono, 16_000, 50.0, 7_900.0);
    assert!(
        left > 0.3 * total / 2.0,
        "left channel missing: {left} of {total}"
    );
    assert!(
        right > 0.3 * total / 2.0,
        "right channel missing: {right} of {total}"
    );
    // Each channel at half level: the downmix averages, it does not sum.
    let level = rms(&mono[1600..]);
    assert!(
        (2500.0..3800.0).contains(&level),
        "downmix level {level:.0}"
    );
}

#[test]
fn dtx_marks_silent_packets() {
    let media = MediaConfig::default();
    let mut encoder = Encoder16k::new(&opus("usedtx=1"), 20, &media).unwrap();
    let mut flags = Vec::new();
    for _ in 0..100 {
        encoder
            .encode(&[0; 320], |packet| {
                flags.push((packet.discontinuous, packet.payload.len()));
            })
            .unwrap();
    }
    let discontinuous = flags.iter().filter(|(flag, _)| *flag).count();
    assert!(
        discontinuous > 50,
        "only {discontinuous} of 100 silent packets were DTX"
    );
    assert!(flags.iter().all(|&(flag, len)| !flag || len <= 2));

    let mut plain = Encoder16k::new(&opus(""), 20, &media).unwrap();
    let mut any = false;
    plain
        .encode(&[0; 320], |packet| any |= packet.discontinuous)
        .unwrap();
    assert!(!any, "DTX flagged although the peer did not ask for it");
}
