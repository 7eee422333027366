//! Scenario tests of the whole endpoint on a virtual clock: messages go in as text, what the
//! endpoint transmits and reports comes out, and time only moves when a test advances it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::sip::sdp::{CodecName, Direction, LocalMedia};
use crate::sip::{SipConfig, TrunkConfig};

const PEER: &str = "127.0.0.1:5070";
const LOCAL: &str = "127.0.0.1:5060";

const OFFER: &str = "v=0\r\no=carrier 1201 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

struct Harness {
    endpoint: Endpoint,
    now: Instant,
    peer: Destination,
    local: SocketAddr,
    sent: Vec<String>,
    events: Vec<Event>,
}

fn media() -> LocalMedia {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port: 30000,
        codecs: vec![CodecName::Pcmu, CodecName::Pcma],
        ptime_ms: 20,
        rtcp_mux: false,
    }
}

fn config() -> SipConfig {
    SipConfig {
        seed: 7,
        ..SipConfig::default()
    }
}

impl Harness {
    fn new() -> Harness {
        Harness::with(config(), vec![TrunkConfig::default()])
    }

    fn with(sip: SipConfig, trunks: Vec<TrunkConfig>) -> Harness {
        let now = Instant::now();
        let mut endpoint = Endpoint::new(EndpointConfig::from_sip(&sip), &trunks, now);
        let local: SocketAddr = LOCAL.parse().unwrap();
        endpoint.set_local_addr(Transport::Udp, local);
        Harness {
            endpoint,
            now,
            peer: Destination {
                transport: Transport::Udp,
                addr: PEER.parse().unwrap(),
                connection: None,
            },
            local,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.sent
                .push(String::from_utf8_lossy(&t.data).into_owned());
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.events.push(e);
        }
    }

    fn receive(&mut self, text: &str) {
        self.endpoint
            .handle_message(self.now, self.peer, self.local, text.as_bytes());
        self.drain();
    }

    fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(at) = self.endpoint.poll_timeout().filter(|at| *at <= target) {
            self.now = self.now.max(at);
            self.endpoint.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    fn take_sent(&mut self) -> Vec<String> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn incoming(&mut self) -> CallRef {
        let events = self.take_events();
        match events.as_slice() {
            [Event::IncomingCall(info)] => info.call,
            other => panic!("expected one incoming call, got {other:?}"),
        }
    }

    /// INVITE, then answer, then ACK: an established call and our To tag.
    fn establish(&mut self, call_id: &str) -> (CallRef, String) {
        self.receive(&invite(call_id, "z9hG4bK-inv", "", OFFER));
        let call = self.incoming();
        self.endpoint.answer(self.now, call, media());
        self.drain();
        let ok = self.take_sent().pop().expect("200 sent");
        let tag = to_tag(&ok);
        self.receive(&ack(call_id, &tag, 1, ""));
        assert!(matches!(
            self.take_events().as_slice(),
            [Event::Established { .. }]
        ));
        (call, tag)
    }
}

fn invite(call_id: &str, branch: &str, extra: &str, body: &str) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "INVITE sip:+12025550100@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+12025550142@127.0.0.1:5070>;tag=ft-{call_id}\r\n\
         To: <sip:+12025550100@127.0.0.1:5060>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
         Contact: <sip:+12025550142@127.0.0.1:5070>\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n{extra}{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn in_dialog(
    method: &str,
    call_id: &str,
    tag: &str,
    seq: u32,
    branch: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} sip:+12025550142@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Caller\" <sip:+12025550142@127.0.0.1:5070>;tag=ft-{call_id}\r\n\
         To: <sip:+12025550100@127.0.0.1:5060>;tag={tag}\r\n\
         Call-ID: {call_id}\r\nCSeq: {seq} {method}\r\n\
         Contact: <sip:+12025550142@127.0.0.1:5070>\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn ack(call_id: &str, tag: &str, seq: u32, body: &str) -> String {
    let extra = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    in_dialog(
        "ACK",
        call_id,
        tag,
        seq,
        &format!("z9hG4bK-ack{seq}"),
        extra,
        body,
    )
}

fn status(message: &str) -> u16 {
    message
        .strip_prefix("SIP/2.0 ")
        .and_then(|r| r[..3].parse().ok())
        .unwrap_or(0)
}

fn statuses(messages: &[String]) -> Vec<u16> {
    messages.iter().map(|m| status(m)).collect()
}

fn to_tag(message: &str) -> String {
    let to = message
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("To header");
    to.split("tag=").nth(1).expect("To tag").trim().to_string()
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

fn body(message: &str) -> &str {
    message.split("\r\n\r\n").nth(1).unwrap_or_default()
}

#[test]
fn basic_call_ends_clean() {
    let mut h = Harness::new();
    let (call, tag) = h.establish("basic");
    assert_eq!(h.endpoint.live_calls(), 1);
    h.receive(&in_dialog(
        "BYE",
        "basic",
        &tag,
        2,
        "z9hG4bK-bye",
        "Reason: Q.850;cause=16\r\n",
        "",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    match h.take_events().as_slice() {
        [
            Event::Call {
                call: c,
                event: CallEvent::Ended(EndReason::RemoteHangup(Some(reason))),
            },
        ] => {
            assert_eq!(*c, call);
            assert_eq!(reason, "Q.850;cause=16");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.endpoint.live_calls(), 0);
    h.advance(Duration::from_secs(40));
    assert_eq!(h.endpoint.live_transactions(), 0);
    assert_eq!(h.endpoint.poll_timeout(), None);
}

#[test]
fn answer_carries_sdp_and_headers() {
    let mut h = Harness::new();
    h.receive(&invite(
        "hdrs",
        "z9hG4bK-1",
        "Record-Route: <sip:127.0.0.9;lr>\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let ok = h.take_sent().pop().unwrap();
    assert_eq!(status(&ok), 200);
    assert_eq!(header(&ok, "Contact"), Some("<sip:127.0.0.1:5060>"));
    assert_eq!(header(&ok, "Record-Route"), Some("<sip:127.0.0.9;lr>"));
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(header(&ok, "Allow").unwrap().contains("PRACK"));
    assert!(
        header(&ok, "Via")
            .unwrap()
            .contains("received=127.0.0.1;rport=5070")
    );
    assert!(body(&ok).contains("m=audio 30000 RTP/AVP 0 101"), "{ok}");
}

#[test]
fn trying_only_when_answer_is_slow() {
    let mut h = Harness::new();
    h.receive(&invite("fast", "z9hG4bK-1", "", OFFER));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    assert_eq!(statuses(&h.take_sent()), vec![200]);

    h.receive(&invite("slow", "z9hG4bK-2", "", OFFER));
    h.take_events();
    h.advance(Duration::from_millis(150));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![100]);
    assert!(!header(&sent[0], "To").unwrap().contains("tag="));
}

#[test]
fn retransmitted_invite_starts_one_call() {
    let mut h = Harness::new();
    let text = invite("c07", "z9hG4bK-c07-br1", "", OFFER);
    h.receive(&text);
    let call = h.incoming();
    h.receive(&text);
    assert!(h.take_events().is_empty());
    assert!(h.take_sent().is_empty(), "no response yet to repeat");
    h.endpoint.ring(h.now, call);
    h.drain();
    assert_eq!(statuses(&h.take_sent()), vec![180]);
    h.receive(&text);
    assert_eq!(statuses(&h.take_sent()), vec![180]);
    h.endpoint.answer(h.now, call, media());
    h.drain();
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    h.receive(&text);
    assert!(h.take_sent().is_empty(), "INVITE after 2xx is absorbed");
    assert!(h.take_events().is_empty());

    // The same call reaching us over another branch is a merged request.
    let forked = text.replace("z9hG4bK-c07-br1", "z9hG4bK-c07-br2").replace(
        "sip:+12025550100@127.0.0.1:5060 SIP",
        "sip:other@127.0.0.1:5060 SIP",
    );
    h.receive(&forked);
    assert_eq!(statuses(&h.take_sent()), vec![482]);
    assert!(h.take_events().is_empty());
    assert_eq!(h.endpoint.live_calls(), 1);
}

#[test]
fn cancel_while_ringing() {
    let mut h = Harness::new();
    let text = invite("cancel", "z9hG4bK-c1", "", OFFER);
    h.receive(&text);
    let call = h.incoming();
    h.endpoint.ring(h.now, call);
    h.drain();
    let ringing = h.take_sent().pop().unwrap();
    let cancel = text
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace(OFFER, "")
        .replace(
            &format!("Content-Length: {}", OFFER.len()),
            "Content-Length: 0",
        )
        .replace("Content-Type: application/sdp\r\n", "");
    h.receive(&cancel);
    assert_eq!(statuses(&h.take_sent()), vec![200, 487]);
    assert!(matches!(h.take_events().as_slice(), [Event::Cancelled(c)] if *c == call));
    assert_eq!(h.endpoint.live_calls(), 0);

    let tag = to_tag(&ringing);
    let ack_text = in_dialog("ACK", "cancel", &tag, 1, "z9hG4bK-c1", "", "");
    h.receive(&ack_text);
    assert!(h.take_sent().is_empty());
    // Answering after the CANCEL fails without sending anything.
    h.endpoint.answer(h.now, call, media());
    h.drain();
    assert!(h.take_sent().is_empty());
    h.advance(Duration::from_secs(40));
    assert_eq!(h.endpoint.live_transactions(), 0);
}

#[test]
fn cancel_after_answer_changes_nothing() {
    let mut h = Harness::new();
    let text = invite("late-cancel", "z9hG4bK-lc", "", OFFER);
    h.receive(&text);
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    h.take_sent();
    let cancel = text
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.receive(&cancel);
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    assert!(h.take_events().is_empty());
    assert_eq!(h.endpoint.live_calls(), 1);
}

#[test]
fn cancel_for_unknown_invite_gets_481() {
    let mut h = Harness::new();
    let cancel = invite("nothing", "z9hG4bK-x", "", "")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    h.receive(&cancel);
    assert_eq!(statuses(&h.take_sent()), vec![481]);
}

#[test]
fn late_offer_answer_in_ack() {
    let mut h = Harness::new();
    h.receive(&invite("c05", "z9hG4bK-c05", "", ""));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let ok = h.take_sent().pop().unwrap();
    assert_eq!(header(&ok, "Content-Type"), Some("application/sdp"));
    assert!(body(&ok).contains("m=audio 30000"), "{ok}");
    assert!(h.take_events().is_empty(), "no media before the answer");

    // A re-INVITE before the ACK gets 491.
    let tag = to_tag(&ok);
    h.receive(&in_dialog("INVITE", "c05", &tag, 2, "z9hG4bK-re", "", ""));
    assert_eq!(statuses(&h.take_sent()), vec![491]);
    h.receive(&in_dialog("ACK", "c05", &tag, 2, "z9hG4bK-re", "", ""));

    // The 200 is retransmitted unchanged until the ACK.
    h.advance(Duration::from_millis(600));
    assert_eq!(h.take_sent(), vec![ok.clone()]);

    let answer = "v=0\r\no=carrier 1501 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 40500 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
    h.receive(&ack("c05", &tag, 1, answer));
    match h.take_events().as_slice() {
        [Event::Established { negotiated, .. }] => {
            assert_eq!(
                negotiated.remote_rtp,
                Some("127.0.0.1:40500".parse().unwrap())
            );
        }
        other => panic!("{other:?}"),
    }
    h.advance(Duration::from_secs(5));
    assert!(h.take_sent().is_empty(), "retransmission stopped");
}

#[test]
fn late_offer_ack_without_answer_ends_call() {
    let mut h = Harness::new();
    h.receive(&invite("c05-3", "z9hG4bK-c053", "", ""));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let tag = to_tag(&h.take_sent().pop().unwrap());
    h.receive(&ack("c05-3", &tag, 1, ""));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].starts_with("BYE sip:+12025550142@127.0.0.1:5070 SIP/2.0"),
        "{}",
        sent[0]
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::AnswerFailed {
            error: AnswerError::NoAnswerInAck,
            ..
        }]
    ));
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn missing_ack_retransmits_then_byes() {
    let mut h = Harness::new();
    h.receive(&invite("noack", "z9hG4bK-na", "", OFFER));

    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let start = h.now;
    h.take_sent();
    let mut times = Vec::new();
    let mut bye_at = None;
    for _ in 0..400 {
        h.advance(Duration::from_millis(100));
        for message in h.take_sent() {
            if status(&message) == 200 {
                times.push((h.now - start).as_millis() / 100 * 100);
            } else if message.starts_with("BYE ") && bye_at.is_none() {
                bye_at = Some(h.now - start);
            }
        }
    }
    assert_eq!(&times[..5], &[500, 1500, 3500, 7500, 11500]);
    assert!(
        bye_at
            .is_some_and(|at| at >= Duration::from_secs(32) && at < Duration::from_millis(32_200))
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::AnswerFailed {
            error: AnswerError::NoAck,
            ..
        }]
    ));
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn reliable_ringing_waits_for_prack() {
    let mut h = Harness::new();
    h.receive(&invite(
        "c08",
        "z9hG4bK-c08",
        "Require: 100rel\r\nSupported: 100rel, timer\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.ring(h.now, call);
    h.drain();
    let ringing = h.take_sent().pop().unwrap();
    assert_eq!(status(&ringing), 180);
    assert_eq!(header(&ringing, "Require"), Some("100rel"));
    assert_eq!(header(&ringing, "RSeq"), Some("1"));
    h.endpoint.answer(h.now, call, media());
    h.drain();
    assert!(h.take_sent().is_empty(), "no 200 before the PRACK");
    h.advance(Duration::from_millis(600));
    assert_eq!(statuses(&h.take_sent()), vec![180]);

    let tag = to_tag(&ringing);
    h.receive(&in_dialog(
        "PRACK",
        "c08",
        &tag,
        2,
        "z9hG4bK-pr",
        "RAck: 9 1 INVITE\r\n",
        "",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![481]);
    h.receive(&in_dialog(
        "PRACK",
        "c08",
        &tag,
        3,
        "z9hG4bK-pr2",
        "RAck: 1 1 INVITE\r\n",
        "",
    ));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![200, 200]);
    assert!(header(&sent[0], "CSeq").unwrap().ends_with("PRACK"));
    assert!(header(&sent[1], "CSeq").unwrap().ends_with("INVITE"));
}

#[test]
fn missing_prack_gets_504() {
    let mut h = Harness::new();
    h.receive(&invite(
        "noprack",
        "z9hG4bK-np",
        "Require: 100rel\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.ring(h.now, call);
    h.drain();
    h.take_sent();
    h.advance(Duration::from_secs(33));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent).last(), Some(&504));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::AnswerFailed {
            error: AnswerError::NoPrack,
            ..
        }]
    ));
}

#[test]
fn unknown_requirement_gets_420() {
    let mut h = Harness::new();
    h.receive(&invite(
        "req",
        "z9hG4bK-r",
        "Require: 100rel, foo\r\n",
        OFFER,
    ));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![420]);
    assert_eq!(header(&sent[0], "Unsupported"), Some("foo"));
    assert!(h.take_events().is_empty());
}

fn reinvite_body(version: u32, connection: &str, direction: &str) -> String {
    format!(
        "v=0\r\no=carrier 2101 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {connection}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n{direction}"
    )
}

fn origin_version(message: &str) -> u64 {
    body(message)
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split(' ').nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn hold_and_unhold_by_reinvite() {
    let mut h = Harness::new();
    let (_, tag) = h.establish("c11");
    let cases = [
        (
            2,
            reinvite_body(2, "127.0.0.1", "a=sendonly\r\n"),
            "a=recvonly",
            Direction::RecvOnly,
        ),
        (3, reinvite_body(3, "0.0.0.0", ""), "", Direction::Inactive),
        (
            4,
            reinvite_body(4, "127.0.0.1", "a=sendrecv"),
            "a=sendrecv",
            Direction::SendRecv,
        ),
    ];
    let mut versions = Vec::new();
    for (seq, offer, expected, direction) in cases {
        let extra = "Content-Type: application/sdp\r\n";
        h.receive(&in_dialog(
            "INVITE",
            "c11",
            &tag,
            seq,
            &format!("z9hG4bK-h{seq}"),
            extra,
            &offer,
        ));
        let ok = h.take_sent().pop().unwrap();
        assert_eq!(status(&ok), 200, "{ok}");
        if !expected.is_empty() {
            assert!(body(&ok).contains(expected), "{ok}");
        }
        assert!(!body(&ok).contains("c=IN IP4 0.0.0.0"));
        versions.push(origin_version(&ok));
        match h.take_events().as_slice() {
            [
                Event::Call {
                    event: CallEvent::MediaChanged(media),
                    ..
                },
            ] => {
                if direction == Direction::Inactive {
                    assert!(matches!(
                        media.direction,
                        Direction::Inactive | Direction::RecvOnly
                    ));
                    assert_eq!(media.remote_rtp, None);
                } else {
                    assert_eq!(media.direction, direction);
                }
            }
            other => panic!("{other:?}"),
        }
        h.receive(&ack("c11", &tag, seq, ""));
    }
    assert!(
        versions[0] >= 2 && versions.windows(2).all(|w| w[1] <= w[0] + 1),
        "{versions:?}"
    );
    assert_eq!(h.endpoint.live_calls(), 1);
}

#[test]
fn reinvite_without_codec_gets_488_and_call_stays() {
    let mut h = Harness::new();
    let (_, tag) = h.establish("c488");
    let offer = OFFER
        .replace("RTP/AVP 0 101", "RTP/AVP 18")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
    h.receive(&in_dialog(
        "INVITE",
        "c488",
        &tag,
        2,
        "z9hG4bK-488",
        "Content-Type: application/sdp\r\n",
        &offer,
    ));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![488]);
    assert!(header(&sent[0], "Warning").unwrap().starts_with("30"));
    assert_eq!(h.endpoint.live_calls(), 1);
}

#[test]
fn session_timer_422_and_expiry() {
    let mut h = Harness::new();
    h.receive(&invite(
        "st-small",
        "z9hG4bK-s1",
        "Supported: timer\r\nSession-Expires: 60\r\n",
        OFFER,
    ));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![422]);
    assert_eq!(header(&sent[0], "Min-SE"), Some("90"));
    h.receive(&in_dialog(
        "ACK",
        "st-small",
        &to_tag(&sent[0]),
        1,
        "z9hG4bK-s1",
        "",
        "",
    ));

    h.receive(&invite(
        "st",
        "z9hG4bK-s2",
        "Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let ok = h.take_sent().pop().unwrap();
    assert_eq!(header(&ok, "Session-Expires"), Some("120;refresher=uac"));
    assert_eq!(header(&ok, "Require"), Some("timer"));
    h.receive(&ack("st", &to_tag(&ok), 1, ""));
    h.take_events();
    // RFC 4028 §10: without a refresh the session ends at 120 - 32 s.
    h.advance(Duration::from_secs(87));
    assert!(h.take_sent().is_empty());
    h.advance(Duration::from_secs(2));
    let sent = h.take_sent();
    assert!(sent[0].starts_with("BYE "), "{sent:?}");
    assert!(
        header(&sent[0], "Reason")
            .unwrap()
            .contains("session timer expired")
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Call {
            event: CallEvent::Ended(EndReason::SessionExpired),
            ..
        }]
    ));
}

#[test]
fn we_refresh_with_update() {
    let mut h = Harness::new();
    h.receive(&invite(
        "st-uas",
        "z9hG4bK-s3",
        "Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let ok = h.take_sent().pop().unwrap();
    let tag = to_tag(&ok);
    h.receive(&ack("st-uas", &tag, 1, ""));
    h.take_events();
    h.advance(Duration::from_millis(60_200));
    let sent = h.take_sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let update = &sent[0];
    assert!(
        update.starts_with("UPDATE sip:+12025550142@127.0.0.1:5070 SIP/2.0"),
        "{update}"
    );
    assert_eq!(header(update, "Session-Expires"), Some("120;refresher=uac"));
    let response = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: st-uas\r\nCSeq: {}\r\n\
         Session-Expires: 120;refresher=uas\r\nContent-Length: 0\r\n\r\n",
        header(update, "Via").unwrap(),
        header(update, "From").unwrap(),
        header(update, "To").unwrap(),
        header(update, "CSeq").unwrap()
    );
    h.receive(&response);
    h.advance(Duration::from_secs(40));
    assert!(h.take_sent().is_empty(), "refreshed session does not end");
    assert_eq!(h.endpoint.live_calls(), 1);
}

#[test]
fn info_dtmf_is_reported() {
    let mut h = Harness::new();
    let (call, tag) = h.establish("c27");
    let extra = "Content-Type: application/dtmf-relay\r\n";
    h.receive(&in_dialog(
        "INFO",
        "c27",
        &tag,
        5,
        "z9hG4bK-i1",
        extra,
        "Signal=4\r\nDuration=250\r\n",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    assert_eq!(
        h.take_events(),
        vec![]
            .into_iter()
            .chain([Event::Call {
                call,
                event: CallEvent::Dtmf {
                    digit: '4',
                    duration_ms: 250
                }
            }])
            .collect::<Vec<_>>()
    );
    h.receive(&in_dialog(
        "INFO",
        "c27",
        &tag,
        6,
        "z9hG4bK-i2",
        "Content-Type: text/plain\r\n",
        "x",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![415]);
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        format!("{self:?}") == format!("{other:?}")
    }
}

#[test]
fn hangup_sends_reason_and_bye_retransmission_is_bounded() {
    let mut h = Harness::new();
    let (call, _) = h.establish("c30");
    h.endpoint
        .hangup(h.now, call, "Q.850;cause=102;text=\"RTP timeout\"");
    h.drain();
    let sent = h.take_sent();
    assert!(sent[0].starts_with("BYE "));
    assert_eq!(
        header(&sent[0], "Reason"),
        Some("Q.850;cause=102;text=\"RTP timeout\"")
    );
    assert!(header(&sent[0], "Via").unwrap().contains(";rport"));
    h.endpoint.hangup(h.now, call, "again");
    h.drain();
    assert!(h.take_sent().is_empty(), "hangup is idempotent");
    assert_eq!(h.endpoint.live_calls(), 0);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.take_sent().len(), 10, "Timer E until Timer F");
    h.advance(Duration::from_secs(600));
    assert!(h.take_sent().is_empty());
    assert_eq!(h.endpoint.live_transactions(), 0);
}

#[test]
fn malformed_requests_answered_or_dropped() {
    let mut h = Harness::new();
    let good = invite("bad", "z9hG4bK-bad", "", OFFER);
    let cases = [
        (good.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS"), 400),
        (
            good.replace(
                &format!("Content-Length: {}", OFFER.len()),
                "Content-Length: -1",
            ),
            400,
        ),
        (
            good.replace(
                &format!("Content-Length: {}", OFFER.len()),
                "Content-Length: 512",
            ),
            400,
        ),
        (good.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"), 505),
    ];
    for (text, expected) in cases {
        h.receive(&text);
        let sent = h.take_sent();
        assert_eq!(statuses(&sent), vec![expected], "{text}");
    }
    h.receive("SIP/7.9 7\0\0");
    assert!(h.take_sent().is_empty());
    assert!(h.take_events().is_empty());
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn out_of_dialog_methods() {
    let mut h = Harness::new();
    let options = invite("opt", "z9hG4bK-o", "", "")
        .replacen("INVITE sip", "OPTIONS sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    h.receive(&options);
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![200]);
    assert_eq!(header(&sent[0], "Allow"), Some(ALLOW));
    assert_eq!(header(&sent[0], "Supported"), Some(SUPPORTED));
    assert_eq!(header(&sent[0], "Accept"), Some(ACCEPT));

    h.receive(&in_dialog(
        "BYE",
        "nobody",
        "nosuchtag",
        2,
        "z9hG4bK-b",
        "",
        "",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![481]);
    let foo = options
        .replace("OPTIONS sip", "FOO sip")
        .replace("1 OPTIONS", "1 FOO");
    h.receive(&foo);
    assert_eq!(statuses(&h.take_sent()), vec![501]);
    let register = options
        .replace("OPTIONS sip", "REGISTER sip")
        .replace("1 OPTIONS", "1 REGISTER");
    h.receive(&register);
    assert_eq!(statuses(&h.take_sent()), vec![405]);
}

#[test]
fn unknown_source_rejected_or_dropped() {
    let carrier = TrunkConfig {
        name: "carrier".into(),
        sources: vec!["10.0.0.0/8".into()],
        ..TrunkConfig::default()
    };
    let mut h = Harness::with(config(), vec![carrier.clone()]);
    h.receive(&invite("stranger", "z9hG4bK-u", "", OFFER));
    assert_eq!(statuses(&h.take_sent()), vec![403]);
    let drop = SipConfig {
        unknown_source: "drop".into(),
        ..config()
    };
    let mut h = Harness::with(drop, vec![carrier]);
    h.receive(&invite("stranger", "z9hG4bK-u", "", OFFER));
    assert!(h.take_sent().is_empty());
}

#[test]
fn digest_challenge_and_retry() {
    let trunk = TrunkConfig {
        username: "trunk1".into(),
        password: "secret".into(),
        realm: "voicegate".into(),
        ..TrunkConfig::default()
    };
    let mut h = Harness::with(config(), vec![trunk]);
    h.receive(&invite("auth", "z9hG4bK-a1", "", OFFER));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![401]);
    let challenges: Vec<&str> = sent[0]
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 2);
    assert!(challenges[0].contains("SHA-256") && challenges[1].contains("MD5"));
    let nonce = challenges[1]
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ack_401 = in_dialog("ACK", "auth", &to_tag(&sent[0]), 1, "z9hG4bK-a1", "", "");
    h.receive(&ack_401);

    let md5 = |s: String| hex::encode(<md5::Md5 as sha2::Digest>::digest(s.as_bytes()));
    let uri = "sip:+12025550100@127.0.0.1:5060";
    let ha1 = md5("trunk1:voicegate:secret".into());
    let ha2 = md5(format!("INVITE:{uri}"));
    let response = md5(format!("{ha1}:{nonce}:{ha2}"));
    let authorization = format!(
        "Authorization: Digest username=\"trunk1\", realm=\"voicegate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\n"
    );
    h.receive(
        &invite("auth", "z9hG4bK-a2", &authorization, OFFER)
            .replace("CSeq: 1 INVITE", "CSeq: 2 INVITE"),
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::IncomingCall(_)]
    ));
    let wrong = authorization.replace(&response, "0123");
    h.receive(&invite("auth2", "z9hG4bK-a3", &wrong, OFFER));
    assert_eq!(statuses(&h.take_sent()), vec![401]);
}

#[test]
fn proxy_challenge_and_stale_nonce() {
    let trunk = TrunkConfig {
        username: "trunk1".into(),
        password: "secret".into(),
        proxy_auth: true,
        ..TrunkConfig::default()
    };
    let mut h = Harness::with(config(), vec![trunk]);
    h.receive(&invite("proxy", "z9hG4bK-p1", "", OFFER));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![407]);
    let challenge = sent[0]
        .lines()
        .filter_map(|l| l.strip_prefix("Proxy-Authenticate: "))
        .find(|c| c.contains("MD5"))
        .expect("MD5 challenge")
        .to_string();
    assert!(challenge.contains("realm=\"voicegate\""));
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();

    let md5 = |s: String| hex::encode(<md5::Md5 as sha2::Digest>::digest(s.as_bytes()));
    let uri = "sip:+12025550100@127.0.0.1:5060";
    let ha1 = md5("trunk1:voicegate:secret".into());
    let ha2 = md5(format!("INVITE:{uri}"));
    let response = md5(format!("{ha1}:{nonce}:{ha2}"));
    let credentials = format!(
        "Proxy-Authorization: Digest username=\"trunk1\", realm=\"voicegate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"\r\n"
    );
    // Past nonce_secs the same correct digest gets a fresh challenge marked stale.
    h.advance(Duration::from_secs(301));
    h.take_sent();
    h.receive(&invite("proxy-late", "z9hG4bK-p2", &credentials, OFFER));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![407]);
    assert!(sent[0].contains("stale=true"), "{}", sent[0]);
    assert!(h.take_events().is_empty());
}

#[test]
fn draining_and_trunk_limits() {
    let trunk = TrunkConfig {
        max_calls: 1,
        ..TrunkConfig::default()
    };
    let mut h = Harness::with(config(), vec![trunk]);
    h.receive(&invite("one", "z9hG4bK-1", "", OFFER));
    h.incoming();
    h.receive(&invite("two", "z9hG4bK-2", "", OFFER));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![503]);
    assert_eq!(header(&sent[0], "Retry-After"), Some("1"));

    let mut h = Harness::new();
    let (call, _) = h.establish("existing");
    h.endpoint.set_draining(true);
    h.receive(&invite("new", "z9hG4bK-3", "", OFFER));
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![503]);
    assert_eq!(header(&sent[0], "Retry-After"), Some("30"));
    assert_eq!(h.endpoint.call_refs(), vec![call]);
    h.endpoint.hangup_all(h.now);
    h.drain();
    assert!(h.take_sent()[0].starts_with("BYE "));
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn ipv6_offer_needs_ipv6_media() {
    let mut h = Harness::new();
    h.peer.addr = "[::1]:5070".parse().unwrap();
    h.local = "[::1]:5060".parse().unwrap();
    let offer = OFFER.replace("IN IP4 127.0.0.1", "IN IP6 ::1");
    let text = invite("c03", "z9hG4bK-c03", "", &offer)
        .replace("127.0.0.1:5070;branch", "[::1]:5070;received=[::1];branch")
        .replace("@127.0.0.1:5060", "@[::1]:5060");
    h.receive(&text);
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![488]);
    assert!(header(&sent[0], "Warning").unwrap().starts_with("301"));
    h.take_events();

    h.receive(
        &text
            .replace("c03", "c03-ok")
            .replace("z9hG4bK-c03", "z9hG4bK-c03b"),
    );
    let call = h.incoming();
    let v6 = LocalMedia {
        addr: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ..media()
    };
    h.endpoint.answer(h.now, call, v6);
    h.drain();
    let ok = h.take_sent().pop().unwrap();
    assert_eq!(status(&ok), 200);
    assert!(body(&ok).contains("c=IN IP6 ::1"), "{ok}");
    assert_eq!(header(&ok, "Contact"), Some("<sip:[::1]:5060>"));
}

fn respond_to(
    request: &str,
    status_line: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> String {
    let to = header(request, "To").unwrap();
    let to = match to_tag {
        Some(tag) if !to.contains("tag=") => format!("{to};tag={tag}"),
        _ => to.to_string(),
    };
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "SIP/2.0 {status_line}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
         {extra}{content_type}Content-Length: {}\r\n\r\n{body}",
        header(request, "Via").unwrap(),
        header(request, "From").unwrap(),
        header(request, "Call-ID").unwrap(),
        header(request, "CSeq").unwrap(),
        body.len()
    )
}

fn outgoing(h: &mut Harness) -> (CallRef, String) {
    let call = h
        .endpoint
        .invite(
            h.now,
            OutgoingInvite {
                target: "+12025550100@127.0.0.1:5070".into(),
                from: "+12025550199".into(),
                transport: Transport::Udp,
                local: media(),
                headers: vec![("X-Test".into(), "1".into())],
            },
        )
        .unwrap();
    h.drain();
    let invite = h.take_sent().pop().unwrap();
    assert!(invite.starts_with("INVITE sip:+12025550100@127.0.0.1:5070 SIP/2.0"));
    assert_eq!(header(&invite, "X-Test"), Some("1"));
    (call, invite)
}

#[test]
fn outbound_call_is_acked_and_ended() {
    let mut h = Harness::new();
    let (call, invite) = outgoing(&mut h);
    h.receive(&respond_to(&invite, "180 Ringing", Some("remote"), "", ""));
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Progress { status: 180, .. }]
    ));
    let answer = OFFER.replace("40000", "40600");
    let ok = respond_to(
        &invite,
        "200 OK",
        Some("remote"),
        "Contact: <sip:callee@127.0.0.1:5070>\r\n",
        &answer,
    );
    h.receive(&ok);
    let sent = h.take_sent();
    assert!(
        sent[0].starts_with("ACK sip:callee@127.0.0.1:5070 SIP/2.0"),
        "{sent:?}"
    );
    assert!(matches!(
        h.take_events().as_slice(),
        [Event::Established { .. }]
    ));
    h.receive(&ok);
    assert!(
        h.take_sent()[0].starts_with("ACK "),
        "retransmitted 2xx is acked again"
    );

    let from = header(&invite, "From").unwrap();
    let tag = from.split("tag=").nth(1).unwrap();
    let call_id = header(&invite, "Call-ID").unwrap().to_string();
    let bye = format!(
        "BYE sip:voicegate@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-rb\r\n\
         From: <sip:+12025550100@127.0.0.1:5070>;tag=remote\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(!tag.is_empty());
    h.receive(&bye);
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    assert!(
        matches!(h.take_events().as_slice(), [Event::Call { call: c, event: CallEvent::Ended(_) }] if *c == call)
    );
}

#[test]
fn outbound_cancel_after_ringing() {
    let mut h = Harness::new();
    let (call, invite) = outgoing(&mut h);
    h.endpoint.cancel(h.now, call);
    h.drain();
    assert!(h.take_sent().is_empty(), "CANCEL waits for a provisional");
    h.receive(&respond_to(&invite, "180 Ringing", Some("remote"), "", ""));
    let sent = h.take_sent();
    assert!(sent[0].starts_with("CANCEL "), "{sent:?}");
    assert_eq!(header(&sent[0], "Via"), header(&invite, "Via"));
    h.receive(&respond_to(&sent[0], "200 OK", Some("remote"), "", ""));
    h.receive(&respond_to(
        &invite,
        "487 Request Terminated",
        Some("remote"),
        "",
        "",
    ));
    let sent = h.take_sent();
    assert!(sent[0].starts_with("ACK "));
    assert!(header(&sent[0], "To").unwrap().contains("tag=remote"));
    let events = h.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Failed { status: 487, .. })),
        "{events:?}"
    );
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn outbound_timeout_fails_with_408() {
    let mut h = Harness::new();
    outgoing(&mut h);
    h.advance(Duration::from_secs(33));
    assert_eq!(h.take_sent().len(), 6, "Timer A retransmissions");
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::Failed { status: 408, .. }))
    );
    assert_eq!(h.endpoint.live_calls(), 0);
}

#[test]
fn refer_reports_transfer_result() {
    let mut h = Harness::new();
    let (call, tag) = h.establish("refer");
    h.endpoint
        .refer(h.now, call, "sip:+12025550111@127.0.0.1:5070", 42);
    h.drain();
    let refer = h.take_sent().pop().unwrap();
    assert!(refer.starts_with("REFER "));
    assert_eq!(
        header(&refer, "Refer-To"),
        Some("<sip:+12025550111@127.0.0.1:5070>")
    );
    h.receive(&respond_to(&refer, "202 Accepted", None, "", ""));
    let seq = header(&refer, "CSeq")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let notify = in_dialog(
        "NOTIFY",
        "refer",
        &tag,
        2,
        "z9hG4bK-n1",
        &format!(
            "Event: refer;id={seq}\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag\r\n"
        ),
        "SIP/2.0 200 OK\r\n",
    );
    h.receive(&notify);
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    let events = h.take_events();
    assert!(
        events.iter().any(
            |e| matches!(e, Event::ReferDone { request: 42, result, .. } if result.succeeded())
        ),
        "{events:?}"
    );
}

#[test]
fn glare_with_our_refresh_gets_491() {
    let mut h = Harness::new();
    h.receive(&invite(
        "glare",
        "z9hG4bK-g",
        "Supported: timer\r\nSession-Expires: 120;refresher=uas\r\n",
        OFFER,
    ));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    let tag = to_tag(&h.take_sent().pop().unwrap());
    h.receive(&ack("glare", &tag, 1, ""));
    h.advance(Duration::from_secs(61));
    assert!(h.take_sent()[0].starts_with("UPDATE "));
    let extra = "Content-Type: application/sdp\r\n";
    h.receive(&in_dialog(
        "INVITE",
        "glare",
        &tag,
        2,
        "z9hG4bK-g2",
        extra,
        OFFER,
    ));
    assert_eq!(statuses(&h.take_sent()), vec![491]);
}

#[test]
fn reject_sends_headers_and_frees_call() {
    let mut h = Harness::new();
    h.receive(&invite("busy", "z9hG4bK-busy", "", OFFER));
    let call = h.incoming();
    h.endpoint.reject(
        h.now,
        call,
        503,
        "Service Unavailable",
        &[
            ("Retry-After".into(), "30".into()),
            ("Via".into(), "evil".into()),
        ],
    );
    h.drain();
    let sent = h.take_sent();
    assert_eq!(statuses(&sent), vec![503]);
    assert_eq!(header(&sent[0], "Retry-After"), Some("30"));
    assert_eq!(sent[0].matches("Via:").count(), 1);
    assert_eq!(h.endpoint.live_calls(), 0);
    h.advance(Duration::from_secs(40));
    assert_eq!(
        statuses(&h.take_sent()).len(),
        10,
        "503 retransmitted until Timer H"
    );
    assert_eq!(h.endpoint.live_transactions(), 0);
}

#[test]
fn answer_delay_rings_first() {
    let sip = SipConfig {
        answer_delay_ms: 2000,
        ..config()
    };
    let mut h = Harness::with(sip, vec![TrunkConfig::default()]);
    h.receive(&invite("delay", "z9hG4bK-d", "", OFFER));
    let call = h.incoming();
    h.endpoint.answer(h.now, call, media());
    h.drain();
    assert_eq!(statuses(&h.take_sent()), vec![180]);
    h.advance(Duration::from_millis(1900));
    assert!(h.take_sent().is_empty());
    h.advance(Duration::from_millis(200));
    assert_eq!(statuses(&h.take_sent()), vec![200]);
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut h = Harness::new();
        h.receive(&invite("seed", "z9hG4bK-seed", "", OFFER));
        let call = h.incoming();
        h.endpoint.answer(h.now, call, media());
        h.drain();
        let ok = h.take_sent().pop().unwrap();
        to_tag(&ok)
    };
    assert_eq!(run(), run());
}

#[test]
fn flood_does_not_cut_established_calls() {
    let sip = SipConfig {
        source_rate_per_sec: 5,
        ..config()
    };
    let mut h = Harness::with(sip, vec![TrunkConfig::default()]);
    let (call, tag) = h.establish("kept");
    for n in 0..20 {
        h.receive(&invite(
            &format!("flood-{n}"),
            &format!("z9hG4bK-f{n}"),
            "",
            OFFER,
        ));
    }
    let offered = h.take_events().len();
    assert!(offered <= 4, "{offered} flood INVITEs got through");
    h.take_sent();
    h.receive(&in_dialog(
        "BYE",
        "kept",
        &tag,
        2,
        "z9hG4bK-kept-bye",
        "",
        "",
    ));
    assert_eq!(statuses(&h.take_sent()), vec![200]);
    assert!(
        h.take_events()
            .iter()
            .any(|e| matches!(e, Event::Call { call: c, .. } if *c == call))
    );
}

/// Ends one established or offered call the way `mode` says.
fn end_call(h: &mut Harness, call_id: &str, mode: usize) {
    let text = invite(call_id, &format!("z9hG4bK-{call_id}"), "", OFFER);
    h.receive(&text);
    // Earlier calls without an ACK report their failure while later ones start.
    let call = h
        .take_events()
        .into_iter()
        .find_map(|event| match event {
            Event::IncomingCall(info) => Some(info.call),
            _ => None,
        })
        .expect("incoming call");
    match mode {
        // CANCEL while ringing.
        0 => {
            h.endpoint.ring(h.now, call);
            h.drain();
            let cancel = text
                .replacen("INVITE sip", "CANCEL sip", 1)
                .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
            h.receive(&cancel);
            let tag = to_tag(h.take_sent().last().expect("487"));
            h.receive(&in_dialog(
                "ACK",
                call_id,
                &tag,
                1,
                &format!("z9hG4bK-{call_id}"),
                "",
                "",
            ));
        }
        // Rejected by the application.
        1 => {
            h.endpoint.reject(h.now, call, 486, "Busy Here", &[]);
            h.drain();
            let tag = to_tag(h.take_sent().last().expect("486"));
            h.receive(&in_dialog(
                "ACK",
                call_id,
                &tag,
                1,
                &format!("z9hG4bK-{call_id}"),
                "",
                "",
            ));
        }
        // Answered but the ACK never comes.
        2 => {
            h.endpoint.answer(h.now, call, media());
            h.drain();
        }
        _ => {
            h.endpoint.answer(h.now, call, media());
            h.drain();
            let tag = to_tag(h.take_sent().last().expect("200"));
            h.receive(&ack(call_id, &tag, 1, ""));
            if mode == 3 {
                h.receive(&in_dialog(
                    "BYE",
                    call_id,
                    &tag,
                    2,
                    &format!("z9hG4bK-b-{call_id}"),
                    "",
                    "",
                ));
            } else {
                h.endpoint.hangup(h.now, call, "done");
                h.drain();
            }
        }
    }
    h.take_sent();
    h.take_events();
}

#[test]
fn many_calls_leave_nothing_behind() {
    let trunk = TrunkConfig {
        max_calls: 10_000,
        ..TrunkConfig::default()
    };
    let sip = SipConfig {
        source_rate_per_sec: 0,
        ..config()
    };
    let mut h = Harness::with(sip, vec![trunk]);
    for n in 0..2_000 {
        end_call(&mut h, &format!("soak-{n}"), n % 5);
        h.advance(Duration::from_millis(20));
    }
    h.advance(Duration::from_secs(120));
    assert_eq!(h.endpoint.live_calls(), 0);
    assert_eq!(h.endpoint.live_transactions(), 0);
    assert_eq!(h.endpoint.poll_timeout(), None);
    assert_eq!(h.endpoint.trunk_calls(), vec![("loopback".to_string(), 0)]);
}

#[test]
fn incoming_call_reports_number_headers() {
    let mut h = Harness::new();
    let extra = "P-Called-Party-ID: <sip:+12025550111@127.0.0.1>\r\n\
                 Diversion: <sip:+12025550199@127.0.0.1>;reason=unconditional, <tel:+12025550198>\r\n";
    h.receive(&invite("numbers", "z9hG4bK-n", extra, OFFER));
    let events = h.take_events();
    let Some(Event::IncomingCall(info)) = events.first() else {
        panic!("{events:?}");
    };
    assert_eq!(info.request_uri, "sip:+12025550100@127.0.0.1:5060");
    assert_eq!(info.to, "sip:+12025550100@127.0.0.1:5060");
    assert_eq!(info.from, "sip:+12025550142@127.0.0.1:5070");
    assert_eq!(
        info.p_called_party_id.as_deref(),
        Some("sip:+12025550111@127.0.0.1")
    );
    assert_eq!(info.diversion.len(), 2);
    assert_eq!(info.diversion[1], "<tel:+12025550198>");
    assert_eq!(
        info.trunk.as_ref().map(|t| t.name.as_str()),
        Some("loopback")
    );
    assert!(info.offer.is_some());
}
