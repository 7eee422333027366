//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.
//!
//! [`SessionDescription::parse`] reads any body without panicking and keeps every line,
//! including ones it does not interpret; `Display` prints it back with CRLF line ends.
//!
//! The dialog layer owns a [`LocalSession`] per call. It stores our `o=` line and the last
//! description we sent. Its version goes up by exactly one whenever our description changes,
//! and stays put when it does not (RFC 3264 §8). The dialog layer calls:
//!
//! - [`LocalSession::answer`] for an offer in an INVITE, re-INVITE or UPDATE; on error it
//!   rejects with 488 and the code from [`NegotiationError::warning`];
//! - [`LocalSession::offer`] for a late offer in our 200, an INVITE we send, or a refresh, then
//!   [`LocalSession::accept_answer`] with the answer from the ACK or 200; on error it ends the
//!   call with BYE.
//!
//! Both return a [`NegotiatedMedia`] for the media path. Payload type numbers always come from
//! the exchange itself, never from constants: the media path maps numbers to codecs per call.
//!
//! ```
//! use voicegate::sip::sdp::{CodecName, Direction, LocalMedia, LocalSession, SessionDescription};
//!
//! let offer = SessionDescription::parse(
//!     "v=0\r\no=carrier 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n\
//!      m=audio 41200 RTP/AVP 96 0 97 101\r\na=rtpmap:96 opus/48000/2\r\n\
//!      a=rtpmap:97 telephone-event/48000\r\na=rtpmap:101 telephone-event/8000\r\n",
//! )?;
//! let local = LocalMedia {
//!     addr: "198.51.100.10".parse()?,
//!     port: 30000,
//!     codecs: vec![CodecName::Pcmu, CodecName::Opus],
//!     ptime_ms: 20,
//!     rtcp_mux: true,
//! };
//! let mut session = LocalSession::new(local, 0x1234);
//! let (answer, media) = session.answer(&offer)?;
//!
//! // Our preference (PCMU) on the offerer's numbers, and telephone-event at 8000 only.
//! assert_eq!(answer.media[0].formats, ["0", "101"]);
//! assert_eq!(media.dtmf.map(|dtmf| dtmf.payload_type), Some(101));
//! assert_eq!(media.direction, Direction::SendRecv);
//! assert!(answer.to_string().starts_with("v=0\r\no=- 4660 1 IN IP4 198.51.100.10\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod format;
mod metrics;
mod model;
mod negotiate;
mod offer;
mod parse;
mod section;
mod serialize;
mod session;
mod types;

pub use error::NegotiationError;
pub use format::{
    FormatKind, RtcpAttribute, RtpFormat, parse_format_parameters, parse_packet_time,
    parse_payload_type, static_format,
};
pub use model::{
    Attribute, Bandwidth, Connection, IpFamily, MediaDescription, Origin, SessionDescription,
    Timing, UnknownLine,
};
pub use parse::{MAX_MEDIA, MAX_SDP_LEN, SdpError};
pub use session::LocalSession;
pub use types::{
    CodecName, Direction, LocalMedia, NegotiatedCodec, NegotiatedDtmf, NegotiatedMedia,
};
