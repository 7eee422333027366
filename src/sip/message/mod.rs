//! SIP messages: strict parsing on top of `rsipstack::sip`, typed views of the core headers,
//! stream framing and serialization.

mod header;
mod method;
mod parse;
mod request;
mod stream;
mod write;

pub use header::{
    BRANCH_COOKIE, CSeq, NameAddr, Via, is_loose_route, is_supported_scheme, list_contains,
    parse_uri, split_host_port, split_list, uri_user,
};
pub use method::{Method, is_token};
pub use parse::{MAX_HEADERS, ParseError, RejectInfo, parse_message, via_count};
pub use request::{HeaderAccess, Message, Request, Response};
pub use stream::{Frame, FramingError, StreamFramer};
pub use write::{MessageBuilder, clean, response_to, response_to_rejected, top_via_with_source};
