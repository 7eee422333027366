//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.
//!
//! [`SessionDescription::parse`] reads any body without panicking and keeps every line,
//! including ones it does not interpret; `Display` prints it back with CRLF line ends.
//!
//! The dialog layer owns a [`LocalSession`] per call, which keeps our `o=` line and the last
//! description we sent, so that its version goes up by exactly one whenever our description
//! changes and stays put when it does not (RFC 3264 §8). It calls:
//!
//! - [`LocalSession::answer`] for an offer in an INVITE, re-INVITE or UPDATE; on error it
//!   rejects with 488 and the code from [`NegotiationError::warning`];
//! - [`LocalSession::offer`] for a late offer in our 200, an INVITE we send, or a refresh, then
//!   [`LocalSession::accept_answer`] with the answer from the ACK or 200; on error it ends the
//!   call with BYE.
//!
//! Both return a [`NegotiatedMedia`] for the media path. Payload type numbers always come from
//! the exchange itself, never from constants: the media path maps numbers to codecs per call.

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
