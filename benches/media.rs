//! Media path benchmarks; prints figures, asserts nothing.
//!
//! `cargo bench --bench media` measures:
//! 1. barge-in timing on a virtual clock (VAD decision to last AI packet, caller speech onset
//!    to AI silence) with default settings;
//! 2. CPU and heap memory per call of the sans-IO session core, G.711 and Opus, both
//!    directions busy (caller speech in, AI audio out, jitter buffer, VAD, echo gate);
//! 3. the engine over loopback with `BENCH_CALLS` calls (default 1000): worker CPU per call
//!    and the spacing error of our outbound packets, from kernel receive timestamps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use voicegate::audio::{MediaEvent, PlayoutCommand, SegmentId};
use voicegate::media::MediaConfig;
use voicegate::media::codec::{AudioEncoder, G711Encoder, G711Law};
use voicegate::media::engine::MediaEngine;
use voicegate::media::engine::socket::{MediaSocket, RecvBatch};
use voicegate::media::session::{Channel, SessionConfig, SessionCore, StreamParams};
use voicegate::media::turn::BargeInSettings;
use voicegate::rtp::{Pt, RtpConfig, RtpHeader, RtpPacket, SeqNo, Ssrc};
use voicegate::sip::sdp::{CodecName, Direction, NegotiatedCodec};

/// Heap bytes currently allocated by the process.
struct CountingAllocator;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const PEER: &str = "127.0.0.1:40000";

fn params(codec: CodecName, peer: SocketAddr) -> StreamParams {
    let (payload_type, clock_rate, channels) = match codec {
        CodecName::Opus => (111, 48_000, 2),
        _ => (0, 8_000, 1),
    };
    StreamParams {
        remote_rtp: Some(peer),
        remote_rtcp: None,
        rtcp_mux: false,
        codec: NegotiatedCodec {
            name: codec,
            payload_type,
            clock_rate,
            channels,
            fmtp: BTreeMap::new(),
        },
        dtmf: None,
        comfort_noise_pt: None,
        ptime_ms: 20,
        direction: Direction::SendRecv,
        strict_source: true,
        record: None,
        barge_in: BargeInSettings::from_config(&MediaConfig::default(), 200),
        simulated_echo: None,
    }
}

fn config() -> SessionConfig {
    SessionConfig {
        rtp: Arc::new(RtpConfig::default()),
        media: Arc::new(MediaConfig::default()),
    }
}

/// espeak-ng speech at `rate` Hz, scaled to about -20 dBFS.
fn speak(text: &str, rate: u32) -> Vec<i16> {
    let dir = std::env::temp_dir().join(format!("voicegate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let wav = dir.join("speech.wav");
    let raw = dir.join("speech.raw");
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg(text)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "espeak-ng failed");
    let ok = Command::new("sox")
        .arg(&wav)
        .args([
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-L",
            "-r",
            &rate.to_string(),
        ])
        .arg(&raw)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "sox failed");
    let bytes = std::fs::read(&raw).expect("sox output");
    let _ = std::fs::remove_dir_all(&dir);
    let mut pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect();
    let peak = pcm
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap_or(1)
        .max(1);
    let gain = 10_000.0 / f32::from(peak);
    pcm.iter_mut()
        .for_each(|s| *s = (f32::from(*s) * gain) as i16);
    pcm
}

fn rtp_packet(pt: u8, seq: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        marker: false,
        pt: Pt(pt),
        seq: SeqNo(seq),
        timestamp,
        ssrc: Ssrc(ssrc),
    };
    let mut out = vec![0; 12 + payload.len()];
    let len = header.write(payload, &mut out).expect("buffer fits");
    out.truncate(len);
    out
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let index = ((values.len() - 1) as f64 * p).round() as usize;
    values[index]
}

/// One-way delay of the caller's packets in the barge-in benchmark.
const NETWORK_DELAY: Duration = Duration::from_millis(30);

/// Barge-in timing on a virtual clock: the AI speaks, the caller interrupts at varying offsets.
fn bench_barge_in(caller_speech: &[i16], trials: u64) {
    let peer: SocketAddr = PEER.parse().expect("address");
    let first_voiced = caller_speech
        .iter()
        .position(|s| s.unsigned_abs() > 300)
        .unwrap_or(0);
    let mut decision_to_last = Vec::new();
    let mut onset_to_silence = Vec::new();
    let mut packets_after = Vec::new();
    let mut packet_and_network = Vec::new();
    let mut vad_onset_lag = Vec::new();
    let mut hold_to_silence = Vec::new();
    let mut onset_to_hold = Vec::new();
    let mut onset_to_decision = Vec::new();
    let mut encoder = G711Encoder::new(G711Law::Mu);
    for trial in 0..trials {
        let start = Instant::now();
        let mut core = SessionCore::new(start, params(CodecName::Pcmu, peer), config(), trial)
            .expect("session");
        let tone: Vec<i16> = (0..16_000 * 6)
            .map(|i| ((i as f32 * 0.055).sin() * 7_000.0) as i16)
            .collect();
        core.handle_command(PlayoutCommand::Audio {
            segment: SegmentId(1),
            pcm: tone,
            interruptible: true,
        });
        // The caller starts 1.0 s plus 0-19 ms in, after 30 ms of network delay.
        let lead = 8_000 + (trial as usize % 20) * 8;
        let mut audio = vec![0i16; lead];
        audio.extend_from_slice(caller_speech);
        audio.resize(8_000 * 3, 0);
        let onset = start + Duration::from_secs_f64((lead + first_voiced) as f64 / 8_000.0);
        let mut now = start;
        let mut in_flight: Vec<(Instant, Vec<u8>)> = Vec::new();
        let mut decision = None;
        let mut ai_packets = Vec::new();
        for (index, chunk) in audio.chunks(160).enumerate() {
            let mut payload = Vec::new();
            encoder.encode(chunk, &mut payload).expect("encode");
            // A phone sends each packet once its 20 ms of audio have been captured.
            let sent = start + Duration::from_millis(20 * (index as u64 + 1));
            in_flight.push((
                sent + NETWORK_DELAY,
                rtp_packet(0, index as u16, 160 * index as u32, 9, &payload),
            ));
            for _ in 0..2 {
                for (_, bytes) in in_flight.iter().filter(|(at, _)| *at <= now) {
                    core.handle_datagram(now, peer, bytes, Channel::Rtp);
                }
                in_flight.retain(|(at, _)| *at > now);
                if core.poll_timeout() <= now {
                    core.tick(now);
                }
                for transmit in core.transmits() {
                    if let Ok(packet) = RtpPacket::parse(transmit.bytes) {
                        let speech = packet
                            .payload()
                            .iter()
                            .any(|&b| b < 0x7A || (0x80..0xFA).contains(&b));
                        ai_packets.push((now, speech));
                    }
                }
                core.clear_transmits();
                while let Some(event) = core.poll_event() {
                    if let MediaEvent::BargeIn(barge_in) = event {
                        decision.get_or_insert((now, barge_in));
                    }
                }
                now += Duration::from_millis(10);
            }
        }
        let Some((decided_at, barge_in)) = decision else {
            println!("  trial {trial}: no barge-in");
            continue;
        };
        // Playout stopped at the hold when there was one, else at the decision.
        let stopped_at = barge_in.held.unwrap_or(decided_at);
        let after: Vec<_> = ai_packets
            .iter()
            .filter(|(at, _)| *at >= stopped_at)
            .collect();
        let last_speech = after
            .iter()
            .filter(|(_, speech)| *speech)
            .map(|(at, _)| *at)
            .max();
        packets_after.push(after.iter().filter(|(_, speech)| *speech).count() as f64);
        let last = last_speech.unwrap_or(stopped_at);
        decision_to_last.push(last.saturating_duration_since(stopped_at).as_secs_f64() * 1e3);
        let silent_from = after
            .iter()
            .find(|(_, speech)| !*speech)
            .map_or(stopped_at, |(at, _)| *at);
        onset_to_silence.push(silent_from.saturating_duration_since(onset).as_secs_f64() * 1e3);
        // The packet that carries the onset leaves at the end of its 20 ms and arrives after
        // the network delay.
        let onset_packet = (lead + first_voiced) / 160;
        let arrival = start + Duration::from_millis(20 * (onset_packet as u64 + 1)) + NETWORK_DELAY;
        packet_and_network.push(arrival.saturating_duration_since(onset).as_secs_f64() * 1e3);
        vad_onset_lag.push(
            barge_in
                .onset
                .saturating_duration_since(arrival)
                .as_secs_f64()
                * 1e3,
        );
        hold_to_silence.push(
            silent_from
                .saturating_duration_since(stopped_at)
                .as_secs_f64()
                * 1e3,
        );
        if let Some(held) = barge_in.held {
            onset_to_hold.push(held.saturating_duration_since(barge_in.onset).as_secs_f64() * 1e3);
        }
        onset_to_decision.push(
            decided_at
                .saturating_duration_since(barge_in.onset)
                .as_secs_f64()
                * 1e3,
        );
    }
    println!(
        "barge-in, PCMU, default settings (pause mode, 40 ms hold, 80 ms onset), 30 ms network delay, packets sent after capture, {} trials:",
        onset_to_silence.len()
    );
    println!(
        "  playout stop (hold or decision) -> last AI packet: p50 {:.1} ms, max {:.1} ms; AI-bearing packets at or after the stop: max {:.0}",
        percentile(&mut decision_to_last.clone(), 0.5),
        percentile(&mut decision_to_last, 1.0),
        percentile(&mut packets_after, 1.0)
    );
    println!(
        "  caller speech onset (sent) -> first silent AI packet: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&mut onset_to_silence.clone(), 0.5),
        percentile(&mut onset_to_silence.clone(), 0.99),
        percentile(&mut onset_to_silence, 1.0)
    );
    println!(
        "  of which (p50): packetisation and network {:.1} ms; jitter buffer and VAD lag to the first voiced frame {:.1} ms (max {:.1} ms); \
         first voiced frame to hold {:.1} ms ({} of {} trials held); stop to first silent packet {:.1} ms",
        percentile(&mut packet_and_network, 0.5),
        percentile(&mut vad_onset_lag.clone(), 0.5),
        percentile(&mut vad_onset_lag, 1.0),
        percentile(&mut onset_to_hold.clone(), 0.5),
        onset_to_hold.len(),
        onset_to_decision.len(),
        percentile(&mut hold_to_silence, 0.5),
    );
    println!(
        "  first voiced frame to decision (onset window) p50 {:.1} ms",
        percentile(&mut onset_to_decision, 0.5)
    );
}

/// CPU and memory of the sans-IO core with both directions busy.
fn bench_core(codec: CodecName, calls: usize, seconds: u64, caller_speech: &[i16]) {
    let peer: SocketAddr = PEER.parse().expect("address");
    let start = Instant::now();
    // Caller payloads, encoded once.
    let payloads: Vec<Vec<u8>> = match codec {
        CodecName::Opus => {
            let mut encoder = voicegate::media::codec::Encoder16k::new(
                &params(codec, peer).codec,
                20,
                &MediaConfig::default(),
            )
            .expect("opus encoder");
            let speech16 = voicegate::media::resample::convert_clip(caller_speech, 8_000, 16_000)
                .expect("resample");
            let mut out = Vec::new();
            for chunk in speech16.chunks(320) {
                let mut frame = chunk.to_vec();
                frame.resize(320, 0);
                let _ = encoder.encode(&frame, |packet| out.push(packet.payload.to_vec()));
            }
            out
        }
        _ => {
            let mut encoder = G711Encoder::new(G711Law::Mu);
            caller_speech
                .chunks(160)
                .map(|chunk| {
                    let mut payload = Vec::new();
                    let mut chunk = chunk.to_vec();
                    chunk.resize(160, 0);
                    encoder.encode(&chunk, &mut payload).expect("encode");
                    payload
                })
                .collect()
        }
    };
    let (pt, step) = match codec {
        CodecName::Opus => (111u8, 960u32),
        _ => (0, 160),
    };
    let ai: Vec<i16> = (0..16_000 * 3)
        .map(|i| ((i as f32 * 0.05).sin() * 6_000.0) as i16)
        .collect();

    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut cores: Vec<SessionCore> = (0..calls)
        .map(|i| SessionCore::new(start, params(codec, peer), config(), i as u64).expect("session"))
        .collect();
    let created = ALLOCATED.load(Ordering::Relaxed);

    let mut now = start;
    let ticks = seconds * 50;
    let mut busy = Duration::ZERO;
    let mut peak_bytes = 0isize;
    let mut packet = Vec::with_capacity(1_500);
    for tick in 0..ticks {
        let payload = &payloads[tick as usize % payloads.len()];
        let began = Instant::now();
        for (call, core) in cores.iter_mut().enumerate() {
            if tick % 150 == 0 {
                let segment = SegmentId(tick);
                core.handle_command(PlayoutCommand::Audio {
                    segment,
                    pcm: ai.clone(),
                    interruptible: false,
                });
                core.handle_command(PlayoutCommand::EndSegment(segment));
            }
            packet.clear();
            packet.extend_from_slice(&rtp_packet(
                pt,
                tick as u16,
                step * tick as u32,
                call as u32 + 1,
                payload,
            ));
            core.handle_datagram(now, peer, &packet, Channel::Rtp);
            core.tick(now);
            core.clear_transmits();
            while core.poll_event().is_some() {}
        }
        busy += began.elapsed();
        if tick == ticks / 2 {
            peak_bytes = ALLOCATED.load(Ordering::Relaxed) - before;
        }
        now += Duration::from_millis(20);
    }
    let per_call_second = busy.as_secs_f64() / (calls as f64 * seconds as f64);
    println!(
        "core {:?}, {calls} calls x {seconds} s of media: {:.1} us per call per second = {:.4}% of one core, {:.0} calls per core",
        codec,
        per_call_second * 1e6,
        per_call_second * 100.0,
        1.0 / per_call_second
    );
    println!(
        "  heap per call: {:.1} KiB after creation, {:.1} KiB while busy (3 s segments queued as {})",
        (created - before) as f64 / calls as f64 / 1024.0,
        peak_bytes as f64 / calls as f64 / 1024.0,
        if codec == CodecName::Opus {
            "16-bit PCM"
        } else {
            "mu-law"
        }
    );
    drop(cores);
}

fn worker_cpu() -> Duration {
    let mut total = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("media-worker") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let after_name = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the stat line, 12 and 13 after the name.
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        total += utime + stime;
    }
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(total * 1_000 / ticks)
}

/// The engine over loopback: one generator socket plays every caller.
fn bench_engine(calls: usize, seconds: u64, caller_speech: &[i16]) {
    let rtp = RtpConfig {
        port_min: 44_000,
        port_max: 44_000 + (calls as u16) * 2 + 200,
        bind_addr: "127.0.0.1".into(),
        ..RtpConfig::default()
    };
    // BENCH_WORKERS leaves a core to the generator on a small machine.
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let media = MediaConfig {
        workers,
        ..MediaConfig::default()
    };
    let engine = MediaEngine::start(&rtp, &media).expect("engine");
    let generator =
        MediaSocket::bind("127.0.0.1:0".parse().expect("address")).expect("generator socket");
    let generator_addr = generator.local_addr().expect("address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut sessions = Vec::new();
    let mut targets = Vec::new();
    for _ in 0..calls {
        let port = engine
            .allocate(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .expect("port");
        targets.push(port.local_addr());
        let session = engine
            .start_session(port, params(CodecName::Pcmu, generator_addr))
            .expect("session");
        sessions.push(session);
    }
    let after_start = ALLOCATED.load(Ordering::Relaxed);

    let mut encoder = G711Encoder::new(G711Law::Mu);
    let payloads: Vec<Vec<u8>> = caller_speech
        .chunks(160)
        .map(|chunk| {
            let mut chunk = chunk.to_vec();
            chunk.resize(160, 0);
            let mut payload = Vec::new();
            encoder.encode(&chunk, &mut payload).expect("encode");
            payload
        })
        .collect();
    let ai: Vec<i16> = (0..16_000 * 2)
        .map(|i| ((i as f32 * 0.05).sin() * 6_000.0) as i16)
        .collect();

    let mut batch = RecvBatch::new();
    let mut arrivals: HashMap<u32, Vec<Instant>> = HashMap::new();
    let cpu_before = worker_cpu();
    let start = Instant::now();
    let rounds = seconds * 50;
    for round in 0..rounds {
        if round % 100 == 0 {
            for (index, session) in sessions.iter().enumerate() {
                let segment = SegmentId(round * 10_000 + index as u64);
                let _ = session.playout.try_send(PlayoutCommand::Audio {
                    segment,
                    pcm: ai.clone(),
                    interruptible: false,
                });
                let _ = session
                    .playout
                    .try_send(PlayoutCommand::EndSegment(segment));
            }
        }
        let payload = &payloads[round as usize % payloads.len()];
        for (call, target) in targets.iter().enumerate() {
            let packet = rtp_packet(
                0,
                round as u16,
                160 * round as u32,
                call as u32 + 1,
                payload,
            );
            let _ = generator.send_to(&packet, *target);
        }
        let next = start + Duration::from_millis(20 * (round + 1));
        while Instant::now() < next {
            match generator.recv_batch(&mut batch) {
                Ok(0) => std::thread::sleep(Duration::from_micros(200)),
                Ok(_) => {
                    for received in batch.iter() {
                        if let Ok(packet) = RtpPacket::parse(received.bytes) {
                            arrivals
                                .entry(packet.ssrc().0)
                                .or_default()
                                .push(received.arrival);
                        }
                    }
                }
                Err(error) => {
                    eprintln!("generator receive failed: {error}");
                    break;
                }
            }
        }
        for session in sessions.iter_mut() {
            while session.events.try_recv().is_ok() {}
        }
    }
    let elapsed = start.elapsed();
    let cpu = worker_cpu().saturating_sub(cpu_before);

    let mut errors = Vec::new();
    let mut received = 0usize;
    for times in arrivals.values() {
        received += times.len();
        // Skip the first second while calls settle.
        for pair in times.windows(2).skip(50) {
            let spacing = pair[1].saturating_duration_since(pair[0]).as_secs_f64() * 1e3;
            errors.push((spacing - 20.0).abs());
        }
    }
    let per_call = cpu.as_secs_f64() / (calls as f64 * elapsed.as_secs_f64());
    println!(
        "engine over loopback, {calls} PCMU calls, {workers} workers, {:.1} s: worker CPU {:.2} s = {:.4}% of one core per call ({:.0} calls per core); {} packets received back",
        elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        per_call * 100.0,
        1.0 / per_call,
        received
    );
    println!(
        "  outbound spacing error: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&mut errors.clone(), 0.5),
        percentile(&mut errors.clone(), 0.99),
        percentile(&mut errors.clone(), 0.999),
        percentile(&mut errors, 1.0)
    );
    println!(
        "  heap per call at start (session, sockets' buffers excluded, channels included): {:.1} KiB",
        (after_start - before) as f64 / calls as f64 / 1024.0
    );
    runtime.block_on(async {
        for session in sessions {
            session.stop().await;
        }
    });
}

fn main() {
    // `cargo test --all-targets` runs this binary without `--bench`: then every part runs
    // briefly, as a smoke test of the benchmark code.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let scale = |full: usize, brief: usize| if quick { brief } else { full };
    // BENCH_ONLY=barge-in|core|core-pcmu|core-opus|engine runs one part.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only == part;
    let long_speech = speak(
        "Hello, I would like to order a birthday cake for Saturday, with chocolate icing and twenty candles, and could you tell me your opening hours",
        8_000,
    );
    if runs("barge-in") {
        let caller_speech = speak("stop, stop, I want to change my order please", 8_000);
        bench_barge_in(&caller_speech, scale(40, 3) as u64);
    }
    if runs("core") || runs("core-pcmu") {
        bench_core(
            CodecName::Pcmu,
            scale(200, 5),
            scale(10, 1) as u64,
            &long_speech,
        );
    }
    if runs("core") || runs("core-opus") {
        bench_core(
            CodecName::Opus,
            scale(50, 2),
            scale(10, 1) as u64,
            &long_speech,
        );
    }
    if !runs("engine") {
        return;
    }
    let calls = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    bench_engine(scale(calls, 5), scale(10, 1) as u64, &long_speech);
}
