//! The resampler over a simulated hour-long call: exact sample counts and no timing drift.

use voicegate::media::resample::Resampler;

/// Phase of a sine in `samples`, in radians, relative to `sin(2 pi f n / rate)`, estimated by
/// correlating with a sine and a cosine.
fn phase_of(samples: &[i16], frequency: f64, rate: f64, first_index: u64) -> f64 {
    let (mut sine, mut cosine) = (0f64, 0f64);
    for (offset, &sample) in samples.iter().enumerate() {
        let angle =
            2.0 * std::f64::consts::PI * frequency * ((first_index + offset as u64) as f64) / rate;
        sine += f64::from(sample) * angle.sin();
        cosine += f64::from(sample) * angle.cos();
    }
    cosine.atan2(sine)
}

/// Feeds one hour of a tone whose period is a whole number of input samples (so the input has
/// no drift of its own) through `from -> 16 kHz` in uneven chunks. Checks that the output
/// count is exact and that the tone's phase, and so the delay, is the same in the first and the
/// last second.
fn hour_without_drift(from: u32, period: usize) {
    let frequency = f64::from(from) / period as f64;
    let cycle: Vec<i16> = (0..period)
        .map(|n| (12_000.0 * (2.0 * std::f64::consts::PI * n as f64 / period as f64).sin()) as i16)
        .collect();
    let total_input = u64::from(from) * 3600;
    let mut resampler = Resampler::new(from, 16_000).unwrap();
    let chunk_sizes = [160usize, 441, 97, 1024, 1];

    let mut input = Vec::with_capacity(2048);
    let mut output = Vec::with_capacity(4096);
    let mut fed = 0u64;
    let mut produced = 0u64;
    let mut first_second = Vec::new();
    let mut last_second = Vec::new();
    let last_start = 16_000u64 * 3599;
    let mut position_in_cycle = 0usize;
    for &size in chunk_sizes.iter().cycle() {
        if fed == total_input {
            break;
        }
        let size = size.min((total_input - fed) as usize);
        input.clear();
        for _ in 0..size {
            input.push(cycle[position_in_cycle]);
            position_in_cycle = (position_in_cycle + 1) % period;
        }
        output.clear();
        resampler.process(&input, &mut output);
        for &sample in &output {
            if produced < 16_000 {
                first_second.push(sample);
            } else if produced >= last_start {
                last_second.push(sample);
            }
            produced += 1;
        }
        fed += size as u64;
    }

    assert_eq!(
        produced,
        16_000 * 3600,
        "{from} Hz: output samples after one hour"
    );
    // Skip the filter's start-up in the first second.
    let start = phase_of(&first_second[1000..], frequency, 16_000.0, 1000);
    let end = phase_of(&last_second, frequency, 16_000.0, last_start);
    let drift_samples = (end - start) / (2.0 * std::f64::consts::PI) * 16_000.0 / frequency;
    assert!(
        drift_samples.abs() < 0.01,
        "{from} Hz: drifted {drift_samples} samples in one hour"
    );
}

#[test]
fn hour_at_8k_has_no_drift() {
    hour_without_drift(8_000, 8);
}

#[test]
fn hour_at_22050_has_no_drift() {
    hour_without_drift(22_050, 49);
}
