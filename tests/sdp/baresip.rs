//! Interoperability with a real SIP phone: baresip calls us and must send RTP as our answer
//! says, and baresip answers our offer and must send RTP that `accept_answer` predicted.
//!
//! The test plays a minimal SIP peer over UDP on 127.0.0.1, just enough to carry the SDP
//! (INVITE, 200, ACK, BYE); baresip is bound to 127.0.0.1 as well, and the test sends nothing
//! to an address outside loopback.

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use voicegate::sip::sdp::{
    CodecName, LocalMedia, LocalSession, NegotiatedMedia, SessionDescription,
};

/// How long any one step may take before the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// RTP packets that must arrive to count the media as flowing.
const PACKETS_REQUIRED: usize = 5;

/// What baresip sends as the caller's voice.
enum Source {
    /// A 440 Hz sine at 48 kHz, which suits Opus only.
    Sine,
    /// An 8 kHz tone from a WAV file, which suits G.711 only.
    Tone8k,
}

/// A baresip process with its own configuration directory, killed when dropped.
struct Baresip {
    child: Child,
    dir: TempDir,
    sip: SocketAddr,
}

impl Baresip {
    /// Starts baresip with one account and an audio source, optionally dialling `dial`.
    fn start(account: &str, source: Source, dial: Option<&str>) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let sip = free_udp_port();
        let tone = dir.path().join("tone8k.wav");
        write_tone(&tone);
        let audio_source = match source {
            Source::Sine => "ausine,440".to_owned(),
            Source::Tone8k => format!("aufile,{}", tone.display()),
        };
        let config = format!(
            "poll_method epoll\n\
             sip_listen {sip}\n\
             net_interface 127.0.0.1\n\
             audio_source {audio_source}\n\
             audio_player aufile,{player}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module g722.so\n\
             module opus.so\n\
             module ausine.so\n\
             module aufile.so\n\
             module_tmp account.so\n\
             module_app menu.so\n",
            player = dir.path().join("heard.wav").display(),
        );
        fs::write(dir.path().join("config"), config).unwrap();
        fs::write(dir.path().join("accounts"), format!("{account}\n")).unwrap();

        let mut command = Command::new("baresip");
        command.arg("-f").arg(dir.path()).args(["-t", "20"]);
        if let Some(uri) = dial {
            command.arg("-e").arg(format!("/dial {uri}"));
        }
        let log = fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("failed to start baresip (scripts/deps.sh installs it): {error}")
            });
        Baresip { child, dir, sip }
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

/// Returns a loopback port that was free a moment ago, for baresip to listen on.
fn free_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Ten seconds of a 440 Hz tone at 8 kHz, because baresip's file source does not resample
/// and G.711 runs at 8 kHz.
fn write_tone(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..80_000 {
        let phase = 2.0 * std::f64::consts::PI * 440.0 * f64::from(n) / 8_000.0;
        writer.write_sample((phase.sin() * 8_000.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// A received SIP message: start line, headers and body.
struct SipMessage {
    start: String,
    headers: Vec<String>,
    body: String,
}

impl SipMessage {
    fn parse(bytes: &[u8]) -> SipMessage {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.split("\r\n").map(str::to_owned);
        let start = lines.next().unwrap_or_default();
        SipMessage {
            start,
            headers: lines.collect(),
            body: body.to_owned(),
        }
    }

    /// Returns the whole header line, for copying into a response.
    fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .iter()
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} header in {}", self.start))
    }

    fn header_value(&self, name: &str) -> String {
        let line = self.header(name);
        line.split_once(':')
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    }
}

/// Receives the next SIP message that satisfies `matches`, failing after [`STEP_TIMEOUT`].
fn receive_sip(
    socket: &UdpSocket,
    baresip: &Baresip,
    matches: impl Fn(&SipMessage) -> bool,
) -> (SipMessage, SocketAddr) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut buffer = [0u8; 65_535];
    while Instant::now() < deadline {
        if let Ok((len, from)) = socket.recv_from(&mut buffer) {
            let message = SipMessage::parse(&buffer[..len]);
            if matches(&message) {
                return (message, from);
            }
        }
    }
    panic!(
        "timed out waiting for a SIP message; baresip log:\n{}",
        baresip.log()
    );
}

/// Receives RTP until [`PACKETS_REQUIRED`] packets arrived and returns their payload types
/// and source addresses.
fn receive_rtp(socket: &UdpSocket, baresip: &Baresip) -> Vec<(u8, SocketAddr)> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut buffer = [0u8; 2_048];
    let mut packets = Vec::new();
    while packets.len() < PACKETS_REQUIRED && Instant::now() < deadline {
        if let Ok((len, from)) = socket.recv_from(&mut buffer) {
            // RFC 3550 §5.1: version 2 in the top bits, payload type in the low 7 bits of byte 1.
            if len >= 12 && buffer[0] >> 6 == 2 {
                packets.push((buffer[1] & 0x7f, from));
            }
        }
    }
    assert_eq!(
        packets.len(),
        PACKETS_REQUIRED,
        "too few RTP packets; baresip log:\n{}",
        baresip.log()
    );
    packets
}

fn bind_loopback() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket
}

fn local_media(rtp: &UdpSocket, codecs: &[CodecName]) -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port: rtp.local_addr().unwrap().port(),
        codecs: codecs.to_vec(),
        ptime_ms: 20,
        rtcp_mux: true,
    }
}

fn assert_loopback(media: &NegotiatedMedia) {
    let remote = media.remote_rtp.expect("baresip gave an RTP address");
    assert!(remote.ip().is_loopback(), "baresip announced {remote}");
}

#[test]
fn baresip_sends_what_we_answered() {
    let sip = bind_loopback();
    let rtp = bind_loopback();
    let our_sip = sip.local_addr().unwrap();
    let baresip = Baresip::start(
        "<sip:caller@127.0.0.1>;regint=0",
        Source::Sine,
        Some(&format!("sip:ai@{our_sip}")),
    );

    let (invite, from) = receive_sip(&sip, &baresip, |message| {
        message.start.starts_with("INVITE")
    });
    let offer = SessionDescription::parse(&invite.body).unwrap();
    let offered_opus = offer
        .audio()
        .unwrap()
        .rtp_formats()
        .iter()
        .find(|format| format.codec() == Some(CodecName::Opus))
        .map(|format| format.payload_type)
        .expect("baresip offers Opus");

    // Opus first: baresip's sine source runs only at 48 kHz.
    let mut session = LocalSession::new(local_media(&rtp, &[CodecName::Opus, CodecName::Pcmu]), 99);
    let (answer, media) = session.answer(&offer).unwrap();
    assert_eq!(media.codec.name, CodecName::Opus);
    assert_eq!(media.codec.payload_type, offered_opus);
    assert_loopback(&media);

    let body = answer.to_string();
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=sdptest\r\n{}\r\n{}\r\n\
         Contact: <sip:ai@{our_sip}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        invite.header("Via"),
        invite.header("From"),
        invite.header("To"),
        invite.header("Call-ID"),
        invite.header("CSeq"),
        body.len()
    );
    sip.send_to(ok.as_bytes(), from).unwrap();
    receive_sip(&sip, &baresip, |message| message.start.starts_with("ACK"));

    for (payload_type, source) in receive_rtp(&rtp, &baresip) {
        assert_eq!(payload_type, offered_opus);
        assert_eq!(
            Some(source),
            media.remote_rtp,
            "symmetric RTP from the announced port"
        );
    }
}

#[test]
fn baresip_answer_to_our_offer() {
    let sip = bind_loopback();
    let rtp = bind_loopback();
    let our_sip = sip.local_addr().unwrap();
    let baresip = Baresip::start(
        "<sip:callee@127.0.0.1>;regint=0;answermode=auto",
        Source::Tone8k,
        None,
    );

    let mut session = LocalSession::new(local_media(&rtp, &[CodecName::Pcmu, CodecName::Opus]), 99);
    let offer = session.offer().to_string();
    let call_id = "sdp-interop-offer@127.0.0.1";
    let target = baresip.sip;
    let invite = format!(
        "INVITE sip:callee@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {our_sip};branch=z9hG4bK-sdp-invite\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ai@{our_sip}>;tag=sdp-uac\r\n\
         To: <sip:callee@{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:ai@{our_sip}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{offer}",
        offer.len()
    );

    // baresip may still be starting, so the INVITE is repeated until a response arrives.
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut buffer = [0u8; 65_535];
    let first_response = loop {
        assert!(
            Instant::now() < deadline,
            "no response; baresip log:\n{}",
            baresip.log()
        );
        sip.send_to(invite.as_bytes(), target).unwrap();
        if let Ok((len, _)) = sip.recv_from(&mut buffer) {
            break SipMessage::parse(&buffer[..len]);
        }
    };
    let ok = if first_response.start.starts_with("SIP/2.0 200") {
        first_response
    } else {
        receive_sip(&sip, &baresip, |message| {
            message.start.starts_with("SIP/2.0 200")
        })
        .0
    };

    let answer = SessionDescription::parse(&ok.body).unwrap();
    let media = session.accept_answer(&answer).unwrap();
    assert_eq!(media.codec.name, CodecName::Pcmu);
    assert_eq!(media.codec.payload_type, 0);
    assert_eq!(media.dtmf.map(|dtmf| dtmf.clock_rate), Some(8_000));
    assert_loopback(&media);

    let to = ok.header("To");
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} sip:callee@{target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {our_sip};branch=z9hG4bK-sdp-{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ai@{our_sip}>;tag=sdp-uac\r\n{to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    sip.send_to(in_dialog("ACK", 1, "ack").as_bytes(), target)
        .unwrap();

    for (payload_type, source) in receive_rtp(&rtp, &baresip) {
        assert_eq!(payload_type, media.codec.payload_type);
        assert_eq!(Some(source), media.remote_rtp);
    }

    sip.send_to(in_dialog("BYE", 2, "bye").as_bytes(), target)
        .unwrap();
    let (bye_response, _) = receive_sip(&sip, &baresip, |message| {
        message.start.starts_with("SIP/2.0") && message.header_value("CSeq").ends_with("BYE")
    });
    assert!(
        bye_response.start.starts_with("SIP/2.0 200"),
        "{}",
        bye_response.start
    );
}
