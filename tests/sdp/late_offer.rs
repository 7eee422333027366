//! Our own offers: the late offer in a 200 whose answer comes in the ACK, the UAC flow of the
//! test caller, and answers that must end the call.

use voicegate::sip::sdp::{
    CodecName, Direction, NegotiatedDtmf, NegotiationError, SdpError, SessionDescription,
};

use crate::{OUR_PORT, OUR_V4, OUR_V6, lines, local, local_at, parse, session};

const ACK_ANSWER: &str = include_str!("late_offer_answer.sdp");

use CodecName::{G722, Opus, Pcma, Pcmu};

#[test]
fn late_offer_lists_every_codec() {
    let mut session = session(local(&[Pcmu, Pcma, G722, Opus]));
    let offer = session.offer();
    let offer_lines = lines(&offer);
    assert!(offer_lines.contains(&format!("m=audio {OUR_PORT} RTP/AVP 0 8 9 96 101 97")));
    for rtpmap in [
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:9 G722/8000",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:101 telephone-event/8000",
        "a=rtpmap:97 telephone-event/48000",
        "a=fmtp:101 0-15",
        "a=rtcp-mux",
        "a=sendrecv",
    ] {
        assert!(offer_lines.contains(&rtpmap.to_owned()), "{rtpmap}");
    }
    assert!(offer_lines.contains(&format!("c=IN IP4 {OUR_V4}")));
    assert!(session.has_pending_offer());
}

#[test]
fn late_offer_repeated_is_identical() {
    let mut session = session(local(&[Pcmu, Opus]));
    let first = session.offer();
    let second = session.offer();
    assert_eq!(first, second);
    assert_eq!(second.origin.session_version, "1");
}

#[test]
fn ack_answer_accepted() {
    let mut session = session(local(&[Pcmu, Pcma, G722, Opus]));
    session.offer();
    let media = session.accept_answer(&parse(ACK_ANSWER)).unwrap();
    assert_eq!(media.codec.name, Pcmu);
    assert_eq!(media.codec.payload_type, 0);
    assert_eq!(
        media.dtmf,
        Some(NegotiatedDtmf {
            payload_type: 101,
            clock_rate: 8_000
        })
    );
    assert_eq!(media.remote_rtp, Some("203.0.113.5:40500".parse().unwrap()));
    assert_eq!(
        media.remote_rtcp,
        Some("203.0.113.5:40501".parse().unwrap())
    );
    assert!(!media.rtcp_mux, "the answer did not accept rtcp-mux");
    assert_eq!(media.ptime_ms, 20);
    assert_eq!(media.direction, Direction::SendRecv);
    assert!(!session.has_pending_offer());
    assert_eq!(session.negotiated(), Some(&media));
}

#[test]
fn answer_with_unoffered_codec_fails() {
    let mut session = session(local(&[Pcmu]));
    session.offer();
    let answer = parse(&ACK_ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 8 101"));
    let error = session.accept_answer(&answer).unwrap_err();
    assert!(
        matches!(error, NegotiationError::NoOfferedCodec { .. }),
        "{error}"
    );
    assert_eq!(session.negotiated(), None);
}

#[test]
fn answer_rejecting_audio_fails() {
    let mut session = session(local(&[Pcmu]));
    session.offer();
    let answer = parse(&ACK_ANSWER.replace("m=audio 40500", "m=audio 0"));
    assert_eq!(
        session.accept_answer(&answer),
        Err(NegotiationError::AudioRejected)
    );
}

#[test]
fn answer_with_extra_stream_fails() {
    let mut session = session(local(&[Pcmu]));
    session.offer();
    let answer = parse(&format!("{ACK_ANSWER}m=video 0 RTP/AVP 99\r\n"));
    assert_eq!(
        session.accept_answer(&answer),
        Err(NegotiationError::MediaCountMismatch {
            offered: 1,
            answered: 2
        })
    );
}

#[test]
fn unparsable_answer_is_an_error() {
    let error: NegotiationError = SessionDescription::parse("v=0\r\nm=audio x\r\n")
        .unwrap_err()
        .into();
    assert!(
        matches!(
            error,
            NegotiationError::Parse(SdpError::LineBeforeOrigin { line: 2 })
        ),
        "{error}"
    );
    assert_eq!(error.warning().0, 399);
}

#[test]
fn answer_is_accepted_once() {
    let mut session = session(local(&[Pcmu]));
    session.offer();
    session.accept_answer(&parse(ACK_ANSWER)).unwrap();
    assert_eq!(
        session.accept_answer(&parse(ACK_ANSWER)),
        Err(NegotiationError::NoPendingOffer)
    );
}

#[test]
fn answer_renumbering_dynamic_type_is_followed() {
    let mut session = session(local(&[Opus]));
    let offer = session.offer();
    assert_eq!(offer.media[0].formats, ["96", "97"]);
    let answer = parse(
        "v=0\r\no=- 5 5 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
         m=audio 50000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\n\
         a=fmtp:111 maxplaybackrate=8000\r\na=rtpmap:110 telephone-event/48000\r\n",
    );
    let media = session.accept_answer(&answer).unwrap();
    assert_eq!(media.codec.payload_type, 111);
    assert_eq!(
        media.codec.fmtp.get("maxplaybackrate").map(String::as_str),
        Some("8000")
    );
    assert_eq!(media.dtmf.map(|dtmf| dtmf.payload_type), Some(110));
}

#[test]
fn answer_without_rtpmap_uses_offered_mapping() {
    let mut session = session(local(&[Opus]));
    session.offer();
    let answer = parse(
        "v=0\r\no=- 5 5 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\n\
         m=audio 50000 RTP/AVP 96\r\n",
    );
    let media = session.accept_answer(&answer).unwrap();
    assert_eq!(media.codec.name, Opus);
    assert_eq!(media.codec.payload_type, 96);
    assert_eq!(media.dtmf, None);
}

#[test]
fn caller_and_answerer_agree() {
    let mut caller = session(local_at(OUR_V6, &[Opus, Pcmu]));
    let mut callee_local = local_at("2001:db8::20", &[Pcma, Pcmu]);
    callee_local.port = 40_000;
    let mut callee = session(callee_local);

    let offer = caller.offer();
    let offer_text = offer.to_string();
    let (answer, callee_media) = callee.answer(&parse(&offer_text)).unwrap();
    let caller_media = caller.accept_answer(&parse(&answer.to_string())).unwrap();

    assert_eq!(caller_media.codec, callee_media.codec);
    assert_eq!(caller_media.codec.name, Pcmu);
    assert_eq!(caller_media.dtmf, callee_media.dtmf);
    assert_eq!(caller_media.dtmf.map(|dtmf| dtmf.payload_type), Some(101));
    assert_eq!(
        caller_media.remote_rtp,
        Some("[2001:db8::20]:40000".parse().unwrap())
    );
    assert_eq!(
        callee_media.remote_rtp,
        Some(format!("[{OUR_V6}]:{OUR_PORT}").parse().unwrap())
    );
    assert!(caller_media.rtcp_mux);
    assert!(callee_media.rtcp_mux);
    assert_eq!(caller_media.direction, Direction::SendRecv);
    assert_eq!(callee_media.direction, Direction::SendRecv);
}

#[test]
fn refresh_offer_repeats_agreed_codec() {
    let mut session = session(local(&[Pcmu, Opus]));
    session.offer();
    session.accept_answer(&parse(ACK_ANSWER)).unwrap();
    let refresh = session.offer();
    assert_eq!(refresh.media[0].formats, ["0", "101"]);
    assert_eq!(
        refresh.origin.session_version, "2",
        "the codec list changed"
    );
    let again = session.offer();
    assert_eq!(again.origin.session_version, "2", "nothing changed");
}

#[test]
fn ipv4_answer_to_ipv6_offer_fails() {
    let mut session = session(local_at(OUR_V6, &[Pcmu]));
    session.offer();
    let error = session.accept_answer(&parse(ACK_ANSWER)).unwrap_err();
    assert_eq!(error.warning().0, 301);
}
