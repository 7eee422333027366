//! SDP parsing and offer/answer against descriptions that real trunks, desk phones and
//! gateways send (the `.sdp` files under `tests/sdp/`), plus randomised robustness checks.

mod sdp {
    pub mod answer;
    pub mod baresip;
    pub mod hold;
    pub mod late_offer;
    pub mod robustness;
}

use std::net::IpAddr;

use voicegate::sip::sdp::{CodecName, LocalMedia, LocalSession, SessionDescription};

/// Our media address in tests that use IPv4.
pub const OUR_V4: &str = "198.51.100.10";
/// Our media address in tests that use IPv6.
pub const OUR_V6: &str = "2001:db8::10";
/// Our RTP port.
pub const OUR_PORT: u16 = 30_000;

/// Local media with the given codecs, IPv4 address, 20 ms and rtcp-mux allowed.
pub fn local(codecs: &[CodecName]) -> LocalMedia {
    local_at(OUR_V4, codecs)
}

/// Local media at an address.
pub fn local_at(addr: &str, codecs: &[CodecName]) -> LocalMedia {
    LocalMedia {
        addr: addr.parse::<IpAddr>().unwrap(),
        port: OUR_PORT,
        codecs: codecs.to_vec(),
        ptime_ms: 20,
        rtcp_mux: true,
    }
}

/// Creates the offer/answer state of one dialog.
pub fn session(local: LocalMedia) -> LocalSession {
    LocalSession::new(local, 3_000_000_001)
}

/// Parses a fixture body, failing the test with the parse error.
pub fn parse(text: &str) -> SessionDescription {
    match SessionDescription::parse(text) {
        Ok(sdp) => sdp,
        Err(error) => panic!("fixture does not parse: {error}\n{text}"),
    }
}

/// Lines of a printed description, without their CRLF.
pub fn lines(sdp: &SessionDescription) -> Vec<String> {
    sdp.to_string().split("\r\n").map(str::to_owned).collect()
}
