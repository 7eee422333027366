//! Reading every supported WAV format, made with sox at test time, into 16 kHz mono.

use std::path::Path;
use std::process::Command;

use voicegate::media::wav::{WavAudio, WavEncoding, decode_16k, read_16k, write_stereo};

use super::support::{rms, run, snr_db};

/// Makes a 1 s, 440 Hz tone at half scale in the format sox's `options` describe.
fn sox_tone(path: &Path, options: &[&str]) {
    run(Command::new("sox")
        .args(["-n", "-r", "48000", "-b", "16", "-c", "1"])
        .args(options)
        .arg(path)
        .args(["synth", "1", "sine", "440", "vol", "0.5"]));
}

#[test]
fn every_format_reads_as_the_same_tone() {
    let directory = tempfile::tempdir().unwrap();
    let reference_path = directory.path().join("reference.wav");
    sox_tone(&reference_path, &["-r", "16000"]);
    let reference = read_16k(&reference_path).unwrap();
    assert_eq!(reference.len(), 16_000);
    let level = rms(&reference);
    assert!(
        (11_000.0..12_200.0).contains(&level),
        "reference level {level}"
    );

    let cases: [(&str, &[&str], WavEncoding, f64); 15] = [
        (
            "u8",
            &["-b", "8", "-e", "unsigned-integer"],
            WavEncoding::Pcm { bits: 8 },
            35.0,
        ),
        ("s16", &["-b", "16"], WavEncoding::Pcm { bits: 16 }, 75.0),
        ("s24", &["-b", "24"], WavEncoding::Pcm { bits: 24 }, 75.0),
        ("s32", &["-b", "32"], WavEncoding::Pcm { bits: 32 }, 75.0),
        (
            "f32",
            &["-b", "32", "-e", "floating-point"],
            WavEncoding::Float { bits: 32 },
            75.0,
        ),
        (
            "f64",
            &["-b", "64", "-e", "floating-point"],
            WavEncoding::Float { bits: 64 },
            75.0,
        ),
        (
            "ulaw",
            &["-r", "8000", "-e", "mu-law"],
            WavEncoding::MuLaw,
            33.0,
        ),
        (
            "alaw",
            &["-r", "8000", "-e", "a-law"],
            WavEncoding::ALaw,
            33.0,
        ),
        ("stereo", &["-c", "2"], WavEncoding::Pcm { bits: 16 }, 75.0),
        // sox writes more than two channels as WAVE_FORMAT_EXTENSIBLE.
        ("quad", &["-c", "4"], WavEncoding::Pcm { bits: 16 }, 75.0),
        (
            "r11025",
            &["-r", "11025"],
            WavEncoding::Pcm { bits: 16 },
            60.0,
        ),
        (
            "r22050",
            &["-r", "22050"],
            WavEncoding::Pcm { bits: 16 },
            60.0,
        ),
        (
            "r24000",
            &["-r", "24000"],
            WavEncoding::Pcm { bits: 16 },
            60.0,
        ),
        (
            "r32000",
            &["-r", "32000"],
            WavEncoding::Pcm { bits: 16 },
            60.0,
        ),
        (
            "r44100",
            &["-r", "44100"],
            WavEncoding::Pcm { bits: 16 },
            60.0,
        ),
    ];
    for (name, options, encoding, floor) in cases {
        let path = directory.path().join(format!("{name}.wav"));
        let mut full_options = vec!["-r", "16000"];
        full_options.extend_from_slice(options);
        sox_tone(&path, &full_options);

        let audio = WavAudio::open(&path).unwrap();
        assert_eq!(audio.format.encoding, encoding, "{name}");
        let samples = read_16k(&path).unwrap();
        assert!(
            (15_998..=16_002).contains(&samples.len()),
            "{name}: {} samples",
            samples.len()
        );
        // Skip the edges, where resampling and sox's own conversion ramp in and out.
        let snr = snr_db(&reference[400..15_000], &samples[400..], 4);
        assert!(snr > floor, "{name}: {snr:.1} dB");
    }
}

#[test]
fn streamed_espeak_output_decodes() {
    // espeak-ng --stdout cannot seek back, so its data chunk size is a placeholder.
    let output = Command::new("espeak-ng")
        .args(["--stdout", "Good morning"])
        .output()
        .expect("espeak-ng must be installed (scripts/deps.sh)");
    assert!(output.status.success());
    let audio = WavAudio::from_bytes(&output.stdout).unwrap();
    assert_eq!(audio.format.sample_rate, 22_050);
    let samples = decode_16k(&output.stdout).unwrap();
    let expected = audio.samples.len() * 16_000 / 22_050;
    assert!(samples.len().abs_diff(expected) <= 1);
    assert!(
        rms(&samples) > 500.0,
        "speech is too quiet: {}",
        rms(&samples)
    );
}

#[test]
fn stereo_written_file_is_valid_for_sox() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("stereo.wav");
    let left: Vec<i16> = (0..8000).map(|n| ((n % 100) * 100) as i16).collect();
    write_stereo(&path, 8000, &left, &[]).unwrap();
    let output = Command::new("soxi").arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "soxi rejected the file");
    assert!(text.contains("Channels       : 2"), "{text}");
    assert!(text.contains("Sample Rate    : 8000"), "{text}");
    assert!(text.contains("00:00:01.00"), "{text}");
}
