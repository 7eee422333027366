//! Strict parsing of one SIP message from a datagram or a framed stream message.
//!
//! The rsip parser in `rsipstack::sip` is lenient: it reads an unparsable Content-Length as 0,
//! keeps a duplicated one, drops lines that are not UTF-8 and cannot hold an unknown method.
//! This module does the framing and the RFC 3261 §7 and §8.2 checks itself, classifies every
//! header with `rsipstack::sip::headers::make_header`, and leaves URI and name-addr parsing to
//! rsip through [`super::header`]. Nothing here indexes out of bounds or allocates from a
//! length the peer wrote.

use std::borrow::Cow;

use memchr::memmem;
use rsipstack::sip::Headers;
use rsipstack::sip::headers::make_header;

use super::header::{CSeq, NameAddr, Via, parse_uri, split_list};
use super::method::{Method, is_token};
use super::request::{Message, Request, Response};

/// Most headers accepted in one message; more is treated as an attack.
pub const MAX_HEADERS: usize = 256;

/// Why a message was not accepted, and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Status to answer with: 400, 413, 416, 505 or 513.
    pub status: u16,
    /// Reason phrase naming the defect, for the status line and logs.
    pub defect: &'static str,
    /// What a response needs, when the message is a request whose top Via parsed.
    pub reply: Option<Box<RejectInfo>>,
}

/// The parts of a rejected request that a response copies (RFC 3261 §8.2.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectInfo {
    /// Parsed top Via, where the response goes.
    pub via: Via,
    /// Via, From, To, Call-ID and CSeq lines as received, in order.
    pub copied: Vec<(String, String)>,
    /// Request method, when the method token was valid.
    pub method: Option<Method>,
}

impl ParseError {
    fn drop(defect: &'static str) -> ParseError {
        ParseError {
            status: 400,
            defect,
            reply: None,
        }
    }
}

/// One header line after unfolding; it borrows the message unless folding joined lines.
struct RawHeader<'a> {
    name: &'a str,
    value: Cow<'a, str>,
}

/// Parses one message. `data` is a whole datagram, or one message cut from a stream by
/// [`super::StreamFramer`]. Bytes beyond Content-Length are discarded (RFC 3261 §18.3);
/// `max_size` bounds the accepted length.
pub fn parse_message(data: &[u8], max_size: usize) -> Result<Message, ParseError> {
    // RFC 3261 §7.5: ignore CRLFs before the start line.
    let start = data
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(data.len());
    let data = &data[start..];
    let (head, body) = split_head(data).ok_or(ParseError::drop("No End Of Headers"))?;

    let head_text = String::from_utf8_lossy(head);
    let lossy = matches!(head_text, Cow::Owned(_));
    let mut lines = head_text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default();
    let (headers, header_defect) = collect_headers(lines);

    if start_line.starts_with("SIP/") {
        return parse_response(
            start_line,
            headers,
            body,
            header_defect.or(lossy.then_some("")),
        )
        .map(Message::Response);
    }

    let mut request = RequestParts::new(start_line, headers);
    let defect = if lossy {
        Some((400, "Invalid UTF-8 In Headers"))
    } else if data.len() > max_size {
        Some((513, "Message Too Large"))
    } else {
        header_defect.map(|d| (400, d))
    };
    if let Some((status, defect)) = defect {
        return Err(request.reject(status, defect));
    }
    request.finish(body).map(Message::Request)
}

/// Splits at the blank line; accepts bare LF line ends as well as CRLF.
fn split_head(data: &[u8]) -> Option<(&[u8], &[u8])> {
    if let Some(end) = memmem::find(data, b"\r\n\r\n") {
        return Some((&data[..end], &data[end + 4..]));
    }
    let end = memmem::find(data, b"\n\n")?;
    Some((&data[..end], &data[end + 2..]))
}

/// Unfolds header lines (RFC 3261 §7.3.1) and checks their syntax. Returns the first defect
/// but keeps collecting, so a rejection can still copy Via, From, To, Call-ID and CSeq.
fn collect_headers<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> (Vec<RawHeader<'a>>, Option<&'static str>) {
    let mut headers: Vec<RawHeader<'a>> = Vec::with_capacity(16);
    let mut defect = None;
    for line in lines {
        if line.bytes().any(|b| b < 0x20 && b != b'\t') {
            defect = defect.or(Some("Control Character In Header"));
        }
        if line.starts_with([' ', '\t']) {
            match headers.last_mut() {
                Some(last) => {
                    let value = last.value.to_mut();
                    value.push(' ');
                    value.push_str(line.trim());
                }
                None => defect = defect.or(Some("Continuation Line Without Header")),
            }
            continue;
        }
        if headers.len() == MAX_HEADERS {
            defect = defect.or(Some("Too Many Headers"));
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            defect = defect.or(Some("Header Line Without Colon"));
            continue;
        };
        let name = name.trim_end();
        if !is_token(name) {
            defect = defect.or(Some("Invalid Header Name"));
            continue;
        }
        headers.push(RawHeader {
            name,
            value: Cow::Borrowed(value.trim()),
        });
    }
    (headers, defect)
}

fn named<'a, 'b>(
    headers: &'b [RawHeader<'a>],
    long: &'b str,
    short: &'b str,
) -> impl Iterator<Item = &'b str> + 'b {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(long) || h.name.eq_ignore_ascii_case(short))
        .map(|h| h.value.as_ref())
}

/// The single value of a header that must appear exactly once.
fn single<'b>(
    headers: &'b [RawHeader<'_>],
    long: &'b str,
    short: &'b str,
    missing: &'static str,
    duplicate: &'static str,
) -> Result<&'b str, &'static str> {
    let mut values = named(headers, long, short);
    let first = values.next().ok_or(missing)?;
    if values.next().is_some() {
        return Err(duplicate);
    }
    Ok(first)
}

/// Checks Content-Length against the bytes present and cuts the body (RFC 3261 §18.3, §20.14).
fn frame_body<'a>(headers: &[RawHeader<'_>], body: &'a [u8]) -> Result<&'a [u8], &'static str> {
    let mut values = named(headers, "Content-Length", "l");
    let Some(value) = values.next() else {
        return Ok(body);
    };
    if values.next().is_some() {
        return Err("Duplicate Content-Length");
    }
    let length = parse_length(value).ok_or("Invalid Content-Length")?;
    if length > body.len() {
        return Err("Content-Length Exceeds Body");
    }
    Ok(&body[..length])
}

/// Parses a Content-Length value without overflow; 19 digits is far beyond any real body.
pub fn parse_length(value: &str) -> Option<usize> {
    let value = value.trim();
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The fields every message needs, checked in the order RFC 3261 §8.2 suggests.
struct Core {
    via: Via,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: CSeq,
}

fn parse_core(headers: &[RawHeader<'_>], via: Option<Via>) -> Result<Core, &'static str> {
    let via = match via {
        Some(via) => via,
        None => {
            let top = named(headers, "Via", "v")
                .next()
                .ok_or("Missing Via Header")?;
            Via::parse(top).map_err(|_| "Invalid Via Header")?
        }
    };
    let from = single(
        headers,
        "From",
        "f",
        "Missing From Header",
        "Duplicate From",
    )?;
    let from = NameAddr::parse(from).map_err(|_| "Invalid From Header")?;
    let to = single(headers, "To", "t", "Missing To Header", "Duplicate To")?;
    let to = NameAddr::parse(to).map_err(|_| "Invalid To Header")?;
    let call_id = single(
        headers,
        "Call-ID",
        "i",
        "Missing Call-ID",
        "Duplicate Call-ID",
    )?;
    if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err("Invalid Call-ID");
    }
    let cseq = single(headers, "CSeq", "CSeq", "Missing CSeq", "Duplicate CSeq")?;
    let cseq = CSeq::parse(cseq).map_err(|_| "Invalid CSeq")?;
    for (long, short, duplicate) in [
        ("Content-Type", "c", "Duplicate Content-Type"),
        ("Max-Forwards", "Max-Forwards", "Duplicate Max-Forwards"),
    ] {
        if named(headers, long, short).nth(1).is_some() {
            return Err(duplicate);
        }
    }
    if let Some(value) = named(headers, "Max-Forwards", "Max-Forwards").next() {
        // RFC 3261 §20.22 with the 0-255 range of RFC 4475 §3.1.2.4.
        let valid = value.len() <= 3 && value.parse::<u16>().is_ok_and(|v| v <= 255);
        if !valid {
            return Err("Invalid Max-Forwards");
        }
    }
    Ok(Core {
        via,
        from,
        to,
        call_id: call_id.to_string(),
        cseq,
    })
}

fn into_headers(raw: Vec<RawHeader<'_>>) -> Headers {
    let list = raw
        .into_iter()
        .map(|h| make_header(h.name, h.value.into_owned()))
        .collect::<Vec<_>>();
    Headers::from(list)
}

/// A request start line and headers on the way to a [`Request`] or a rejection.
struct RequestParts<'a> {
    start_line: &'a str,
    headers: Vec<RawHeader<'a>>,
    via: Option<Via>,
    method: Option<Method>,
}

impl<'a> RequestParts<'a> {
    fn new(start_line: &'a str, headers: Vec<RawHeader<'a>>) -> Self {
        let via = named(&headers, "Via", "v")
            .next()
            .and_then(|v| Via::parse(v).ok());
        let method = start_line.split(' ').next().and_then(Method::from_token);
        RequestParts {
            start_line,
            headers,
            via,
            method,
        }
    }

    fn reject(&mut self, status: u16, defect: &'static str) -> ParseError {
        let reply = self.via.take().map(|via| {
            Box::new(RejectInfo {
                via,
                copied: self.copied_headers(),
                method: self.method.clone(),
            })
        });
        ParseError {
            status,
            defect,
            reply,
        }
    }

    fn copied_headers(&self) -> Vec<(String, String)> {
        const COPIED: [(&str, &str); 5] = [
            ("Via", "v"),
            ("From", "f"),
            ("To", "t"),
            ("Call-ID", "i"),
            ("CSeq", "CSeq"),
        ];
        let mut copied = Vec::new();
        for (long, short) in COPIED {
            for value in named(&self.headers, long, short) {
                copied.push((long.to_string(), value.to_string()));
            }
        }
        copied
    }

    fn finish(mut self, body: &[u8]) -> Result<Request, ParseError> {
        let (method, uri_text) = match self.parse_start_line() {
            Ok(parts) => parts,
            Err((status, defect)) => return Err(self.reject(status, defect)),
        };
        let uri = match parse_uri(uri_text) {
            Ok(uri) => uri,
            Err(_) if !uri_text.contains(':') => {
                return Err(self.reject(400, "Invalid Request-URI"));
            }
            Err("URI scheme is not sip, sips or tel") => {
                return Err(self.reject(416, "Unsupported URI Scheme"));
            }
            Err(_) => return Err(self.reject(400, "Invalid Request-URI")),
        };
        let core = match parse_core(&self.headers, self.via.clone()) {
            Ok(core) => core,
            Err(defect) => return Err(self.reject(400, defect)),
        };
        if core.cseq.method != method {
            return Err(self.reject(400, "CSeq Method Mismatch"));
        }
        let body = match frame_body(&self.headers, body) {
            Ok(body) => body.to_vec(),
            Err(defect) => return Err(self.reject(400, defect)),
        };
        let uri_text = uri_text.to_string();
        Ok(Request {
            method,
            uri,
            uri_text,
            headers: into_headers(self.headers),
            body,
            via: core.via,
            from: core.from,
            to: core.to,
            call_id: core.call_id,
            cseq: core.cseq,
        })
    }

    /// Splits `Method SP Request-URI SP SIP-Version` (RFC 3261 §7.1).
    fn parse_start_line(&self) -> Result<(Method, &'a str), (u16, &'static str)> {
        let mut parts = self.start_line.split(' ');
        let (Some(method), Some(uri), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err((400, "Malformed Request-Line"));
        };
        let method = Method::from_token(method).ok_or((400, "Invalid Method"))?;
        if version != "SIP/2.0" {
            // RFC 3261 §8.2.2.2 hands other versions to 505; garbage is a plain 400.
            let looks_like_version = version
                .strip_prefix("SIP/")
                .is_some_and(|v| v.split('.').all(|n| n.parse::<u16>().is_ok()));
            return Err(if looks_like_version {
                (505, "Version Not Supported")
            } else {
                (400, "Malformed SIP-Version")
            });
        }
        Ok((method, uri))
    }
}

fn parse_response(
    status_line: &str,
    headers: Vec<RawHeader<'_>>,
    body: &[u8],
    defect: Option<&'static str>,
) -> Result<Response, ParseError> {
    if let Some(defect) = defect {
        return Err(ParseError::drop(defect));
    }
    let mut parts = status_line.splitn(3, ' ');
    let (Some("SIP/2.0"), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ParseError::drop("Malformed Status-Line"));
    };
    let reason = parts.next().unwrap_or_default().trim().to_string();
    let status = match code.parse::<u16>() {
        Ok(status @ 100..=699) if code.len() == 3 => status,
        _ => return Err(ParseError::drop("Invalid Status Code")),
    };
    let core = parse_core(&headers, None).map_err(ParseError::drop)?;
    let body = frame_body(&headers, body)
        .map_err(ParseError::drop)?
        .to_vec();
    Ok(Response {
        status,
        reason,
        headers: into_headers(headers),
        body,
        via: core.via,
        from: core.from,
        to: core.to,
        call_id: core.call_id,
        cseq: core.cseq,
    })
}

/// Counts Via values across lines, for responses that must carry exactly one (RFC 3261 §8.1.3.3).
pub fn via_count(headers: &Headers) -> usize {
    headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case("Via"))
        .map(|h| split_list(h.value()).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::HeaderAccess;

    const INVITE: &str = "INVITE sip:+12025550100@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport\r\n\
        Max-Forwards: 70\r\n\
        From: \"Test\" <sip:+12025550142@127.0.0.1>;tag=ft\r\n\
        To: <sip:+12025550100@127.0.0.1>\r\n\
        Call-ID: abc@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn request(text: &str) -> Request {
        match parse_message(text.as_bytes(), 65535) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn rejection(text: &str) -> ParseError {
        parse_message(text.as_bytes(), 65535).expect_err("accepted")
    }

    fn with(text: &str, from: &str, to: &str) -> String {
        text.replacen(from, to, 1)
    }

    #[test]
    fn valid_invite_parses() {
        let r = request(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.call_id, "abc@127.0.0.1");
        assert_eq!(r.from.tag.as_deref(), Some("ft"));
        assert_eq!(r.body, b"v=0\n");
        assert!(r.has_sdp());
        assert_eq!(r.via.rport, Some(None));
    }

    #[test]
    fn extra_datagram_bytes_are_cut() {
        let r = request(&format!("{INVITE}junk"));
        assert_eq!(r.body, b"v=0\n");
    }

    #[test]
    fn compact_and_folded_headers() {
        let text = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\
            v: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-2\r\n\
            f: <sip:a@127.0.0.1>;tag=1\r\n\
            t: <sip:b@127.0.0.1>\r\n\
            i: c2\r\n\
            CSeq: 7\r\n OPTIONS\r\n\
            Subject: first\r\n\tsecond\r\n\
            l: 0\r\n\r\n";
        let r = request(text);
        assert_eq!(r.cseq.seq, 7);
        assert_eq!(r.call_id, "c2");
        assert_eq!(r.header("Subject"), Some("first second"));
    }

    #[test]
    fn unknown_method_parses() {
        let text = INVITE
            .replace("INVITE sip", "FOO sip")
            .replace("1 INVITE", "1 FOO");
        assert_eq!(request(&text).method, Method::Extension("FOO".into()));
    }

    #[test]
    fn content_length_defects() {
        let cases = [
            (
                "Content-Length: 4",
                "Content-Length: -1",
                "Invalid Content-Length",
            ),
            (
                "Content-Length: 4",
                "Content-Length: 512",
                "Content-Length Exceeds Body",
            ),
            (
                "Content-Length: 4",
                "Content-Length: 99999999999999999999",
                "Invalid Content-Length",
            ),
            (
                "Content-Length: 4",
                "Content-Length: 4\r\nl: 4",
                "Duplicate Content-Length",
            ),
        ];
        for (from, to, defect) in cases {
            let err = rejection(&with(INVITE, from, to));
            assert_eq!(err.status, 400, "{to}");
            assert_eq!(err.defect, defect, "{to}");
            assert!(err.reply.is_some(), "{to}");
        }
    }

    #[test]
    fn header_defects_name_the_header() {
        let cases = [
            ("1 INVITE", "1 OPTIONS", "CSeq Method Mismatch"),
            ("1 INVITE", "36893488147419103232 INVITE", "Invalid CSeq"),
            (
                "Max-Forwards: 70",
                "Max-Forwards: 300",
                "Invalid Max-Forwards",
            ),
            ("Call-ID: abc@127.0.0.1", "Call-ID:", "Invalid Call-ID"),
            (
                "To: <sip:+12025550100@127.0.0.1>\r\n",
                "",
                "Missing To Header",
            ),
            (";tag=ft", ";tag=ft\r\nFrom: <sip:x@y>", "Duplicate From"),
            (
                "<sip:+12025550142@127.0.0.1>",
                "<sip:+1202555 0142@127.0.0.1",
                "Invalid From Header",
            ),
        ];
        for (from, to, defect) in cases {
            let err = rejection(&with(INVITE, from, to));
            assert_eq!((err.status, err.defect), (400, defect), "{to}");
        }
    }

    #[test]
    fn rejection_copies_core_headers() {
        let err = rejection(&with(INVITE, "1 INVITE", "1 OPTIONS"));
        let reply = err.reply.unwrap();
        let names: Vec<_> = reply.copied.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Via", "From", "To", "Call-ID", "CSeq"]);
        assert_eq!(reply.via.host, "127.0.0.1");
        assert_eq!(reply.method, Some(Method::Invite));
    }

    #[test]
    fn version_and_uri_errors() {
        let err = rejection(&INVITE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia"));
        assert_eq!(err.status, 505);
        let err = rejection(&INVITE.replace("@127.0.0.1 SIP", "@2001:db8::10 SIP"));
        assert_eq!((err.status, err.defect), (400, "Invalid Request-URI"));
        let err = rejection(&INVITE.replace("sip:+12025550100@127.0.0.1 SIP", "http://x SIP"));
        assert_eq!(err.status, 416);
    }

    #[test]
    fn unusable_via_means_no_reply() {
        let err = rejection(&with(INVITE, "SIP/2.0/UDP 127.0.0.1:5070", "garbage"));
        assert!(err.reply.is_none());
        assert_eq!(err.defect, "Invalid Via Header");
    }

    #[test]
    fn truncated_binary_is_dropped() {
        let err = parse_message(b"SIP/7.9 7\0\0", 65535).unwrap_err();
        assert!(err.reply.is_none());
    }

    #[test]
    fn oversized_message_gets_513() {
        let err = parse_message(INVITE.as_bytes(), 100).unwrap_err();
        assert_eq!(err.status, 513);
        assert!(err.reply.is_some());
    }

    #[test]
    fn response_parses_and_empty_warning_is_kept() {
        let text = "SIP/2.0 180 Ringing\r\n\
            Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-3\r\n\
            From: <sip:a@127.0.0.1>;tag=1\r\n\
            To: <sip:b@127.0.0.1>;tag=2\r\n\
            Call-ID: c3\r\nCSeq: 1 INVITE\r\nWarning:\r\nContent-Length: 0\r\n\r\n";
        let Ok(Message::Response(r)) = parse_message(text.as_bytes(), 65535) else {
            panic!("not a response");
        };
        assert_eq!(r.status, 180);
        assert_eq!(r.to.tag.as_deref(), Some("2"));
        assert_eq!(r.header("Warning"), Some(""));
    }

    #[test]
    fn bad_responses_are_dropped() {
        for text in [
            "SIP/2.0 99 X\r\n\r\n",
            "SIP/2.0 abc\r\n\r\n",
            "SIP/2.0 200 OK\r\n\r\n",
        ] {
            let err = parse_message(text.as_bytes(), 65535).unwrap_err();
            assert!(err.reply.is_none(), "{text}");
        }
    }

    #[test]
    fn control_character_in_folded_line() {
        let text = INVITE.replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n x\x1d\r\n");
        assert_eq!(rejection(&text).defect, "Control Character In Header");
    }

    #[test]
    fn long_call_id_is_accepted() {
        let long = "A".repeat(4096);
        let r = request(&with(INVITE, "abc@127.0.0.1", &long));
        assert_eq!(r.call_id.len(), 4096);
    }

    #[test]
    fn arbitrary_prefixes_never_panic() {
        let bytes = INVITE.as_bytes();
        for end in 0..bytes.len() {
            let _ = parse_message(&bytes[..end], 65535);
        }
        for (i, byte) in [0u8, 0xff, b':', b'\n', b'[', b'<', b'"', b';']
            .iter()
            .enumerate()
        {
            for pos in (i..bytes.len()).step_by(7) {
                let mut copy = bytes.to_vec();
                copy[pos] = *byte;
                let _ = parse_message(&copy, 65535);
            }
        }
    }
}
