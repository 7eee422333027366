//! Codec, resampler and recorder costs: per-frame encode and decode time for every codec (Opus
//! at several complexities), the full 16 kHz adapter path, resampler cost and delay per
//! conversion (with rubato for comparison) and memory per codec instance.
//!
//! Run with `cargo bench --bench codec`. It prints figures and asserts nothing. Times are the
//! thread's CPU time, so other load on the machine affects them less than wall time, but cache
//! contention from that load still does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, PolynomialDegree, Resampler as _, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};
use voicegate::media::MediaConfig;
use voicegate::media::codec::{
    AudioDecoder, AudioEncoder, Decoder16k, Encoder16k, G711Decoder, G711Encoder, G711Law,
    G722Decoder, G722Encoder, OpusDecoder, OpusEncoder, OpusEncoderSettings, expected_clock_rate,
};
use voicegate::media::resample::Resampler;
use voicegate::sip::sdp::{CodecName, NegotiatedCodec};

/// Counts live heap bytes and allocations, so that memory per instance can be estimated.
struct CountingAllocator;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator and only updates atomics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Generates a voiced, speech-like test signal at 16 kHz: harmonics of a gliding fundamental with a
/// syllable-rate envelope and a little noise.
fn speech_like(samples: usize) -> Vec<i16> {
    let mut seed = 0x9E37_79B9u32;
    let mut phase = 0f64;
    (0..samples)
        .map(|n| {
            let time = n as f64 / 16_000.0;
            let fundamental = 120.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.7 * time).sin();
            phase += 2.0 * std::f64::consts::PI * fundamental / 16_000.0;
            let voiced: f64 = (1..=20).map(|k| (k as f64 * phase).sin() / k as f64).sum();
            let envelope = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 4.0 * time).sin();
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = f64::from(seed) / f64::from(u32::MAX) - 0.5;
            ((voiced * envelope * 6000.0) + noise * 300.0) as i16
        })
        .collect()
}

/// CPU time the current thread has used. Measuring CPU time rather than wall time keeps the
/// figures meaningful on a machine shared with other builds, because time spent waiting for a
/// core is not counted.
fn thread_cpu_time() -> Duration {
    let mut spec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `spec` is a valid, writable timespec and the clock id is a Linux constant.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut spec) };
    if result != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        spec.tv_sec.max(0) as u64,
        spec.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// Runs `work` repeatedly for about `budget` of CPU time and returns the mean CPU time per
/// call.
fn time_per_call(budget: Duration, mut work: impl FnMut()) -> Duration {
    for _ in 0..20 {
        work();
    }
    let start = thread_cpu_time();
    let mut calls = 0u32;
    while thread_cpu_time() - start < budget {
        for _ in 0..50 {
            work();
        }
        calls += 50;
    }
    (thread_cpu_time() - start) / calls
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn negotiated(name: CodecName) -> NegotiatedCodec {
    NegotiatedCodec {
        name,
        payload_type: 96,
        clock_rate: expected_clock_rate(name),
        channels: if name == CodecName::Opus { 2 } else { 1 },
        fmtp: BTreeMap::new(),
    }
}

/// Encodes and decodes 20 ms frames with a bare codec at its own rate.
fn bench_codec(
    name: &str,
    mut encoder: Box<dyn AudioEncoder>,
    mut decoder: Box<dyn AudioDecoder>,
    signal: &[i16],
) {
    let frame_len = (encoder.sample_rate() / 50) as usize;
    let frames: Vec<&[i16]> = signal.chunks_exact(frame_len).collect();
    let mut payloads = Vec::new();
    for frame in &frames {
        let mut payload = Vec::new();
        encoder.encode(frame, &mut payload).unwrap_or_default();
        payloads.push(payload);
    }

    let mut index = 0;
    let mut payload = Vec::with_capacity(4000);
    let encode = time_per_call(Duration::from_millis(400), || {
        payload.clear();
        encoder
            .encode(frames[index % frames.len()], &mut payload)
            .unwrap_or_default();
        black_box(&payload);
        index += 1;
    });

    let mut pcm = Vec::with_capacity(4000);
    let decode = time_per_call(Duration::from_millis(400), || {
        pcm.clear();
        let _ = decoder.decode(&payloads[index % payloads.len()], &mut pcm);
        black_box(&pcm);
        index += 1;
    });
    let conceal = time_per_call(Duration::from_millis(200), || {
        pcm.clear();
        decoder.conceal(frame_len, &mut pcm);
        black_box(&pcm);
    });

    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "{name:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
        micros(encode),
        micros(decode),
        micros(conceal),
        bytes as f64 / payloads.len() as f64
    );
}

fn bench_codecs(signal_16k: &[i16]) {
    let signal_8k: Vec<i16> = {
        let mut resampler = Resampler::new(16_000, 8_000).unwrap_or_else(|e| panic!("{e}"));
        resampler.convert_clip(signal_16k)
    };
    println!("\n## Codecs, per 20 ms frame at the codec rate (bare codec)");
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9}",
        "codec", "enc µs", "dec µs", "plc µs", "bytes"
    );
    for (name, law) in [("PCMU", G711Law::Mu), ("PCMA", G711Law::A)] {
        bench_codec(
            name,
            Box::new(G711Encoder::new(law)),
            Box::new(G711Decoder::new(law)),
            &signal_8k,
        );
    }
    bench_codec(
        "G722",
        Box::new(G722Encoder::new()),
        Box::new(G722Decoder::new()),
        signal_16k,
    );
    for complexity in [0u8, 3, 5, 7, 9, 10] {
        let settings = OpusEncoderSettings::from_fmtp(&BTreeMap::new(), 24_000, complexity);
        let (Ok(encoder), Ok(decoder)) =
            (OpusEncoder::new(16_000, settings), OpusDecoder::new(16_000))
        else {
            println!("opus unavailable");
            return;
        };
        bench_codec(
            &format!("opus 24k c{complexity}"),
            Box::new(encoder),
            Box::new(decoder),
            signal_16k,
        );
    }
}

/// Measures the media path's view: one 20 ms internal frame each way through the 16 kHz
/// adapters.
fn bench_adapters(signal_16k: &[i16]) {
    println!("\n## 16 kHz adapters, one 20 ms frame encoded and one packet decoded");
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>16}",
        "codec", "enc µs", "dec µs", "both µs", "% core per call"
    );
    let media = MediaConfig::default();
    for name in [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::Opus,
    ] {
        let codec = negotiated(name);
        let (Ok(mut encoder), Ok(mut decoder)) =
            (Encoder16k::new(&codec, 20, &media), Decoder16k::new(&codec))
        else {
            continue;
        };
        let frames: Vec<&[i16]> = signal_16k.chunks_exact(320).collect();
        let mut payloads = Vec::new();
        for frame in &frames {
            let _ = encoder.encode(frame, |packet| payloads.push(packet.payload.to_vec()));
        }
        let mut index = 0;
        let encode = time_per_call(Duration::from_millis(400), || {
            let _ = encoder.encode(frames[index % frames.len()], |packet| {
                black_box(packet.payload);
            });
            index += 1;
        });
        let mut pcm = Vec::with_capacity(2000);
        let decode = time_per_call(Duration::from_millis(400), || {
            pcm.clear();
            let _ = decoder.decode(&payloads[index % payloads.len()], &mut pcm);
            black_box(&pcm);
            index += 1;
        });
        let both = encode + decode;
        println!(
            "{:<10} {:>10.2} {:>10.2} {:>12.2} {:>15.4}%",
            format!("{name:?}"),
            micros(encode),
            micros(decode),
            micros(both),
            both.as_secs_f64() / 0.020 * 100.0
        );
    }
}

/// Measures the delay of a converter as the position of the peak its impulse response has,
/// in milliseconds.
fn measured_delay_ms(from: u32, to: u32) -> f64 {
    let Ok(mut resampler) = Resampler::new(from, to) else {
        return f64::NAN;
    };
    let mut input = vec![0i16; from as usize / 10];
    input[0] = 30_000;
    let mut output = Vec::new();
    resampler.process(&input, &mut output);
    let peak = output
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| s.unsigned_abs())
        .map(|(i, _)| i)
        .unwrap_or(0);
    peak as f64 * 1000.0 / f64::from(to)
}

fn bench_resamplers() {
    println!("\n## Resamplers, cost per 20 ms of input and delay");
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "conversion",
        "ours µs",
        "delay ms",
        "first KiB",
        "inst B",
        "rubato sinc",
        "sinc delay",
        "rubato poly",
        "poly delay"
    );
    let conversions = [
        (8_000, 16_000),
        (16_000, 8_000),
        (48_000, 16_000),
        (16_000, 48_000),
        (22_050, 16_000),
        (24_000, 16_000),
        (44_100, 16_000),
        (11_025, 16_000),
        (32_000, 16_000),
    ];
    for (from, to) in conversions {
        let chunk = (from / 50) as usize;
        let input: Vec<i16> = (0..chunk)
            .map(|n| ((n * 7919) % 20_000) as i16 - 10_000)
            .collect();
        // The first instance of a ratio allocates the shared table; later ones only history.
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let Ok(first) = Resampler::new(from, to) else {
            continue;
        };
        let first_bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let Ok(mut ours) = Resampler::new(from, to) else {
            continue;
        };
        let instance_bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
        drop(first);
        let mut output = Vec::with_capacity(4 * chunk);
        let cost = time_per_call(Duration::from_millis(300), || {
            output.clear();
            ours.process(&input, &mut output);
            black_box(&output);
        });

        let float_input: Vec<f32> = input.iter().map(|&s| f32::from(s)).collect();
        let ratio = f64::from(to) / f64::from(from);
        let sinc = rubato_cost(&float_input, ratio, true);
        let poly = rubato_cost(&float_input, ratio, false);
        println!(
            "{:<16} {:>10.2} {:>10.2} {:>10.1} {:>10} {:>12} {:>12} {:>12} {:>12}",
            format!("{from}->{to}"),
            micros(cost),
            measured_delay_ms(from, to),
            first_bytes as f64 / 1024.0,
            instance_bytes,
            sinc.map_or("-".into(), |(cost, _)| format!("{:.2} µs", micros(cost))),
            sinc.map_or("-".into(), |(_, delay)| format!("{delay:.2} ms")),
            poly.map_or("-".into(), |(cost, _)| format!("{:.2} µs", micros(cost))),
            poly.map_or("-".into(), |(_, delay)| format!("{delay:.2} ms")),
        );
    }
    println!(
        "(first KiB: the first instance of a ratio, including its shared coefficient table; \
         0 when an earlier row built it. inst B: every further instance.)"
    );
}

/// Cost per chunk and delay in milliseconds of rubato's asynchronous resampler, with a
/// 64-point sinc (cubic interpolation, oversampling 128) or a cubic polynomial.
fn rubato_cost(input: &[f32], ratio: f64, sinc: bool) -> Option<(Duration, f64)> {
    let chunk = input.len();
    let mut resampler = if sinc {
        let parameters = SincInterpolationParameters::new(64, WindowFunction::BlackmanHarris2)
            .oversampling_factor(128)
            .interpolation(SincInterpolationType::Cubic);
        Async::<f32>::new_sinc(ratio, 1.0, &parameters, chunk, 1, FixedAsync::Input).ok()?
    } else {
        Async::<f32>::new_poly(
            ratio,
            1.0,
            PolynomialDegree::Cubic,
            chunk,
            1,
            FixedAsync::Input,
        )
        .ok()?
    };
    let mut output = vec![0f32; resampler.output_frames_max()];
    let frames_out = output.len();
    let delay_ms = resampler.output_delay() as f64 * 1000.0 / (ratio * chunk as f64 * 50.0);
    let cost = time_per_call(Duration::from_millis(300), || {
        let (Ok(adapter_in), Ok(mut adapter_out)) = (
            InterleavedSlice::new(input, 1, chunk),
            InterleavedSlice::new_mut(&mut output, 1, frames_out),
        ) else {
            return;
        };
        let _ = resampler.process_into_buffer(&adapter_in, &mut adapter_out, None);
        black_box(&output);
    });
    Some((cost, delay_ms))
}

/// Estimates the heap bytes a call's codec pair keeps once built and warmed up, as the change
/// in live bytes. libopus allocates its state with C `malloc`, which the counter does not see, so its
/// documented state sizes are added for Opus.
fn bench_memory(signal_16k: &[i16]) {
    println!("\n## Memory per call, both directions (estimate from live heap bytes)");
    println!(
        "{:<10} {:>12} {:>14} {:>12}",
        "codec", "Rust heap", "libopus state", "total KiB"
    );
    let media = MediaConfig::default();
    for name in [
        CodecName::Pcmu,
        CodecName::Pcma,
        CodecName::G722,
        CodecName::Opus,
    ] {
        let codec = negotiated(name);
        // Build a first pair so that shared resampler tables exist before measuring.
        let warm = (Encoder16k::new(&codec, 20, &media), Decoder16k::new(&codec));
        drop(warm);
        let before = LIVE_BYTES.load(Ordering::Relaxed);
        let (Ok(mut encoder), Ok(mut decoder)) =
            (Encoder16k::new(&codec, 20, &media), Decoder16k::new(&codec))
        else {
            continue;
        };
        let mut payload = Vec::new();
        let mut pcm = Vec::with_capacity(2 * 320);
        for frame in signal_16k.chunks_exact(320).take(50) {
            payload.clear();
            let _ = encoder.encode(frame, |packet| payload.extend_from_slice(packet.payload));
            pcm.clear();
            let _ = decoder.decode(&payload, &mut pcm);
            decoder.conceal(encoder.timestamp_increment(), &mut pcm);
        }
        let rust_bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
        let libopus_bytes = if name == CodecName::Opus {
            // SAFETY: plain size queries of libopus with a valid channel count.
            let encoder_size = unsafe { audiopus::ffi::opus_encoder_get_size(1) };
            let decoder_size = unsafe { audiopus::ffi::opus_decoder_get_size(1) };
            i64::from(encoder_size) + i64::from(decoder_size)
        } else {
            0
        };
        black_box((&encoder, &decoder));
        println!(
            "{:<10} {:>12} {:>14} {:>12.1}",
            format!("{name:?}"),
            rust_bytes,
            libopus_bytes,
            (rust_bytes + libopus_bytes) as f64 / 1024.0
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported.
    let signal = speech_like(16_000 * 4);
    println!("voicegate codec benchmark (figures, no assertions)");
    bench_codecs(&signal);
    bench_adapters(&signal);
    bench_resamplers();
    bench_memory(&signal);
    println!(
        "\nallocations during the run: {}",
        ALLOCATIONS.load(Ordering::Relaxed)
    );
}
