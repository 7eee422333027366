//! baresip, a real SIP softphone, as the caller over UDP and TCP and as the callee of an
//! outbound call. baresip runs headless with its own configuration directory on loopback.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use tempfile::TempDir;
use voicegate::sip::sdp::{CodecName, LocalMedia};
use voicegate::sip::{CallEvent, OutgoingInvite, Transport};

use super::harness::{Harness, IDLE};

/// A baresip process, killed when dropped.
struct Baresip {
    child: Child,
    dir: TempDir,
    listen: SocketAddr,
}

impl Baresip {
    /// Starts baresip listening on a free loopback port; `dial` makes it call at once, and
    /// `auto_answer` makes it answer incoming calls.
    fn start(dial: Option<&str>, auto_answer: bool) -> Baresip {
        let dir = tempfile::tempdir().expect("temporary directory");
        let listen = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port");
        let source = dir.path().join("speech.wav");
        let status = Command::new("sox")
            .arg("/usr/share/sounds/alsa/Front_Center.wav")
            .args(["-r", "8000", "-c", "1", "-b", "16"])
            .arg(&source)
            .arg("repeat")
            .arg("5")
            .status()
            .expect("sox runs");
        assert!(status.success(), "sox failed");
        let config = format!(
            "poll_method epoll\nsip_listen {listen}\nnet_interface 127.0.0.1\n\
             audio_source aufile,{}\naudio_player aufile,{}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module_tmp account.so\nmodule_app menu.so\n",
            source.display(),
            dir.path().join("heard.wav").display(),
        );
        fs::write(dir.path().join("config"), config).expect("config");
        let answer = if auto_answer { ";answermode=auto" } else { "" };
        let account = format!("<sip:baresip@127.0.0.1>;regint=0{answer}\n");
        fs::write(dir.path().join("accounts"), account).expect("accounts");

        let log = fs::File::create(dir.path().join("baresip.log")).expect("log");
        let mut command = Command::new("baresip");
        command.arg("-f").arg(dir.path()).args(["-t", "30"]);
        if let Some(uri) = dial {
            command.arg("-e").arg(format!("/dial {uri}"));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("baresip runs (scripts/deps.sh installs it)");
        Baresip { child, dir, listen }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn baresip_calls_us(transport: Transport) {
    let harness = Harness::start().await;
    let addr = harness.addr(transport);
    let uri = match transport {
        Transport::Udp => format!("sip:hangup-slow@{addr}"),
        Transport::Tcp => format!("sip:hangup-slow@{addr};transport=tcp"),
    };
    let baresip = Baresip::start(Some(&uri), false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done = {
            let records = harness.records.lock().unwrap();
            records.len() == 1 && records[0].ended.is_some()
        };
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "baresip call did not finish; log:\n{}",
            baresip.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let records = harness.records.lock().unwrap();
        let record = &records[0];
        assert!(record.established, "{record:?}");
        let packets = record.rtp_packets.load(Ordering::Relaxed);
        assert!(
            packets >= 20,
            "{packets} RTP packets from baresip; log:\n{}",
            baresip.log()
        );
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

#[tokio::test]
async fn baresip_calls_over_udp() {
    baresip_calls_us(Transport::Udp).await;
}

#[tokio::test]
async fn baresip_calls_over_tcp() {
    baresip_calls_us(Transport::Tcp).await;
}

#[tokio::test]
async fn we_call_baresip() {
    let harness = Harness::start().await;
    let baresip = Baresip::start(None, true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let media = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("media socket");
    let local = LocalMedia {
        addr: "127.0.0.1".parse().expect("address"),
        port: media.local_addr().expect("address").port(),
        codecs: vec![CodecName::Pcma, CodecName::Pcmu],
        ptime_ms: 20,
        rtcp_mux: false,
    };
    let call = harness
        .handle
        .invite(OutgoingInvite {
            target: format!("sip:baresip@{}", baresip.listen),
            from: "+12025550100".into(),
            transport: Transport::Udp,
            local,
            headers: Vec::new(),
        })
        .await
        .expect("INVITE sent");
    let mut active = tokio::time::timeout(Duration::from_secs(10), call.answered())
        .await
        .unwrap_or_else(|_| panic!("baresip did not answer; log:\n{}", baresip.log()))
        .expect("answered");
    assert_eq!(active.negotiated.codec.name, CodecName::Pcma);
    assert_eq!(
        active.negotiated.remote_rtp.map(|a| a.ip()),
        Some("127.0.0.1".parse().unwrap())
    );

    let mut buffer = [0u8; 2048];
    let mut packets = 0;
    while packets < 10 {
        let received =
            tokio::time::timeout(Duration::from_secs(5), media.recv_from(&mut buffer)).await;
        assert!(
            received.is_ok(),
            "no RTP from baresip; log:\n{}",
            baresip.log()
        );
        packets += 1;
    }
    active.control.hangup("normal clearing");
    let ended = tokio::time::timeout(Duration::from_secs(5), active.events.recv())
        .await
        .expect("event");
    assert!(matches!(ended, Some(CallEvent::Ended(_))), "{ended:?}");
    harness.wait_idle(IDLE).await;
    harness.stop().await;
}
