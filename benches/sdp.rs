//! Prints the wall and CPU time of the SDP work in one call setup: parsing the offer,
//! answering it and printing the answer. Run with `cargo bench --bench sdp`.

use std::hint::black_box;
use std::time::Instant;

use voicegate::sip::sdp::{CodecName, LocalMedia, LocalSession, SessionDescription};

const ITERATIONS: u32 = 200_000;

const OFFERS: [(&str, &str); 3] = [
    (
        "G.711 trunk offer",
        include_str!("../tests/sdp/late_offer_answer.sdp"),
    ),
    (
        "dynamic payload types",
        include_str!("../tests/sdp/dynamic_payload_types.sdp"),
    ),
    (
        "Opus desk phone with video",
        include_str!("../tests/sdp/opus_deskphone_with_video.sdp"),
    ),
];

fn local() -> LocalMedia {
    LocalMedia {
        addr: "198.51.100.10".parse().expect("valid address literal"),
        port: 30_000,
        codecs: vec![
            CodecName::Pcmu,
            CodecName::Pcma,
            CodecName::G722,
            CodecName::Opus,
        ],
        ptime_ms: 20,
        rtcp_mux: true,
    }
}

/// Reads the CPU time of this thread in nanoseconds from `/proc/thread-self/schedstat` (Linux).
/// Wall time alone overstates the cost on a machine shared with other builds.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Runs `work` [`ITERATIONS`] times and prints the mean wall and CPU time per run.
fn measure<T>(label: &str, mut work: impl FnMut() -> T) {
    for _ in 0..ITERATIONS / 10 {
        black_box(work());
    }
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        black_box(work());
    }
    let wall_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(ITERATIONS);
    let cpu_us = match (cpu_start, thread_cpu_ns()) {
        (Some(before), Some(after)) => {
            format!(
                "{:8.2}",
                after.saturating_sub(before) as f64 / 1e3 / f64::from(ITERATIONS)
            )
        }
        _ => "       -".to_owned(),
    };
    println!("{label:<50} wall {wall_us:8.2} us   cpu {cpu_us} us");
}

fn main() {
    let local = local();
    for (name, text) in OFFERS {
        let offer = SessionDescription::parse(text).expect("fixture parses");
        measure(&format!("parse: {name}"), || {
            SessionDescription::parse(black_box(text))
        });
        measure(&format!("answer: {name}"), || {
            LocalSession::new(local.clone(), 1).answer(black_box(&offer))
        });
        measure(&format!("parse + answer + print: {name}"), || {
            let offer = SessionDescription::parse(black_box(text)).expect("fixture parses");
            let mut session = LocalSession::new(local.clone(), 1);
            session.answer(&offer).map(|(answer, _)| answer.to_string())
        });
    }
}
