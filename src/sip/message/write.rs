//! Serialization of outgoing messages straight into bytes.
//!
//! Responses copy Via, From, To, Call-ID and CSeq from the request as received (RFC 3261
//! §8.2.6.2); the top Via gets `received` and `rport` filled in (RFC 3261 §18.2.1, RFC 3581
//! §4). Every value written passes through [`clean`], so no caller-supplied text can add a
//! header line.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::header::{Via, split_list};
use super::method::Method;
use super::parse::RejectInfo;
use super::request::{HeaderAccess, Request};

/// Builds one message. Content-Length is always written, last, by [`MessageBuilder::finish`].
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    text: String,
}

impl MessageBuilder {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(method: &Method, uri: &str) -> Self {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "{method} {} SIP/2.0\r\n", clean(uri));
        MessageBuilder { text }
    }

    /// Starts a response: `SIP/2.0 status reason`.
    pub fn response(status: u16, reason: &str) -> Self {
        let mut text = String::with_capacity(512);
        let _ = write!(text, "SIP/2.0 {status} {}\r\n", clean(reason));
        MessageBuilder { text }
    }

    /// Appends one header line.
    pub fn header(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let start = self.text.len();
        let _ = write!(self.text, "{name}: {value}");
        // Values built from peer or caller input must stay on one line.
        if self.text[start..].contains(['\r', '\n']) {
            let line: String = self.text[start..]
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                .collect();
            self.text.truncate(start);
            self.text.push_str(&line);
        }
        self.text.push_str("\r\n");
        self
    }

    /// Appends a header only when `value` is not empty.
    pub fn header_if(&mut self, name: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.header(name, value);
        }
        self
    }

    /// Writes Content-Type (when there is a body), Content-Length and the body.
    pub fn finish(mut self, content_type: &str, body: &[u8]) -> Vec<u8> {
        if !body.is_empty() {
            self.header("Content-Type", content_type);
        }
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", body.len());
        let mut bytes = self.text.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// Finishes a message without a body.
    pub fn finish_empty(self) -> Vec<u8> {
        self.finish("", &[])
    }
}

/// Replaces CR and LF so a value cannot start a new header line.
pub fn clean(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\r', '\n']) {
        value.replace(['\r', '\n'], " ").into()
    } else {
        value.into()
    }
}

/// Starts a response to `request`: status line, Via (with received/rport for `source`),
/// From, To (with `to_tag` added when the request's To has none), Call-ID and CSeq.
pub fn response_to(
    request: &Request,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
    source: SocketAddr,
) -> MessageBuilder {
    let mut builder = MessageBuilder::response(status, reason);
    write_vias(
        &mut builder,
        request.headers_named("Via"),
        &request.via,
        source,
    );
    builder.header("From", &request.from.raw);
    match (&request.to.tag, to_tag) {
        (None, Some(tag)) => builder.header("To", format_args!("{};tag={tag}", request.to.raw)),
        _ => builder.header("To", &request.to.raw),
    };
    builder.header("Call-ID", &request.call_id);
    builder.header(
        "CSeq",
        format_args!("{} {}", request.cseq.seq, request.cseq.method),
    );
    builder
}

/// Starts a response to a request that failed to parse, copying what it could.
pub fn response_to_rejected(
    info: &RejectInfo,
    status: u16,
    reason: &str,
    source: SocketAddr,
) -> MessageBuilder {
    let mut builder = MessageBuilder::response(status, reason);
    let vias = info
        .copied
        .iter()
        .filter(|(n, _)| n == "Via")
        .map(|(_, v)| v.as_str());
    write_vias(&mut builder, vias, &info.via, source);
    for (name, value) in info.copied.iter().filter(|(n, _)| n != "Via") {
        builder.header(name, value);
    }
    builder
}

fn write_vias<'a>(
    builder: &mut MessageBuilder,
    mut lines: impl Iterator<Item = &'a str>,
    top: &Via,
    source: SocketAddr,
) {
    let Some(first_line) = lines.next() else {
        return;
    };
    let mut first = top_via_with_source(top, source);
    for rest in split_list(first_line).skip(1) {
        first.push_str(", ");
        first.push_str(rest);
    }
    builder.header("Via", first);
    for line in lines {
        builder.header("Via", line);
    }
}

/// Returns the top Via with `received` (RFC 3261 §18.2.1) and a filled `rport` (RFC 3581 §4).
pub fn top_via_with_source(via: &Via, source: SocketAddr) -> String {
    let mut parts = via.raw.split(';');
    let mut text = parts.next().unwrap_or_default().trim_end().to_string();
    for param in parts {
        let name = param.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        text.push(';');
        text.push_str(param.trim());
    }
    let host_matches = via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip == source.ip());
    if !host_matches || via.rport.is_some() {
        let _ = write!(text, ";received={}", source.ip());
    }
    if via.rport.is_some() {
        let _ = write!(text, ";rport={}", source.port());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Message, parse_message};

    fn request(text: &str) -> Request {
        match parse_message(text.as_bytes(), 65535) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const OPTIONS: &str = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;rport, SIP/2.0/UDP 10.0.0.2\r\n\
        Via: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK-0\r\n\
        From: <sip:a@10.0.0.1>;tag=f1\r\nTo: <sip:b@127.0.0.1>\r\n\
        Call-ID: c1\r\nCSeq: 3 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_and_fixes_via() {
        let req = request(OPTIONS);
        let source: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let bytes = response_to(&req, 200, "OK", Some("t9"), source).finish_empty();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
        assert!(text.contains(
            "Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;received=127.0.0.1;rport=40000, SIP/2.0/UDP 10.0.0.2\r\n"
        ), "{text}");
        assert!(text.contains("Via: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK-0\r\n"));
        assert!(text.contains("To: <sip:b@127.0.0.1>;tag=t9\r\n"));
        assert!(text.contains("CSeq: 3 OPTIONS\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn matching_source_adds_no_received() {
        let via = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1").unwrap();
        let text = top_via_with_source(&via, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(text, "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1");
    }

    #[test]
    fn ipv6_received_has_no_brackets() {
        let via =
            Via::parse("SIP/2.0/UDP [2001:db8::5]:5060;received=[2001:db8::5];branch=z9hG4bKa")
                .unwrap();
        let text = top_via_with_source(&via, "[::1]:5060".parse().unwrap());
        assert_eq!(
            text,
            "SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bKa;received=::1"
        );
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let mut builder = MessageBuilder::response(486, "Busy\r\nX-Evil: 1");
        builder.header("Reason", "a\r\nX-Evil: 2");
        let text = String::from_utf8(builder.finish_empty()).unwrap();
        assert!(!text.contains("\r\nX-Evil"), "{text}");
    }

    #[test]
    fn body_sets_type_and_length() {
        let mut builder = MessageBuilder::request(&Method::Info, "sip:a@127.0.0.1");
        builder.header("Call-ID", "x");
        let text =
            String::from_utf8(builder.finish("application/dtmf-relay", b"Signal=1\r\n")).unwrap();
        assert!(text.contains(
            "Content-Type: application/dtmf-relay\r\nContent-Length: 10\r\n\r\nSignal=1\r\n"
        ));
    }
}
