//! Seeded random inputs: raw bytes, SDP-shaped lines and mutated fixtures go through `parse`,
//! `answer` and `accept_answer`. Nothing may panic, and whatever parses must print back to
//! the same model and produce only well-formed answers.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use voicegate::sip::sdp::{
    CodecName, Direction, LocalMedia, LocalSession, SessionDescription, parse_payload_type,
};

use crate::{OUR_V6, local, local_at};

const FIXTURES: [&str; 9] = [
    include_str!("bad_tokens.sdp"),
    include_str!("ipv6_offer.sdp"),
    include_str!("late_offer_answer.sdp"),
    include_str!("hold_sendonly.sdp"),
    include_str!("hold_rfc2543.sdp"),
    include_str!("unhold_no_final_newline.sdp"),
    include_str!("dynamic_payload_types.sdp"),
    include_str!("opus_deskphone_with_video.sdp"),
    include_str!("opus_nonstandard_rtpmaps.sdp"),
];

/// Tokens that have broken SDP parsers: out-of-range numbers, separators, hold addresses,
/// brackets, NUL, non-ASCII text and half-written attributes.
const INTERESTING: [&str; 40] = [
    "0",
    "-1",
    "127",
    "128",
    "255",
    "65535",
    "65536",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999",
    "",
    " ",
    "/",
    ":",
    ";",
    "=",
    ";;==;;",
    "IN",
    "IP4",
    "IP6",
    "0.0.0.0",
    "::",
    "2001:db8::5",
    "[2001:db8::5]",
    "233.252.0.1/127/3",
    "RTP/AVP",
    "RTP/SAVP",
    "rtpmap:96 opus/48000/2",
    "rtpmap:101 telephone-event/8000",
    "fmtp:96 stereo=1",
    "ptime:abc",
    "rtcp:0",
    "rtcp-mux",
    "sendonly",
    "\0",
    "\u{e9}",
    "\r",
    "\n",
    "m=audio 1 RTP/AVP 0",
    "c=IN IP4 ",
];

fn locals() -> [LocalMedia; 3] {
    let mut no_mux = local(&[CodecName::Pcmu, CodecName::Pcma]);
    no_mux.rtcp_mux = false;
    [
        local(&[CodecName::Opus, CodecName::Pcmu, CodecName::G722]),
        no_mux,
        local_at(OUR_V6, &[CodecName::G722, CodecName::Opus]),
    ]
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

fn random_bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..600);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

const ADDRESSES: [&str; 6] = [
    "203.0.113.5",
    "0.0.0.0",
    "2001:db8::5",
    "::",
    "233.252.0.1/127",
    "media.example.net",
];

const ATTRIBUTES: [&str; 12] = [
    "rtpmap", "fmtp", "ptime", "maxptime", "rtcp", "rtcp-mux", "sendrecv", "sendonly", "recvonly",
    "inactive", "x-vendor", "",
];

const ENCODINGS: [&str; 9] = [
    "PCMU/8000",
    "PCMA/8000",
    "G722/8000",
    "opus/48000/2",
    "opus/48000/1",
    "opus/16000",
    "telephone-event/8000",
    "telephone-event/48000",
    "H264/90000",
];

/// Usually `usual`, sometimes one of the interesting tokens.
fn field(rng: &mut StdRng, usual: String) -> String {
    if rng.random_bool(0.05) {
        pick(rng, &INTERESTING).to_owned()
    } else {
        usual
    }
}

fn payload_type(rng: &mut StdRng) -> String {
    let number = pick(
        rng,
        &["0", "8", "9", "13", "18", "96", "97", "101", "107", "111"],
    );
    field(rng, number.to_owned())
}

fn connection_line(rng: &mut StdRng) -> String {
    let addr_type = pick(rng, &["IP4", "IP4", "IP6"]).to_owned();
    let address = pick(rng, &ADDRESSES).to_owned();
    format!("c=IN {} {}", field(rng, addr_type), field(rng, address))
}

fn media_line(rng: &mut StdRng) -> String {
    let kind = pick(rng, &["audio", "audio", "audio", "video", "image"]).to_owned();
    let port = pick(rng, &["40000", "40000", "0", "65535"]).to_owned();
    let protocol = pick(
        rng,
        &["RTP/AVP", "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "udptl"],
    )
    .to_owned();
    let mut line = format!(
        "m={} {} {}",
        field(rng, kind),
        field(rng, port),
        field(rng, protocol)
    );
    for _ in 0..rng.random_range(1..6) {
        line.push(' ');
        line.push_str(&payload_type(rng));
    }
    line
}

fn attribute_line(rng: &mut StdRng) -> String {
    let name = pick(rng, &ATTRIBUTES).to_owned();
    let value = match name.as_str() {
        "rtpmap" => format!("{} {}", payload_type(rng), pick(rng, &ENCODINGS)),
        "fmtp" => {
            let parameters = pick(rng, &["0-15", "stereo=1;useinbandfec=1", ";;==;;"]);
            format!("{} {parameters}", payload_type(rng))
        }
        "ptime" | "maxptime" => pick(rng, &["20", "30", "10", "abc", "0"]).to_owned(),
        "rtcp" => pick(rng, &["40001", "40001 IN IP4 192.0.2.9", "0"]).to_owned(),
        _ => String::new(),
    };
    let value = field(rng, value);
    if value.is_empty() {
        format!("a={}", field(rng, name))
    } else {
        format!("a={}:{value}", field(rng, name))
    }
}

fn random_line(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => connection_line(rng),
        1..=7 => attribute_line(rng),
        _ => {
            let kind = char::from(b"sitbkzxy"[rng.random_range(0..8)]);
            format!("{kind}={}", field(rng, "0 0".to_owned()))
        }
    }
}

/// Builds a body shaped like an offer (`v=`, `o=`, usually a `c=`, then media sections) whose lines
/// are drawn from the tables above with interesting tokens mixed in.
fn random_sdp(rng: &mut StdRng) -> String {
    let mut lines = vec!["v=0".to_owned(), "o=- 1 1 IN IP4 192.0.2.1".to_owned()];
    if rng.random_bool(0.9) {
        lines.push(connection_line(rng));
    }
    for _ in 0..rng.random_range(0..4) {
        lines.push(attribute_line(rng));
    }
    for _ in 0..rng.random_range(1..4) {
        lines.push(media_line(rng));
        for _ in 0..rng.random_range(0..8) {
            lines.push(random_line(rng));
        }
    }
    let mut text = String::new();
    for line in lines {
        text.push_str(&line);
        text.push_str(if rng.random_bool(0.8) { "\r\n" } else { "\n" });
    }
    text
}

/// A fixture with a few random edits: byte flips, cut or repeated ranges, inserted tokens.
fn mutated_fixture(rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = pick(rng, &FIXTURES).as_bytes().to_vec();
    for _ in 0..rng.random_range(1..5) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..5) {
            0 => bytes[at] = rng.random(),
            1 => {
                let end = (at + rng.random_range(1..20)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let end = (at + rng.random_range(1..40)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            3 => {
                let token = pick(rng, &INTERESTING).as_bytes().to_vec();
                bytes.splice(at..at, token);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// How far one input got.
#[derive(Default)]
struct Tally {
    parsed: usize,
    answered: usize,
}

/// Checks everything that must hold for one input and counts how far it got.
fn check(body: &[u8], tally: &mut Tally) {
    let Ok(sdp) = SessionDescription::parse_bytes(body) else {
        return;
    };
    tally.parsed += 1;
    let printed = sdp.to_string();
    let reparsed = SessionDescription::parse(&printed)
        .unwrap_or_else(|error| panic!("printed description does not parse: {error}\n{printed}"));
    assert_eq!(reparsed, sdp, "round trip changed the model:\n{printed}");
    let _ = sdp.audio_family();

    for local in locals() {
        if check_answer(&sdp, local.clone()) {
            tally.answered += 1;
        }
        check_accept(&sdp, local);
    }
}

/// Answers the offer with fresh state and returns whether that succeeded.
fn check_answer(offer: &SessionDescription, local: LocalMedia) -> bool {
    let mut session = LocalSession::new(local.clone(), 7);
    let Ok((answer, media)) = session.answer(offer) else {
        return false;
    };
    let printed = answer.to_string();
    let reparsed = SessionDescription::parse(&printed)
        .unwrap_or_else(|error| panic!("answer does not parse: {error}\n{printed}"));
    assert_eq!(reparsed, answer);
    assert_eq!(answer.media.len(), offer.media.len(), "{printed}");
    assert!(
        answer
            .media
            .iter()
            .all(|section| !section.formats.is_empty())
    );

    let index = offer.audio_index().expect("an answered offer has audio");
    let offered = &offer.media[index];
    let answered = &answer.media[index];
    let offered_numbers: Vec<u8> = offered
        .formats
        .iter()
        .filter_map(|format| parse_payload_type(format))
        .collect();
    for format in &answered.formats {
        let number = parse_payload_type(format);
        assert!(number.is_some(), "bad number {format} in\n{printed}");
        assert!(
            number.is_some_and(|number| offered_numbers.contains(&number)),
            "{format} was not offered:\n{printed}"
        );
    }
    assert!(local.codecs.contains(&media.codec.name));
    assert!(media.codec.payload_type <= 127);
    if let Some(dtmf) = media.dtmf {
        assert_eq!(dtmf.clock_rate, media.codec.clock_rate);
    }
    if media.remote_rtp.is_none() {
        assert!(
            !media.direction.sends(),
            "{:?} without an address",
            media.direction
        );
        assert_ne!(answered.direction(), Some(Direction::SendRecv));
    }
    assert_eq!(answered.has_attribute("rtcp-mux"), media.rtcp_mux);
    assert_eq!(
        answer
            .connection
            .as_ref()
            .map(|connection| connection.address.clone()),
        Some(local.addr.to_string())
    );
    true
}

fn check_accept(answer: &SessionDescription, local: LocalMedia) {
    let mut session = LocalSession::new(local.clone(), 7);
    session.offer();
    if let Ok(media) = session.accept_answer(answer) {
        assert!(local.codecs.contains(&media.codec.name));
        if let Some(dtmf) = media.dtmf {
            assert_eq!(dtmf.clock_rate, media.codec.clock_rate);
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5d9_0001);
    let mut tally = Tally::default();
    for _ in 0..5_000 {
        check(&random_bytes(&mut rng), &mut tally);
    }
}

#[test]
fn random_sdp_lines_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5d9_0002);
    let mut tally = Tally::default();
    for _ in 0..10_000 {
        check(random_sdp(&mut rng).as_bytes(), &mut tally);
    }
    // The generator must reach the negotiation code, not only the parser's error paths.
    assert!(
        tally.parsed > 2_000,
        "only {} of 10000 inputs parsed",
        tally.parsed
    );
    assert!(tally.answered > 1_000, "only {} answers", tally.answered);
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5d9_0003);
    let mut tally = Tally::default();
    for _ in 0..10_000 {
        check(&mutated_fixture(&mut rng), &mut tally);
    }
    assert!(
        tally.parsed > 3_000,
        "only {} of 10000 inputs parsed",
        tally.parsed
    );
    assert!(tally.answered > 3_000, "only {} answers", tally.answered);
}

#[test]
fn fixtures_pass_every_check() {
    for fixture in FIXTURES {
        let mut tally = Tally::default();
        check(fixture.as_bytes(), &mut tally);
        assert_eq!(tally.parsed, 1);
    }
}
