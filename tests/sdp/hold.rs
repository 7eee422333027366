//! Hold and resume through re-INVITEs: directions, the RFC 2543 hold address, resuming to the
//! same address, and our `o=` version across the exchanges.

use voicegate::sip::sdp::{CodecName, Direction, LocalSession, SessionDescription};

use crate::{OUR_V4, local, parse, session};

const HOLD_SENDONLY: &str = include_str!("hold_sendonly.sdp");
const HOLD_RFC2543: &str = include_str!("hold_rfc2543.sdp");
const UNHOLD: &str = include_str!("unhold_no_final_newline.sdp");

fn established() -> LocalSession {
    let mut session = session(local(&[CodecName::Pcmu]));
    let (answer, media) = session.answer(&parse(UNHOLD)).unwrap();
    assert_eq!(answer.origin.session_version, "1");
    assert_eq!(media.direction, Direction::SendRecv);
    session
}

fn version(sdp: &SessionDescription) -> u64 {
    sdp.origin.session_version.parse().unwrap()
}

#[test]
fn final_line_without_newline_is_read() {
    assert!(!UNHOLD.ends_with('\n'));
    let sdp = parse(UNHOLD);
    assert_eq!(sdp.media[0].direction(), Some(Direction::SendRecv));
    assert_eq!(sdp.to_string(), format!("{UNHOLD}\r\n"));
}

#[test]
fn sendonly_hold_answered_recvonly() {
    let mut session = established();
    let (answer, media) = session.answer(&parse(HOLD_SENDONLY)).unwrap();
    assert_eq!(answer.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(media.direction, Direction::RecvOnly);
    assert!(!answer.to_string().contains("a=sendrecv"));
    assert_eq!(version(&answer), 2);
}

#[test]
fn rfc2543_hold_answered_inactive() {
    let mut session = established();
    let (answer, media) = session.answer(&parse(HOLD_RFC2543)).unwrap();
    assert_eq!(answer.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(media.direction, Direction::Inactive);
    assert_eq!(media.remote_rtp, None);
    assert_eq!(media.remote_rtcp, None);
    let text = answer.to_string();
    assert!(text.contains(&format!("c=IN IP4 {OUR_V4}\r\n")));
    assert!(!text.contains("0.0.0.0"));
    assert!(!text.contains("a=sendrecv"));
}

#[test]
fn hold_address_with_explicit_sendrecv_is_not_sendrecv() {
    let mut session = established();
    let offer = parse(&format!("{HOLD_RFC2543}a=sendrecv\r\n"));
    let (answer, media) = session.answer(&offer).unwrap();
    assert_eq!(media.direction, Direction::Inactive);
    assert!(!answer.to_string().contains("a=sendrecv"));
}

#[test]
fn inactive_answered_inactive() {
    let mut session = established();
    let offer = parse(&HOLD_SENDONLY.replace("a=sendonly", "a=inactive"));
    let (answer, media) = session.answer(&offer).unwrap();
    assert_eq!(answer.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(media.direction, Direction::Inactive);
}

#[test]
fn recvonly_answered_sendonly() {
    let mut session = established();
    let offer = parse(&HOLD_SENDONLY.replace("a=sendonly", "a=recvonly"));
    let (_, media) = session.answer(&offer).unwrap();
    assert_eq!(media.direction, Direction::SendOnly);
    assert!(media.remote_rtp.is_some());
}

#[test]
fn session_level_direction_applies() {
    let mut session = established();
    let text = HOLD_SENDONLY
        .replace("a=sendonly\r\n", "")
        .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let (_, media) = session.answer(&parse(&text)).unwrap();
    assert_eq!(media.direction, Direction::RecvOnly);
}

#[test]
fn hold_and_resume_sequence() {
    let mut session = established();
    let expected_address = Some("203.0.113.5:40000".parse().unwrap());

    let (hold, on_hold) = session.answer(&parse(HOLD_SENDONLY)).unwrap();
    assert_eq!(version(&hold), 2);
    assert_eq!(on_hold.direction, Direction::RecvOnly);

    let (hold2543, parked) = session.answer(&parse(HOLD_RFC2543)).unwrap();
    assert_eq!(version(&hold2543), 3);
    assert_eq!(parked.remote_rtp, None);

    let (resume, resumed) = session.answer(&parse(UNHOLD)).unwrap();
    assert_eq!(version(&resume), 4);
    assert_eq!(resumed.direction, Direction::SendRecv);
    assert_eq!(resumed.remote_rtp, expected_address);
    assert_eq!(resume.media[0].direction(), Some(Direction::SendRecv));

    let (repeat, _) = session.answer(&parse(UNHOLD)).unwrap();
    assert_eq!(version(&repeat), 4, "an unchanged answer keeps its version");
    assert_eq!(repeat, resume);
}

#[test]
fn codec_kept_across_hold() {
    let mut session = session(local(&[CodecName::Pcma, CodecName::Pcmu]));
    let pcmu_only = UNHOLD.replace("RTP/AVP 0 101", "RTP/AVP 0");
    let (_, first) = session.answer(&parse(&pcmu_only)).unwrap();
    assert_eq!(first.codec.name, CodecName::Pcmu);
    let both = HOLD_SENDONLY.replace("RTP/AVP 0 101", "RTP/AVP 8 0");
    let (_, held) = session.answer(&parse(&both)).unwrap();
    assert_eq!(held.codec.name, CodecName::Pcmu);
}
