//! Helpers shared by the codec tests: speech made at test time, signal measures and a
//! per-thread allocation counter.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::process::Command;

/// Counts allocations made by the current thread, so that tests running in parallel do not
/// see each other's.
pub struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter only reads and
// writes a thread-local integer, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations the current thread has made so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs a command and fails the test with its stderr if it does not succeed.
pub fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|error| {
        panic!("failed to start {command:?}: {error} (install espeak-ng and sox: scripts/deps.sh)")
    });
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Speaks `text` with espeak-ng and converts it with sox to raw mono 16-bit PCM at `rate`.
pub fn speech(text: &str, rate: u32) -> Vec<i16> {
    speech_with_effects(text, rate, &[])
}

/// Like [`speech`], with sox effects (for example `["sinc", "-3300"]`) applied after the rate
/// conversion.
pub fn speech_with_effects(text: &str, rate: u32, effects: &[&str]) -> Vec<i16> {
    let directory = tempfile::tempdir().unwrap();
    let wav = directory.path().join("speech.wav");
    let raw = directory.path().join("speech.raw");
    run(Command::new("espeak-ng").arg("-w").arg(&wav).arg(text));
    sox_to_raw(&wav, &raw, rate, effects);
    std::fs::read(&raw)
        .unwrap()
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect()
}

fn sox_to_raw(input: &Path, output: &Path, rate: u32, effects: &[&str]) {
    run(Command::new("sox")
        .arg(input)
        .args([
            "-r",
            &rate.to_string(),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
        ])
        .arg(output)
        .args(effects));
}

/// Signal-to-noise ratio in dB of `decoded` against `reference`, after shifting `decoded` by
/// the delay (0 to `max_delay` samples) that fits best.
pub fn snr_db(reference: &[i16], decoded: &[i16], max_delay: usize) -> f64 {
    (0..=max_delay)
        .map(|delay| snr_at(reference, decoded, delay))
        .fold(f64::MIN, f64::max)
}

/// Signal-to-noise ratio in dB of `decoded[n + delay]` against `reference[n]`.
pub fn snr_at(reference: &[i16], decoded: &[i16], delay: usize) -> f64 {
    let len = reference.len().min(decoded.len().saturating_sub(delay));
    let (mut signal, mut noise) = (0f64, 0f64);
    for n in 0..len {
        let expected = f64::from(reference[n]);
        signal += expected * expected;
        noise += (f64::from(decoded[n + delay]) - expected).powi(2);
    }
    10.0 * (signal / noise.max(1e-9)).log10()
}

/// Energy of `samples` between `low_hz` and `high_hz`, from Hann-windowed 512-point DFTs over
/// the whole signal.
pub fn band_energy(samples: &[i16], rate: u32, low_hz: f64, high_hz: f64) -> f64 {
    const SIZE: usize = 512;
    let window: Vec<f64> = (0..SIZE)
        .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / SIZE as f64).cos())
        .collect();
    let twiddles: Vec<(f64, f64)> = (0..SIZE)
        .map(|k| {
            let angle = 2.0 * std::f64::consts::PI * k as f64 / SIZE as f64;
            (angle.cos(), angle.sin())
        })
        .collect();
    let resolution = f64::from(rate) / SIZE as f64;
    let first = (low_hz / resolution).ceil() as usize;
    let last = ((high_hz / resolution).floor() as usize).min(SIZE / 2);
    let mut energy = 0.0;
    let mut windowed = vec![0f64; SIZE];
    for block in samples.chunks_exact(SIZE).step_by(2) {
        for ((slot, &sample), &weight) in windowed.iter_mut().zip(block).zip(&window) {
            *slot = f64::from(sample) * weight;
        }
        for bin in first..=last {
            let (mut re, mut im) = (0f64, 0f64);
            for (n, &value) in windowed.iter().enumerate() {
                let (cos, sin) = twiddles[(bin * n) % SIZE];
                re += value * cos;
                im -= value * sin;
            }
            energy += re * re + im * im;
        }
    }
    energy
}

/// Root mean square of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (energy / samples.len().max(1) as f64).sqrt()
}
