//! Every scenario in `sipp-scenarios/` run once with the real `sipp` binary, over UDP and
//! over TCP, against an in-process server. SIPp exits non-zero on any unexpected message.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;
use voicegate::sip::Transport;

use super::harness::{Harness, IDLE};

/// Returns a port that was free a moment ago.
fn free_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp-scenarios")
        .join(name)
}

/// Converts a recorded voice to 8 kHz mu-law, the format SIPp's rtp_stream plays.
fn write_speech(dir: &Path) {
    let status = std::process::Command::new("sox")
        .arg("/usr/share/sounds/alsa/Front_Center.wav")
        .args(["-r", "8000", "-c", "1", "-e", "u-law"])
        .arg(dir.join("speech.wav"))
        .status()
        .expect("sox runs (scripts/deps.sh installs it)");
    assert!(status.success(), "sox failed to convert the speech sample");
}

/// Runs one scenario for one call and fails the test with SIPp's error log if it fails.
pub async fn run_sipp(name: &str, number: &str, target: SocketAddr, transport: Transport) {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_speech(dir.path());
    let mode = match transport {
        Transport::Udp => "u1",
        Transport::Tcp => "t1",
    };
    let media_port = free_port() & !1;
    let output = Command::new("sipp")
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario(name))
        .args([
            "-s",
            number,
            "-m",
            "1",
            "-l",
            "1",
            "-r",
            "1",
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &free_port().to_string(),
            "-mp",
            &media_port.to_string(),
        ])
        .args([
            "-t",
            mode,
            "-timeout",
            "30s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-trace_msg",
        ])
        .arg(target.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("sipp runs (scripts/deps.sh installs sip-tester)");
    if output.status.success() {
        return;
    }
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("errors.log") || name.ends_with("messages.log") {
            logs.push_str(&format!("--- {name}\n"));
            logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    panic!(
        "sipp {name} over {transport} failed ({}):\n{}\n{logs}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

async fn run_both(name: &str, number: &str) -> Harness {
    let harness = Harness::start().await;
    for transport in [Transport::Udp, Transport::Tcp] {
        run_sipp(name, number, harness.addr(transport), transport).await;
    }
    harness
}

#[tokio::test]
async fn basic_call_with_rtp() {
    let harness = run_both("basic_call.xml", "+12025550100").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    for record in harness.records.lock().unwrap().iter() {
        assert!(record.established, "{record:?}");
        let packets = record
            .rtp_packets
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            packets >= 25,
            "only {packets} RTP packets reached the media socket"
        );
        assert!(
            record
                .ended
                .as_deref()
                .unwrap_or_default()
                .starts_with("remote hangup")
        );
    }
    harness.wait_idle(IDLE).await;
    harness.stop().await;
}

#[tokio::test]
async fn cancel_while_ringing() {
    let harness = run_both("cancel_ringing.xml", "cancel").await;
    harness
        .wait_for("two cancelled calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.cancelled)
        })
        .await;
    assert!(
        harness
            .records
            .lock()
            .unwrap()
            .iter()
            .all(|c| !c.established)
    );
    harness.wait_idle(IDLE).await;
    harness.stop().await;
}

#[tokio::test]
async fn hold_and_unhold() {
    let harness = run_both("hold_unhold.xml", "+12025550100").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    for record in harness.records.lock().unwrap().iter() {
        let changes = record
            .events
            .iter()
            .filter(|e| e.starts_with("MediaChanged"))
            .count();
        assert_eq!(changes, 2, "{record:?}");
        assert!(record.events[0].contains("RecvOnly"), "{record:?}");
        assert!(record.events[1].contains("SendRecv"), "{record:?}");
    }
    harness.stop().await;
}

#[tokio::test]
async fn late_offer() {
    let harness = run_both("late_offer.xml", "+12025550100").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    for record in harness.records.lock().unwrap().iter() {
        assert!(record.late_offer, "{record:?}");
        assert!(record.established, "{record:?}");
    }
    harness.stop().await;
}

#[tokio::test]
async fn options_keepalive() {
    let harness = run_both("options.xml", "keepalive").await;
    assert!(
        harness.records.lock().unwrap().is_empty(),
        "OPTIONS starts no call"
    );
    harness.stop().await;
}

#[tokio::test]
async fn session_timer_refresh() {
    let harness = run_both("session_timer.xml", "+12025550100").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn reliable_provisional_and_prack() {
    let harness = run_both("prack.xml", "+12025550100").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn server_hangs_up() {
    let harness = run_both("server_bye.xml", "hangup").await;
    harness
        .wait_for("two ended calls", |r| {
            r.len() == 2 && r.iter().all(|c| c.ended.is_some())
        })
        .await;
    for record in harness.records.lock().unwrap().iter() {
        assert!(
            record
                .ended
                .as_deref()
                .unwrap_or_default()
                .starts_with("local hangup"),
            "{record:?}"
        );
    }
    harness.wait_idle(IDLE).await;
    harness.stop().await;
}
