//! Parses arbitrary bytes as SDP and, when that works, answers it as an offer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use voicegate::sip::sdp::{CodecName, LocalMedia, LocalSession, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = SessionDescription::parse(text) else {
        return;
    };
    let _ = offer.to_string();
    let local = LocalMedia {
        addr: "127.0.0.1".parse().expect("literal address"),
        port: 30_000,
        codecs: vec![CodecName::Pcmu, CodecName::Pcma, CodecName::G722, CodecName::Opus],
        ptime_ms: 20,
        rtcp_mux: true,
    };
    let mut session = LocalSession::new(local, 1);
    if let Ok((answer, _)) = session.answer(&offer) {
        assert!(SessionDescription::parse(&answer.to_string()).is_ok());
    }
});
