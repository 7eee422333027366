//! Answers to offers: codec choice, payload type numbers, telephone-event rates, Opus, rtcp-mux,
//! other m-lines, address families and bad tokens.

use voicegate::sip::sdp::{
    CodecName, Direction, IpFamily, NegotiatedDtmf, NegotiationError, SessionDescription,
};

use crate::{OUR_PORT, OUR_V6, lines, local, local_at, parse, session};

const BAD_TOKENS: &str = include_str!("bad_tokens.sdp");
const IPV6_OFFER: &str = include_str!("ipv6_offer.sdp");
const DYNAMIC_PAYLOAD_TYPES: &str = include_str!("dynamic_payload_types.sdp");
const OPUS_DESKPHONE: &str = include_str!("opus_deskphone_with_video.sdp");
const OPUS_NONSTANDARD: &str = include_str!("opus_nonstandard_rtpmaps.sdp");

use CodecName::{G722, Opus, Pcma, Pcmu};

#[test]
fn bad_tokens_answered_on_pcmu() {
    let offer = parse(BAD_TOKENS);
    let (answer, media) = session(local(&[Pcmu])).answer(&offer).unwrap();
    let text = answer.to_string();
    assert!(!text.contains("4294967296"), "{text}");
    assert_eq!(answer.media[0].formats, ["0"]);
    assert_eq!(media.codec.name, Pcmu);
    assert_eq!(media.codec.payload_type, 0);
    assert!(media.codec.fmtp.is_empty(), "junk fmtp must be ignored");
    assert_eq!(media.ptime_ms, 20, "a=ptime:abc must be ignored");
    assert_eq!(media.remote_rtp, Some("203.0.113.5:40000".parse().unwrap()));
}

#[test]
fn bad_payload_type_alone_is_no_common_codec() {
    let offer = parse(&BAD_TOKENS.replace("RTP/AVP 4294967296 0", "RTP/AVP 4294967296"));
    let error = session(local(&[Pcmu])).answer(&offer).unwrap_err();
    assert_eq!(error.warning().0, 305);
    assert!(!error.warning().1.contains('"'));
}

#[test]
fn ipv6_offer_answered_over_ipv6() {
    let offer = parse(IPV6_OFFER);
    assert_eq!(offer.audio_family(), Some(IpFamily::V6));
    let (answer, media) = session(local_at(OUR_V6, &[Pcmu])).answer(&offer).unwrap();
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&format!("c=IN IP6 {OUR_V6}")));
    assert!(answer_lines.contains(&format!("o=- 3000000001 1 IN IP6 {OUR_V6}")));
    assert!(!answer.to_string().contains("IP4"));
    assert_eq!(
        media.remote_rtp,
        Some("[2001:db8::5]:40000".parse().unwrap())
    );
    assert_eq!(
        media.dtmf,
        Some(NegotiatedDtmf {
            payload_type: 101,
            clock_rate: 8_000
        })
    );
}

#[test]
fn ipv6_offer_with_ipv4_media_is_301() {
    let offer = parse(IPV6_OFFER);
    let error = session(local(&[Pcmu])).answer(&offer).unwrap_err();
    assert_eq!(
        error,
        NegotiationError::AddressFamilyMismatch {
            offered: IpFamily::V6,
            local: IpFamily::V4
        }
    );
    assert_eq!(error.warning().0, 301);
}

#[test]
fn ipv4_offer_with_ipv6_media_is_301() {
    let offer = parse(BAD_TOKENS);
    let error = session(local_at(OUR_V6, &[Pcmu]))
        .answer(&offer)
        .unwrap_err();
    assert_eq!(error.warning().0, 301);
}

#[test]
fn dynamic_types_opus_answer() {
    let offer = parse(DYNAMIC_PAYLOAD_TYPES);
    let (answer, media) = session(local(&[Opus, Pcmu])).answer(&offer).unwrap();
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&format!("m=audio {OUR_PORT} RTP/AVP 96 97")));
    assert!(answer_lines.contains(&"a=rtpmap:96 opus/48000/2".to_owned()));
    assert!(answer_lines.contains(&"a=rtpmap:97 telephone-event/48000".to_owned()));
    assert!(!answer_lines.iter().any(|line| line.contains("101")));
    assert_eq!(media.codec.name, Opus);
    assert_eq!(media.codec.payload_type, 96);
    assert_eq!(media.codec.clock_rate, 48_000);
    assert_eq!(media.codec.channels, 2);
    assert_eq!(
        media.codec.fmtp.get("useinbandfec").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        media.dtmf,
        Some(NegotiatedDtmf {
            payload_type: 97,
            clock_rate: 48_000
        })
    );
}

#[test]
fn dynamic_types_pcmu_answer() {
    let offer = parse(DYNAMIC_PAYLOAD_TYPES);
    let (answer, media) = session(local(&[Pcmu, Opus])).answer(&offer).unwrap();
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&format!("m=audio {OUR_PORT} RTP/AVP 0 101")));
    assert!(answer_lines.contains(&"a=rtpmap:101 telephone-event/8000".to_owned()));
    assert!(!answer_lines.iter().any(|line| line.contains(" 97")));
    assert_eq!(media.codec.payload_type, 0);
    assert_eq!(
        media.dtmf,
        Some(NegotiatedDtmf {
            payload_type: 101,
            clock_rate: 8_000
        })
    );
}

#[test]
fn telephone_event_only_at_other_rate_is_dropped() {
    let offer = parse(&DYNAMIC_PAYLOAD_TYPES.replace("RTP/AVP 96 0 97 101", "RTP/AVP 96 0 101"));
    let (answer, media) = session(local(&[Opus])).answer(&offer).unwrap();
    assert_eq!(answer.media[0].formats, ["96"]);
    assert_eq!(media.dtmf, None);
}

#[test]
fn opus_deskphone_answer() {
    let offer = parse(OPUS_DESKPHONE);
    let (answer, media) = session(local(&[Opus, Pcmu])).answer(&offer).unwrap();
    assert_eq!(answer.media.len(), 2);
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&format!("m=audio {OUR_PORT} RTP/AVP 107 101")));
    assert!(answer_lines.contains(&"a=rtpmap:107 opus/48000/2".to_owned()));
    assert!(answer_lines.contains(
        &"a=fmtp:107 maxplaybackrate=16000;sprop-maxcapturerate=16000;stereo=0;sprop-stereo=0;useinbandfec=1"
            .to_owned()
    ));
    assert!(answer_lines.contains(&"a=rtpmap:101 telephone-event/48000".to_owned()));
    assert!(answer_lines.contains(&"m=video 0 RTP/AVP 99".to_owned()));

    let fmtp = &media.codec.fmtp;
    assert_eq!(
        fmtp.get("maxplaybackrate").map(String::as_str),
        Some("16000")
    );
    assert_eq!(
        fmtp.get("sprop-maxcapturerate").map(String::as_str),
        Some("16000")
    );
    assert_eq!(
        fmtp.get("maxaveragebitrate").map(String::as_str),
        Some("24000")
    );
    assert_eq!(fmtp.get("stereo").map(String::as_str), Some("0"));
    assert_eq!(fmtp.get("useinbandfec").map(String::as_str), Some("1"));
    assert_eq!(media.dtmf.map(|dtmf| dtmf.clock_rate), Some(48_000));
}

#[test]
fn rtcp_mux_echoed_when_allowed() {
    let offer = parse(OPUS_DESKPHONE);
    let (answer, media) = session(local(&[Opus])).answer(&offer).unwrap();
    assert!(answer.media[0].has_attribute("rtcp-mux"));
    assert!(media.rtcp_mux);
    assert_eq!(media.remote_rtcp, media.remote_rtp);
    assert_eq!(media.remote_rtp, Some("203.0.113.5:41400".parse().unwrap()));
}

#[test]
fn rtcp_mux_left_out_when_not_allowed() {
    let offer = parse(OPUS_DESKPHONE);
    let mut local = local(&[Opus]);
    local.rtcp_mux = false;
    let (answer, media) = session(local).answer(&offer).unwrap();
    assert!(!answer.media[0].has_attribute("rtcp-mux"));
    assert!(!media.rtcp_mux);
    assert_eq!(
        media.remote_rtcp,
        Some("203.0.113.5:41401".parse().unwrap())
    );
}

#[test]
fn rtcp_mux_not_offered_not_answered() {
    let offer = parse(&OPUS_DESKPHONE.replace("a=rtcp-mux\r\n", ""));
    let (answer, media) = session(local(&[Opus])).answer(&offer).unwrap();
    assert!(!answer.media[0].has_attribute("rtcp-mux"));
    assert!(!media.rtcp_mux);
    assert_eq!(
        media.remote_rtcp,
        Some("203.0.113.5:41401".parse().unwrap())
    );
}

#[test]
fn opus_mono_rtpmap_answered_as_stereo_rtpmap() {
    let offer = parse(OPUS_NONSTANDARD);
    let (answer, media) = session(local(&[Opus, Pcmu])).answer(&offer).unwrap();
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&format!("m=audio {OUR_PORT} RTP/AVP 111")));
    assert!(answer_lines.contains(&"a=rtpmap:111 opus/48000/2".to_owned()));
    assert!(
        !answer_lines
            .iter()
            .any(|line| line.starts_with("a=rtpmap:98"))
    );
    assert!(
        !answer_lines
            .iter()
            .any(|line| line.starts_with("a=fmtp:98"))
    );
    assert_eq!(media.codec.payload_type, 111);
    assert_eq!(media.codec.channels, 2);
    assert_eq!(media.dtmf, None, "telephone-event is offered only at 8000");
}

#[test]
fn opus_16000_never_picked() {
    let offer = parse(&OPUS_NONSTANDARD.replace("RTP/AVP 98 111 0 101", "RTP/AVP 98 0 101"));
    let (_, media) = session(local(&[Opus, Pcmu])).answer(&offer).unwrap();
    assert_eq!(media.codec.name, Pcmu);
    assert_eq!(media.dtmf.map(|dtmf| dtmf.payload_type), Some(101));

    let opus_only = session(local(&[Opus])).answer(&offer).unwrap_err();
    assert_eq!(opus_only.warning().0, 305);
}

#[test]
fn pcmu_preferred_succeeds_on_gateway_offer() {
    let offer = parse(OPUS_NONSTANDARD);
    let (answer, media) = session(local(&[Pcmu, Opus])).answer(&offer).unwrap();
    assert_eq!(answer.media[0].formats, ["0", "101"]);
    assert_eq!(media.codec.name, Pcmu);
}

#[test]
fn g722_static_type_without_rtpmap() {
    let offer = parse(&BAD_TOKENS.replace("RTP/AVP 4294967296 0", "RTP/AVP 9 8"));
    let (answer, media) = session(local(&[G722, Pcma])).answer(&offer).unwrap();
    assert_eq!(media.codec.name, G722);
    assert_eq!(media.codec.payload_type, 9);
    assert_eq!(media.codec.clock_rate, 8_000);
    assert!(lines(&answer).contains(&"a=rtpmap:9 G722/8000".to_owned()));
}

#[test]
fn extra_audio_streams_rejected() {
    let text =
        format!("{DYNAMIC_PAYLOAD_TYPES}m=audio 41300 RTP/AVP 8\r\nm=image 41500 udptl t38\r\n");
    let offer = parse(&text);
    let (answer, media) = session(local(&[Pcmu])).answer(&offer).unwrap();
    assert_eq!(answer.media.len(), 3);
    assert_eq!(answer.media[0].port, OUR_PORT);
    let answer_lines = lines(&answer);
    assert!(answer_lines.contains(&"m=audio 0 RTP/AVP 8".to_owned()));
    assert!(answer_lines.contains(&"m=image 0 udptl t38".to_owned()));
    assert_eq!(media.remote_rtp.map(|addr| addr.port()), Some(41_200));
}

#[test]
fn video_only_offer_is_304() {
    let text = OPUS_DESKPHONE.replace("m=audio", "m=video");
    let error = session(local(&[Opus])).answer(&parse(&text)).unwrap_err();
    assert_eq!(error, NegotiationError::NoAudio);
    assert_eq!(error.warning().0, 304);
}

#[test]
fn answer_direction_is_explicit() {
    let (answer, media) = session(local(&[Pcmu])).answer(&parse(BAD_TOKENS)).unwrap();
    assert_eq!(answer.media[0].direction(), Some(Direction::SendRecv));
    assert_eq!(media.direction, Direction::SendRecv);
}

#[test]
fn answer_parses_back_unchanged() {
    for text in [
        BAD_TOKENS,
        DYNAMIC_PAYLOAD_TYPES,
        OPUS_DESKPHONE,
        OPUS_NONSTANDARD,
    ] {
        let (answer, _) = session(local(&[Opus, Pcmu])).answer(&parse(text)).unwrap();
        let printed = answer.to_string();
        assert!(printed.ends_with("\r\n"));
        assert_eq!(SessionDescription::parse(&printed).unwrap(), answer);
    }
}

#[test]
fn fixtures_round_trip() {
    for text in [
        BAD_TOKENS,
        IPV6_OFFER,
        DYNAMIC_PAYLOAD_TYPES,
        OPUS_DESKPHONE,
        OPUS_NONSTANDARD,
    ] {
        let sdp = parse(text);
        assert_eq!(sdp.to_string(), text);
    }
}
