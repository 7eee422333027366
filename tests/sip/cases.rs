//! Faults other voice servers hit in the field, sent as raw bytes over loopback sockets. The
//! fixtures under `tests/sip/fixtures/` are trunk messages with every address rewritten to
//! loopback, and the test points the top Via and Contact at its own socket before sending.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use voicegate::sip::{SipConfig, Transport, TrunkConfig};

use super::harness::{Harness, IDLE, loopback_config};

/// How long to wait for a response that should come.
const REPLY: Duration = Duration::from_secs(5);
/// How long to listen to be sure nothing comes.
const SILENCE: Duration = Duration::from_millis(400);

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sip/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn text_fixture(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("fixture is UTF-8")
}

fn status(message: &str) -> u16 {
    message.get(8..11).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

fn body(message: &str) -> &str {
    message.split("\r\n\r\n").nth(1).unwrap_or_default()
}

fn to_tag(message: &str) -> String {
    header(message, "To")
        .and_then(|to| to.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).to_string())
        .expect("To tag")
}

/// A trunk played by a UDP socket.
struct Peer {
    socket: UdpSocket,
    server: SocketAddr,
    tag: String,
}

impl Peer {
    async fn new(server: SocketAddr) -> Peer {
        let bind = if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let socket = UdpSocket::bind(bind).await.expect("bind peer");
        Peer {
            socket,
            server,
            tag: String::new(),
        }
    }

    fn local(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Points the top Via and the Contact at this socket and fills in the server's To tag.
    fn prepare(&self, text: &str) -> String {
        let text = &self.point_contact(text);
        let via_start = text.find("Via: SIP/2.0/UDP ").expect("Via") + "Via: SIP/2.0/UDP ".len();
        let via_end = via_start + text[via_start..].find(';').expect("Via parameters");
        let mut out = format!("{}{}{}", &text[..via_start], self.local(), &text[via_end..]);
        if out.contains("received=[::1]") {
            out = out.replace(
                "received=[::1]",
                &format!("received=[{}]", self.local().ip()),
            );
        }
        out.replace("SERVER_TAG", &self.tag)
    }

    fn point_contact(&self, text: &str) -> String {
        text.split("\r\n")
            .map(|line| match line.strip_prefix("Contact: ") {
                Some(value) => {
                    let user = value.split('@').next().unwrap_or("<sip:peer");
                    format!("Contact: {user}@{}>", self.local())
                }
                None => line.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    async fn send(&self, text: &str) {
        let message = self.prepare(text);
        self.socket
            .send_to(message.as_bytes(), self.server)
            .await
            .expect("send");
    }

    async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.expect("send");
    }

    async fn recv_within(&self, limit: Duration) -> Option<String> {
        let mut buffer = vec![0u8; 65_535];
        let (length, _) = tokio::time::timeout(limit, self.socket.recv_from(&mut buffer))
            .await
            .ok()?
            .ok()?;
        Some(String::from_utf8_lossy(&buffer[..length]).into_owned())
    }

    /// Returns the next message that is not 100 Trying.
    async fn recv(&self) -> String {
        loop {
            let message = self
                .recv_within(REPLY)
                .await
                .expect("a message from the server");
            if status(&message) != 100 {
                return message;
            }
        }
    }

    /// Receives until a final response (>= 200), answering nothing on the way.
    async fn recv_final(&mut self) -> String {
        loop {
            let message = self.recv().await;
            if status(&message) >= 200 {
                if message.starts_with("SIP/2.0 2") {
                    self.tag = to_tag(&message);
                }
                return message;
            }
        }
    }

    async fn expect_silence(&self) {
        if let Some(message) = self.recv_within(SILENCE).await {
            panic!("expected no message, got:\n{message}");
        }
    }
}

/// Returns an ACK for a response with our server's tag, for fixtures that need one.
fn ack_for(invite: &str, response: &str, branch: &str) -> String {
    let via = invite.lines().find(|l| l.starts_with("Via:")).expect("Via");
    let via = via.split(";branch=").next().unwrap_or(via);
    format!(
        "ACK sip:+12025550100@127.0.0.1 SIP/2.0\r\n{via};branch={branch}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\n\
         Call-ID: {}\r\nCSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
        header(invite, "From").unwrap(),
        header(response, "To").unwrap(),
        header(invite, "Call-ID").unwrap(),
        header(invite, "CSeq").unwrap().split(' ').next().unwrap(),
    )
}

#[tokio::test]
async fn malformed_requests_are_rejected_or_dropped() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let cases = [
        ("malformed_from.sip", 400, "Invalid From Header"),
        ("negative_content_length.sip", 400, "Invalid Content-Length"),
        (
            "content_length_exceeds_body.sip",
            400,
            "Content-Length Exceeds Body",
        ),
        (
            "duplicate_content_length.sip",
            400,
            "Duplicate Content-Length",
        ),
        ("cseq_method_mismatch.sip", 400, "CSeq Method Mismatch"),
        ("missing_to_empty_call_id.sip", 400, "Missing To Header"),
        ("ipv6_unbracketed_uri.sip", 400, "Invalid Request-URI"),
    ];
    for (name, expected, reason) in cases {
        peer.send(&text_fixture(name)).await;
        let response = peer.recv_final().await;
        assert_eq!(status(&response), expected, "{name}: {response}");
        assert!(
            response.lines().next().unwrap().ends_with(reason),
            "{name}: {response}"
        );
    }
    peer.send_raw(&fixture("truncated_binary.bin")).await;
    peer.expect_silence().await;

    let invite = text_fixture("late_offer_invite.sip");
    let old_version = invite.replacen("SIP/2.0\r\n", "SIP/7.0\r\n", 1);
    peer.send(&old_version).await;
    assert_eq!(status(&peer.recv_final().await), 505);
    let overflow = invite
        .replace("Content-Length: 0", "Content-Length: 99999999999999999999")
        .replace("Max-Forwards: 70", "Max-Forwards: 300")
        .replace("CSeq: 1 INVITE", "CSeq: 36893488147419103232 INVITE");
    peer.send(&overflow).await;
    assert_eq!(status(&peer.recv_final().await), 400);
    let long_call_id = invite
        .replace("late-offer@127.0.0.1", &"A".repeat(4096))
        .replace("INVITE sip", "OPTIONS sip")
        .replace("1 INVITE", "1 OPTIONS");
    peer.send(&long_call_id).await;
    assert_eq!(status(&peer.recv_final().await), 200);

    assert!(
        harness.records.lock().unwrap().is_empty(),
        "no call was offered"
    );
    let stats = harness.wait_idle(IDLE).await;
    assert_eq!(stats.calls, 0);
    harness.stop().await;
}

#[tokio::test]
async fn bad_payload_type_never_echoed() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    peer.send(&text_fixture("bad_payload_type.sip")).await;
    let response = peer.recv_final().await;
    match status(&response) {
        200 => {
            assert!(!body(&response).contains("4294967296"), "{response}");
            assert!(body(&response).contains("RTP/AVP 0"), "{response}");
        }
        488 => {}
        other => panic!("unexpected {other}: {response}"),
    }
    harness.stop().await;
}

#[tokio::test]
async fn ipv6_call_is_answered_over_ipv6() {
    let config = SipConfig {
        udp: "[::1]:0".into(),
        tcp: String::new(),
        ..loopback_config()
    };
    let harness = Harness::start_with(config, vec![TrunkConfig::default()]).await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("ipv6_invite.sip");
    peer.send(&invite).await;
    let ok = peer.recv_final().await;
    assert_eq!(status(&ok), 200, "{ok}");
    assert!(body(&ok).contains("c=IN IP6 ::1"), "{ok}");
    assert!(header(&ok, "Contact").unwrap().contains("[::1]"), "{ok}");
    peer.send(&ack_for(&peer.prepare(&invite), &ok, "z9hG4bK-v6ack"))
        .await;
    harness
        .wait_for("an established IPv6 call", |r| {
            r.len() == 1 && r[0].established
        })
        .await;

    peer.send(&text_fixture("ipv6_unbracketed_uri.sip")).await;
    assert_eq!(status(&peer.recv_final().await), 400);
    harness.stop().await;
}

#[tokio::test]
async fn retransmissions_start_one_call_and_forks_get_482() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("retransmitted_invite.sip");
    peer.send(&invite).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    peer.send(&invite).await;
    let ok = peer.recv_final().await;
    assert_eq!(status(&ok), 200);
    peer.send(&invite).await;
    peer.send(&text_fixture("merged_invite.sip")).await;
    let mut statuses = Vec::new();
    while let Some(message) = peer.recv_within(SILENCE).await {
        statuses.push(status(&message));
    }
    assert!(statuses.contains(&482), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 482 || *s == 180),
        "{statuses:?}"
    );
    peer.send(&ack_for(&peer.prepare(&invite), &ok, "z9hG4bK-forked-ack"))
        .await;
    harness
        .wait_for("one established call", |r| r.iter().any(|c| c.established))
        .await;
    assert_eq!(harness.records.lock().unwrap().len(), 1, "exactly one call");
    harness.stop().await;
}

#[tokio::test]
async fn late_offer_ack_without_answer_gets_bye() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    peer.send(&text_fixture("late_offer_invite.sip")).await;
    let ok = peer.recv_final().await;
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(body(&ok).contains("m=audio"));
    peer.send(&text_fixture("late_offer_ack_empty.sip")).await;
    let bye = peer.recv().await;
    assert!(bye.starts_with("BYE "), "{bye}");
    harness
        .wait_for("a failed answer", |r| {
            r.len() == 1 && r[0].answer_error.is_some()
        })
        .await;

    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let second = text_fixture("late_offer_invite.sip").replace("late-offer@", "late-offer-2@");
    peer.send(&second).await;
    peer.recv_final().await;
    peer.send(&text_fixture("late_offer_ack.sip").replace("late-offer@", "late-offer-2@"))
        .await;
    harness
        .wait_for("an established late-offer call", |r| {
            r.iter().any(|c| c.established)
        })
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn required_100rel_waits_for_prack() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    peer.send(&text_fixture("require_100rel.sip")).await;
    let ringing = peer.recv().await;
    assert_eq!(status(&ringing), 180, "{ringing}");
    assert_eq!(header(&ringing, "RSeq"), Some("1"));
    peer.tag = to_tag(&ringing);
    peer.send(&text_fixture("prack.sip")).await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let message = peer.recv().await;
        statuses.push((
            status(&message),
            header(&message, "CSeq").unwrap().to_string(),
        ));
    }
    assert!(
        statuses.contains(&(200, "2 PRACK".to_string())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(200, "1 INVITE".to_string())),
        "{statuses:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn hold_and_unhold_fixtures() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("hold_sendonly.sip")
        .replacen(
            "INVITE sip:media@127.0.0.1:5060",
            "INVITE sip:+12025550100@127.0.0.1",
            1,
        )
        .replace(";tag=SERVER_TAG", "")
        .replace("CSeq: 2 INVITE", "CSeq: 1 INVITE")
        .replace("a=sendonly", "a=sendrecv")
        .replace("z9hG4bK-hold-hold", "z9hG4bK-hold-initial");
    peer.send(&invite).await;
    let ok = peer.recv_final().await;
    peer.send(&ack_for(&peer.prepare(&invite), &ok, "z9hG4bK-hold-ack1"))
        .await;

    let steps = [
        ("hold_sendonly.sip", "a=recvonly"),
        ("hold_zero_address.sip", ""),
        ("unhold_no_final_crlf.sip", "a=sendrecv"),
    ];
    for (index, (name, expected)) in steps.into_iter().enumerate() {
        let request = text_fixture(name);
        peer.send(&request).await;
        let ok = peer.recv_final().await;
        assert_eq!(status(&ok), 200, "{name}: {ok}");
        assert!(body(&ok).contains(expected), "{name}: {ok}");
        assert!(
            !body(&ok).contains("a=sendrecv") || expected == "a=sendrecv",
            "{name}: {ok}"
        );
        assert!(!body(&ok).contains("0.0.0.0"), "{name}: {ok}");
        peer.send(&ack_for(
            &peer.prepare(&request),
            &ok,
            &format!("z9hG4bK-hold-ack{}", index + 2),
        ))
        .await;
    }
    harness
        .wait_for("three media changes", |r| {
            r.len() == 1
                && r[0]
                    .events
                    .iter()
                    .filter(|e| e.starts_with("MediaChanged"))
                    .count()
                    == 3
        })
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn offerer_payload_numbers_and_extra_streams() {
    let harness = Harness::start().await;
    let cases = [
        (
            "dynamic_payload_types.sip",
            vec!["m=audio", "RTP/AVP 0 101"],
            vec!["a=rtpmap:97", "/48000"],
        ),
        (
            "opus_with_video.sip",
            vec!["m=audio", "m=video 0 RTP/AVP 99"],
            vec![],
        ),
        (
            "opus_nonstandard.sip",
            vec!["RTP/AVP 0 101"],
            vec!["opus/16000"],
        ),
    ];
    for (name, present, absent) in cases {
        let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
        peer.send(&text_fixture(name)).await;
        let ok = peer.recv_final().await;
        assert_eq!(status(&ok), 200, "{name}: {ok}");
        for text in present {
            assert!(body(&ok).contains(text), "{name} lacks {text}: {ok}");
        }
        for text in absent {
            assert!(!body(&ok).contains(text), "{name} has {text}: {ok}");
        }
    }
    harness.stop().await;
}

#[tokio::test]
async fn info_dtmf_gets_200_and_one_digit() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("late_offer_invite.sip").replace("late-offer", "info-dtmf");
    peer.send(&invite).await;
    let ok = peer.recv_final().await;
    peer.send(
        &text_fixture("late_offer_ack.sip")
            .replace("late-offer", "info-dtmf")
            .replace("SERVER_TAG", &peer.tag),
    )
    .await;
    harness
        .wait_for("an established call", |r| r.len() == 1 && r[0].established)
        .await;
    assert_eq!(status(&ok), 200);
    let info = text_fixture("info_dtmf.sip");
    peer.send(&info).await;
    assert_eq!(status(&peer.recv_final().await), 200);
    peer.send(&info).await;
    assert_eq!(
        status(&peer.recv_final().await),
        200,
        "retransmission answered again"
    );
    harness
        .wait_for("one DTMF digit", |r| {
            r[0].events
                .iter()
                .filter(|e| e.contains("Dtmf { digit: '4', duration_ms: 250 }"))
                .count()
                == 1
        })
        .await;
    harness.stop().await;
}

#[tokio::test]
async fn unknown_sources_and_floods() {
    let carrier = TrunkConfig {
        name: "carrier".into(),
        sources: vec!["127.0.0.1/32".into()],
        ..TrunkConfig::default()
    };
    let config = SipConfig {
        source_rate_per_sec: 20,
        ..loopback_config()
    };
    let harness = Harness::start_with(config, vec![carrier]).await;
    let server = harness.addr(Transport::Udp);
    let options = text_fixture("late_offer_invite.sip")
        .replace("INVITE sip", "OPTIONS sip")
        .replace("1 INVITE", "1 OPTIONS");

    let stranger = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    let stranger = Peer {
        socket: stranger,
        server,
        tag: String::new(),
    };
    stranger.send(&options).await;
    assert_eq!(status(&stranger.recv().await), 403);

    let flood = Peer::new(server).await;
    for n in 0..200 {
        flood
            .send(&options.replace("late-offer@", &format!("flood-{n}@")))
            .await;
    }
    let mut answered = 0;
    while flood.recv_within(SILENCE).await.is_some() {
        answered += 1;
    }
    assert!(
        (20..=30).contains(&answered),
        "{answered} of 200 flood requests answered"
    );
    let calm = Peer::new(server).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    calm.send(&options).await;
    assert_eq!(
        status(&calm.recv().await),
        200,
        "the source recovers after a second"
    );
    harness.stop().await;
}

#[tokio::test]
async fn draining_and_shutdown() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("late_offer_invite.sip");
    peer.send(&invite).await;
    peer.recv_final().await;
    peer.send(&text_fixture("late_offer_ack.sip")).await;
    harness
        .wait_for("an established call", |r| r.len() == 1 && r[0].established)
        .await;

    harness.handle.set_draining(true);
    let mut second = Peer::new(harness.addr(Transport::Udp)).await;
    second
        .send(&invite.replace("late-offer@", "late-offer-new@"))
        .await;
    let rejected = second.recv_final().await;
    assert_eq!(status(&rejected), 503);
    assert_eq!(header(&rejected, "Retry-After"), Some("30"));

    let handle = harness.handle.clone();
    let shutdown = tokio::spawn(async move { handle.shutdown().await });
    let bye = peer.recv().await;
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(header(&bye, "Reason").is_some());
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via").unwrap(),
        header(&bye, "From").unwrap(),
        header(&bye, "To").unwrap(),
        header(&bye, "Call-ID").unwrap(),
        header(&bye, "CSeq").unwrap()
    );
    peer.send_raw(ok.as_bytes()).await;
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown finishes")
        .expect("task");
    harness
        .wait_for("the call ended", |r| r[0].ended.is_some())
        .await;
}

async fn read_tcp(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0u8; 65_535];
    let length = tokio::time::timeout(REPLY, stream.read(&mut buffer))
        .await
        .expect("TCP reply in time")
        .expect("read");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

#[tokio::test]
async fn tcp_framing() {
    let harness = Harness::start().await;
    let server = harness.addr(Transport::Tcp);
    let options = text_fixture("late_offer_invite.sip")
        .replace("INVITE sip", "OPTIONS sip")
        .replace("1 INVITE", "1 OPTIONS")
        .replace("SIP/2.0/UDP", "SIP/2.0/TCP");

    // One message split into single bytes.
    let mut stream = TcpStream::connect(server).await.expect("connect");
    for byte in options.as_bytes() {
        stream.write_all(&[*byte]).await.expect("write");
    }
    assert_eq!(status(&read_tcp(&mut stream).await), 200);

    // Two messages and a keep-alive ping in one segment.
    let two = format!(
        "{options}\r\n\r\n{}",
        options.replace("late-offer@", "second@")
    );
    stream.write_all(two.as_bytes()).await.expect("write");
    let mut received = String::new();
    while received.matches("SIP/2.0 200").count() < 2 {
        received.push_str(&read_tcp(&mut stream).await);
    }
    assert!(
        received.contains("\r\n\r\n\r\n") || received.starts_with("\r\n"),
        "pong CRLF present: {received:?}"
    );

    // Two Content-Length headers: 400, then the connection closes.
    let mut broken = TcpStream::connect(server).await.expect("connect");
    let duplicate =
        text_fixture("duplicate_content_length.sip").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    broken.write_all(duplicate.as_bytes()).await.expect("write");
    let reply = read_tcp(&mut broken).await;
    assert_eq!(status(&reply), 400, "{reply}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(REPLY, broken.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection closed after a framing error");

    // A body that never fully arrives only holds its own connection.
    let mut waiting = TcpStream::connect(server).await.expect("connect");
    let long =
        text_fixture("content_length_exceeds_body.sip").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    waiting.write_all(long.as_bytes()).await.expect("write");
    stream
        .write_all(options.replace("late-offer@", "third@").as_bytes())
        .await
        .expect("write");
    assert!(read_tcp(&mut stream).await.contains("SIP/2.0 200"));
    let stats = harness.handle.stats().await.expect("stats");
    assert!(stats.connections >= 2, "{stats:?}");
    harness.stop().await;
}

#[tokio::test]
async fn dropped_server_call_gets_500() {
    let harness = Harness::start().await;
    let mut peer = Peer::new(harness.addr(Transport::Udp)).await;
    let invite = text_fixture("late_offer_invite.sip")
        .replace("sip:+12025550100@127.0.0.1 SIP", "sip:drop@127.0.0.1 SIP");
    peer.send(&invite).await;
    let response = peer.recv_final().await;
    assert_eq!(status(&response), 500, "{response}");
    peer.send(&ack_for(
        &peer.prepare(&invite),
        &response,
        "z9hG4bK-late-offer-inv",
    ))
    .await;
    harness.wait_idle(IDLE).await;
    harness.stop().await;
}
