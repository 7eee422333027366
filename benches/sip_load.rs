//! Call setup rate of the SIP stack: an in-process signalling-only server (it answers every
//! call at once with a fixed media address and opens no media socket) driven by
//! `sipp -sn uac` over UDP on loopback, at rising rates until calls fail or SIPp cannot keep
//! up. Prints, per rate, the calls completed, failed and retransmitted, and the server's CPU
//! time per call (this process only; SIPp runs as a child and is not counted).
//!
//! Run with `cargo bench --bench sip_load`; `SIP_LOAD_RATES=2000,4000` and
//! `SIP_LOAD_SECONDS=5` change the steps.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use voicegate::sip::sdp::{CodecName, LocalMedia};
use voicegate::sip::{CallEvent, SipConfig, SipServer, TrunkConfig};

/// One rate step's outcome.
#[derive(Debug, Default)]
struct Step {
    rate: u32,
    successful: u64,
    failed: u64,
    retransmissions: u64,
    elapsed: Duration,
    cpu: Duration,
}

/// Returns the CPU time (user plus system) this process has used, from `/proc/self/stat`.
/// Linux counts it in clock ticks of 10 ms, because USER_HZ is 100 on mainstream architectures.
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(15_060)
}

/// Returns the number at the end of a SIPp summary line such as `  Failed call  |  0  |  12`.
fn summary_value(output: &str, label: &str) -> u64 {
    output
        .lines()
        .rev()
        .find(|line| line.trim_start().starts_with(label))
        .and_then(|line| line.split('|').nth(2))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// Sum of the retransmission column of SIPp's message table.
fn retransmissions(output: &str) -> u64 {
    let table = output
        .rsplit("Messages  Retrans")
        .next()
        .unwrap_or_default();
    table
        .lines()
        .take_while(|line| !line.contains("Call Length") && !line.starts_with('-'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let arrow = fields.iter().position(|f| f.contains("--"))?;
            // After the arrow: an optional RTD marker, then Messages, then Retrans.
            let mut numbers = fields
                .get(arrow + 1..)?
                .iter()
                .filter_map(|f| f.parse::<u64>().ok());
            numbers.next()?;
            numbers.next()
        })
        .sum()
}

async fn run_step(target: std::net::SocketAddr, rate: u32, seconds: u32) -> Step {
    let calls = rate * seconds;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let output = tokio::process::Command::new("sipp")
        .args([
            "-sn",
            "uac",
            "-r",
            &rate.to_string(),
            "-m",
            &calls.to_string(),
        ])
        .args([
            "-l",
            &(rate * 2).to_string(),
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
        ])
        .args([
            "-nostdin",
            "-timeout",
            &format!("{}s", seconds * 4 + 30),
            "-max_socket",
            "1",
            // SIPp's default 64 KiB socket buffers overflow whenever it is descheduled.
            "-buff_size",
            "4194304",
        ])
        .arg(target.to_string())
        .output()
        .await;
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    let Ok(output) = output else {
        eprintln!("sip_load: cannot run sipp (scripts/deps.sh installs sip-tester)");
        return Step {
            rate,
            ..Step::default()
        };
    };
    let text = String::from_utf8_lossy(&output.stdout);
    if std::env::var_os("SIP_LOAD_VERBOSE").is_some() {
        println!("{text}");
    }
    Step {
        rate,
        successful: summary_value(&text, "Successful call"),
        failed: summary_value(&text, "Failed call"),
        retransmissions: retransmissions(&text),
        elapsed,
        cpu,
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // and a load run does not belong in a test pass.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("sip_load: skipped outside `cargo bench`");
        return;
    }
    // SIP_LOAD_THREADS=0 (the default) uses one thread, as SIPp needs the other core.
    let threads: usize = std::env::var("SIP_LOAD_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    let runtime = builder.enable_all().build().expect("tokio runtime");
    runtime.block_on(bench());
}

async fn bench() {
    let config = SipConfig {
        udp: "127.0.0.1:0".into(),
        tcp: String::new(),
        source_rate_per_sec: 0,
        user_agent: String::new(),
        ..SipConfig::default()
    };
    let (handle, mut incoming) = SipServer::start(&config, &[TrunkConfig::default()])
        .await
        .expect("SIP server starts");
    let local = LocalMedia {
        addr: "127.0.0.1".parse().expect("address"),
        port: 30_000,
        codecs: vec![CodecName::Pcmu, CodecName::Pcma],
        ptime_ms: 20,
        rtcp_mux: false,
    };
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let local = local.clone();
            tokio::spawn(async move {
                if let Ok(mut active) = call.server.answer(local).await {
                    while let Some(event) = active.events.recv().await {
                        if matches!(event, CallEvent::Ended(_)) {
                            break;
                        }
                    }
                }
            });
        }
    });
    let target = handle.local_addrs()[0].1;
    let rates: Vec<u32> = std::env::var("SIP_LOAD_RATES")
        .unwrap_or_else(|_| "1000,2000,3000,4000,5000,6000,7000,8000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u32 = std::env::var("SIP_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);

    println!("sip_load: sipp -sn uac over UDP loopback, {seconds} s per step");
    println!(
        "{:>6} {:>9} {:>7} {:>8} {:>10} {:>14}",
        "rate", "completed", "failed", "retrans", "calls/s", "cpu/call (ms)"
    );
    let mut best = None;
    for rate in rates {
        let step = run_step(target, rate, seconds).await;
        let achieved = step.successful as f64 / step.elapsed.as_secs_f64().max(0.001);
        let per_call = step.cpu.as_secs_f64() * 1000.0 / (step.successful.max(1) as f64);
        println!(
            "{:>6} {:>9} {:>7} {:>8} {:>10.0} {:>14.4}",
            step.rate, step.successful, step.failed, step.retransmissions, achieved, per_call
        );
        let clean = step.failed == 0
            && step.retransmissions == 0
            && step.successful == u64::from(rate * seconds);
        if clean {
            best = Some((rate, achieved, per_call));
        } else {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    match best {
        Some((rate, achieved, per_call)) => println!(
            "sip_load: highest clean step offered {rate} calls/s and completed {achieved:.0} calls/s \
             (zero failed calls, zero retransmissions), {per_call:.4} ms server CPU per call"
        ),
        None => println!("sip_load: no rate ran clean"),
    }
    handle.shutdown().await;
}
