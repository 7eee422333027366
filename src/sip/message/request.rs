//! Parsed SIP requests and responses.
//!
//! Headers are kept as `rsipstack::sip::Headers`, in the order received and with their values
//! as written, so a response can copy Via, From, To, Call-ID and CSeq byte for byte (RFC 3261
//! §8.2.6.2). The fields every layer needs are parsed once and stored beside them.

use rsipstack::sip::{Header, Headers, Uri};

use super::header::{CSeq, NameAddr, Via, list_contains};
use super::method::Method;

/// A request that passed every check in [`super::parse_message`].
#[derive(Debug, Clone)]
pub struct Request {
    /// Request method.
    pub method: Method,
    /// Request-URI, parsed by rsip.
    pub uri: Uri,
    /// Request-URI as written.
    pub uri_text: String,
    /// Every header, in order.
    pub headers: Headers,
    /// Body, exactly Content-Length bytes.
    pub body: Vec<u8>,
    /// Top Via.
    pub via: Via,
    /// From header.
    pub from: NameAddr,
    /// To header.
    pub to: NameAddr,
    /// Call-ID value.
    pub call_id: String,
    /// CSeq header.
    pub cseq: CSeq,
}

/// A response that passed every check in [`super::parse_message`].
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code, 100 to 699.
    pub status: u16,
    /// Reason phrase as written.
    pub reason: String,
    /// Every header, in order.
    pub headers: Headers,
    /// Body, exactly Content-Length bytes.
    pub body: Vec<u8>,
    /// Top Via.
    pub via: Via,
    /// From header.
    pub from: NameAddr,
    /// To header.
    pub to: NameAddr,
    /// Call-ID value.
    pub call_id: String,
    /// CSeq header.
    pub cseq: CSeq,
}

/// A parsed request or response.
#[derive(Debug, Clone)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// Header lookups shared by requests and responses.
pub trait HeaderAccess {
    /// Every header of the message.
    fn header_list(&self) -> &Headers;

    /// Returns the value of the first header called `name` (compact forms are already expanded).
    fn header(&self, name: &str) -> Option<&str> {
        self.header_list()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(Header::value)
    }

    /// Returns the values of every header called `name`, in order.
    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header_list()
            .iter()
            .filter(move |h| h.name().eq_ignore_ascii_case(name))
            .map(Header::value)
    }

    /// Returns whether any header called `name` lists `token` (for Supported, Require, Allow).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name).any(|v| list_contains(v, token))
    }

    /// Returns the Content-Type without parameters, lower case.
    fn content_type(&self) -> Option<String> {
        let value = self.header("Content-Type")?;
        let media = value.split(';').next().unwrap_or_default().trim();
        Some(media.to_ascii_lowercase())
    }
}

impl HeaderAccess for Request {
    fn header_list(&self) -> &Headers {
        &self.headers
    }
}

impl HeaderAccess for Response {
    fn header_list(&self) -> &Headers {
        &self.headers
    }
}

impl Request {
    /// Returns whether the body is an SDP description.
    pub fn has_sdp(&self) -> bool {
        !self.body.is_empty() && self.content_type().as_deref() == Some("application/sdp")
    }
}

impl Response {
    /// Returns whether the body is an SDP description.
    pub fn has_sdp(&self) -> bool {
        !self.body.is_empty() && self.content_type().as_deref() == Some("application/sdp")
    }
}
