//! SDP parser (RFC 4566 §5), safe on arbitrary input.
//!
//! Lenient where real peers deviate: LF, CRLF or CR line ends, a last line without one,
//! surrounding whitespace, an empty or missing `s=`, malformed `b=` and `t=` lines (skipped),
//! lines of unknown type (kept). Strict where a mistake would change where media goes or what
//! we write back: `v=`, `o=`, `c=` and `m=` must be well formed, and the tokens of an `m=`
//! line, which an answer echoes, must be RFC 4566 tokens.

use std::borrow::Cow;

use thiserror::Error;
use tracing::trace;

use super::model::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, SessionDescription, Timing,
    UnknownLine,
};

/// Largest description accepted, in bytes. A SIP message is at most this big by default.
pub const MAX_SDP_LEN: usize = 65_535;

/// Most `m=` lines accepted. The answer repeats every `m=` line, so this bounds its size too.
pub const MAX_MEDIA: usize = 32;

/// Error from parsing a session description. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body is larger than [`MAX_SDP_LEN`].
    #[error("session description of {len} bytes is larger than {MAX_SDP_LEN}")]
    TooLarge {
        /// Body size in bytes.
        len: usize,
    },
    /// The body has no lines.
    #[error("session description is empty")]
    Empty,
    /// The first line is not `v=`.
    #[error("session description does not start with v= (line {line})")]
    MissingVersion {
        /// Line number of the first line.
        line: usize,
    },
    /// `v=` is not 0.
    #[error("unsupported SDP version on line {line}; only v=0 exists")]
    UnsupportedVersion {
        /// Line number.
        line: usize,
    },
    /// A line is not `<letter>=<text>`.
    #[error("line {line} is not of the form <type>=<value>")]
    InvalidLine {
        /// Line number.
        line: usize,
    },
    /// A line that may appear once appears again (`v=`, `o=`, `s=` or session-level `c=`).
    #[error("duplicate {kind}= line on line {line}")]
    DuplicateLine {
        /// Line type letter.
        kind: char,
        /// Line number of the second occurrence.
        line: usize,
    },
    /// `o=` does not have its six fields.
    #[error("invalid o= line on line {line}")]
    InvalidOrigin {
        /// Line number.
        line: usize,
    },
    /// There is no `o=` line.
    #[error("session description has no o= line")]
    MissingOrigin,
    /// A line other than `s=` comes before `o=`, which RFC 4566 §5 puts second.
    #[error("line {line} comes before the o= line")]
    LineBeforeOrigin {
        /// Line number.
        line: usize,
    },
    /// `c=` is malformed.
    #[error("invalid c= line on line {line}")]
    InvalidConnection {
        /// Line number.
        line: usize,
    },
    /// `m=` is malformed.
    #[error("invalid m= line on line {line}")]
    InvalidMedia {
        /// Line number.
        line: usize,
    },
    /// More than [`MAX_MEDIA`] `m=` lines.
    #[error("more than {MAX_MEDIA} m= lines")]
    TooManyMedia,
}

impl SessionDescription {
    /// Parses a session description. It does not panic on any input, which the seeded random
    /// tests in `tests/sdp/robustness.rs` exercise. The module documentation lists what is
    /// accepted.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { len: text.len() });
        }
        parse_text(text)
    }

    /// Parses a message body. Invalid UTF-8, which peers put in `s=` or `i=` now and then, is
    /// replaced by U+FFFD instead of failing the call.
    pub fn parse_bytes(body: &[u8]) -> Result<SessionDescription, SdpError> {
        if body.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge { len: body.len() });
        }
        // The replacement characters can make the text longer than the body, so the size
        // limit applies to the body only.
        let text: Cow<'_, str> = String::from_utf8_lossy(body);
        parse_text(&text)
    }
}

fn parse_text(text: &str) -> Result<SessionDescription, SdpError> {
    let mut parser = Parser::default();
    for (number, line) in lines(text) {
        parser.line(number, line)?;
    }
    parser.finish()
}

/// Non-blank lines with their 1-based numbers. A line ends at LF, CRLF or a lone CR, and the
/// last line needs no end at all.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .flat_map(|(index, line)| line.split('\r').map(move |part| (index + 1, part.trim())))
        .filter(|(_, line)| !line.is_empty())
}

#[derive(Default)]
struct Parser {
    seen_version: bool,
    origin: Option<Origin>,
    session_name: Option<String>,
    description: Option<SessionDescription>,
}

impl Parser {
    fn line(&mut self, number: usize, line: &str) -> Result<(), SdpError> {
        let (kind, value) = split_line(number, line)?;
        if !self.seen_version {
            if kind != 'v' {
                return Err(SdpError::MissingVersion { line: number });
            }
            if value != "0" {
                return Err(SdpError::UnsupportedVersion { line: number });
            }
            self.seen_version = true;
            return Ok(());
        }
        match self.description.as_mut() {
            None => self.session_line(number, kind, value),
            Some(description) => {
                if kind == 'v' {
                    return Err(SdpError::DuplicateLine { kind, line: number });
                }
                if kind != 'm'
                    && let Some(media) = description.media.last_mut()
                {
                    return media_line(media, number, kind, value);
                }
                session_body_line(description, number, kind, value)
            }
        }
    }

    /// Lines before the session is complete: `o=` and `s=` come first in practice, but the
    /// model is only built once `o=` is known, so other lines may precede `s=`.
    fn session_line(&mut self, number: usize, kind: char, value: &str) -> Result<(), SdpError> {
        match kind {
            'v' => Err(SdpError::DuplicateLine { kind, line: number }),
            'o' => {
                if self.origin.is_some() {
                    return Err(SdpError::DuplicateLine { kind, line: number });
                }
                self.origin = Some(parse_origin(number, value)?);
                self.start_description();
                Ok(())
            }
            's' => {
                if self.session_name.is_some() {
                    return Err(SdpError::DuplicateLine { kind, line: number });
                }
                self.session_name = Some(value.to_owned());
                Ok(())
            }
            _ => Err(SdpError::LineBeforeOrigin { line: number }),
        }
    }

    fn start_description(&mut self) {
        let Some(origin) = self.origin.clone() else {
            return;
        };
        self.description = Some(SessionDescription {
            origin,
            session_name: self.session_name.clone().unwrap_or_default(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: Vec::new(),
            time_zones: None,
            encryption_key: None,
            attributes: Vec::new(),
            unknown_lines: Vec::new(),
            media: Vec::new(),
        });
    }

    fn finish(self) -> Result<SessionDescription, SdpError> {
        if !self.seen_version {
            return Err(SdpError::Empty);
        }
        self.description.ok_or(SdpError::MissingOrigin)
    }
}

/// Splits `<type>=<value>`. The type is one ASCII letter.
fn split_line(number: usize, line: &str) -> Result<(char, &str), SdpError> {
    let bytes = line.as_bytes();
    match (bytes.first(), bytes.get(1)) {
        (Some(&kind), Some(b'=')) if kind.is_ascii_alphabetic() => {
            // Both bytes are ASCII, so index 2 is a character boundary.
            let value = line.get(2..).unwrap_or_default().trim();
            Ok((char::from(kind), value))
        }
        _ => Err(SdpError::InvalidLine { line: number }),
    }
}

/// Handles a session-level line after `o=`, including the `m=` lines that open media
/// sections.
fn session_body_line(
    description: &mut SessionDescription,
    number: usize,
    kind: char,
    value: &str,
) -> Result<(), SdpError> {
    match kind {
        'o' | 'v' => return Err(SdpError::DuplicateLine { kind, line: number }),
        's' => {
            // `s=` after other lines: take it unless one was seen before `o=` or here.
            if !description.session_name.is_empty() {
                return Err(SdpError::DuplicateLine { kind, line: number });
            }
            description.session_name = value.to_owned();
        }
        'i' => description.information = Some(value.to_owned()),
        'u' => description.uri = Some(value.to_owned()),
        'e' => description.emails.push(value.to_owned()),
        'p' => description.phones.push(value.to_owned()),
        'c' => {
            if description.connection.is_some() {
                return Err(SdpError::DuplicateLine { kind, line: number });
            }
            description.connection = Some(parse_connection(number, value)?);
        }
        'b' => description
            .bandwidths
            .extend(parse_bandwidth(number, value)),
        't' => description.timings.extend(parse_timing(number, value)),
        'r' => match description.timings.last_mut() {
            Some(timing) => timing.repeats.push(value.to_owned()),
            None => description.unknown_lines.push(unknown(kind, value)),
        },
        'z' => description.time_zones = Some(value.to_owned()),
        'k' => description.encryption_key = Some(value.to_owned()),
        'a' => description.attributes.extend(parse_attribute(value)),
        'm' => {
            if description.media.len() >= MAX_MEDIA {
                return Err(SdpError::TooManyMedia);
            }
            description.media.push(parse_media(number, value)?);
        }
        _ => description.unknown_lines.push(unknown(kind, value)),
    }
    Ok(())
}

fn media_line(
    media: &mut MediaDescription,
    number: usize,
    kind: char,
    value: &str,
) -> Result<(), SdpError> {
    match kind {
        'i' => media.information = Some(value.to_owned()),
        'c' => media.connections.push(parse_connection(number, value)?),
        'b' => media.bandwidths.extend(parse_bandwidth(number, value)),
        'k' => media.encryption_key = Some(value.to_owned()),
        'a' => media.attributes.extend(parse_attribute(value)),
        // Session-only or unknown types inside a media section are kept where they were.
        _ => media.unknown_lines.push(unknown(kind, value)),
    }
    Ok(())
}

fn unknown(kind: char, value: &str) -> UnknownLine {
    UnknownLine {
        kind,
        value: value.to_owned(),
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`
/// (RFC 4566 §5.2). Runs of spaces are accepted between fields.
fn parse_origin(number: usize, value: &str) -> Result<Origin, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().take(7).collect();
    let [
        username,
        session_id,
        session_version,
        net_type,
        addr_type,
        address,
    ] = fields[..]
    else {
        return Err(SdpError::InvalidOrigin { line: number });
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: session_id.to_owned(),
        session_version: session_version.to_owned(),
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 4566 §5.7). IPv4 multicast addresses
/// carry `/<ttl>[/<count>]`, IPv6 ones `/<count>`. IPv6 literals have no brackets in SDP; a
/// bracketed one is invalid, because writing it back would produce an invalid answer.
fn parse_connection(number: usize, value: &str) -> Result<Connection, SdpError> {
    let invalid = || SdpError::InvalidConnection { line: number };
    let fields: Vec<&str> = value.split_whitespace().take(4).collect();
    let [net_type, addr_type, full_address] = fields[..] else {
        return Err(invalid());
    };
    let mut parts = full_address.split('/');
    let address = parts.next().filter(|address| is_address_text(address));
    let Some(address) = address else {
        return Err(invalid());
    };
    let suffix: Vec<&str> = parts.take(3).collect();
    let is_ip4 = addr_type.eq_ignore_ascii_case("IP4");
    let (ttl, address_count) = match (is_ip4, &suffix[..]) {
        (_, []) => (None, None),
        (true, &[ttl]) => (Some(ttl.parse().map_err(|_| invalid())?), None),
        (true, &[ttl, count]) => (
            Some(ttl.parse().map_err(|_| invalid())?),
            Some(count.parse().map_err(|_| invalid())?),
        ),
        (false, &[count]) => (None, Some(count.parse().map_err(|_| invalid())?)),
        _ => return Err(invalid()),
    };
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
        ttl,
        address_count,
    })
}

/// Characters of an IP literal or a host name.
fn is_address_text(address: &str) -> bool {
    !address.is_empty()
        && address
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b':' | b'-' | b'%'))
}

/// `b=<bwtype>:<bandwidth>` (RFC 4566 §5.8). A malformed line is skipped: bandwidth is advice.
fn parse_bandwidth(number: usize, value: &str) -> Option<Bandwidth> {
    let parsed = value.split_once(':').and_then(|(kind, amount)| {
        let amount = amount.trim().parse().ok()?;
        is_token(kind.trim()).then(|| Bandwidth {
            kind: kind.trim().to_owned(),
            value: amount,
        })
    });
    if parsed.is_none() {
        trace!(line = number, "skipping malformed b= line");
    }
    parsed
}

/// `t=<start-time> <stop-time>` (RFC 4566 §5.9). A malformed line is skipped: voicegate treats
/// every session as unbounded.
fn parse_timing(number: usize, value: &str) -> Option<Timing> {
    let mut fields = value.split_whitespace();
    let start = fields.next().and_then(|start| start.parse().ok());
    let stop = fields.next().and_then(|stop| stop.parse().ok());
    match (start, stop, fields.next()) {
        (Some(start), Some(stop), None) => Some(Timing {
            start,
            stop,
            repeats: Vec::new(),
        }),
        _ => {
            trace!(line = number, "skipping malformed t= line");
            None
        }
    }
}

/// `a=<name>[:<value>]` (RFC 4566 §5.13). An attribute without a name is skipped.
fn parse_attribute(value: &str) -> Option<Attribute> {
    let (name, attribute_value) = match value.split_once(':') {
        Some((name, attribute_value)) => (name.trim(), Some(attribute_value.trim().to_owned())),
        None => (value.trim(), None),
    };
    (!name.is_empty()).then(|| Attribute {
        name: name.to_owned(),
        value: attribute_value,
    })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 4566 §5.14). Every field must be a
/// token because an answer copies media, proto and formats back to the peer. An empty format
/// list is accepted for a rejected stream, which some peers write that way.
fn parse_media(number: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let invalid = || SdpError::InvalidMedia { line: number };
    let mut fields = value.split_whitespace();
    let kind = fields
        .next()
        .filter(|kind| is_token(kind))
        .ok_or_else(invalid)?;
    let port_field = fields.next().ok_or_else(invalid)?;
    let protocol = fields
        .next()
        .filter(|protocol| protocol.split('/').all(is_token))
        .ok_or_else(invalid)?;

    let (port, port_count) = match port_field.split_once('/') {
        Some((port, count)) => (
            port.parse().map_err(|_| invalid())?,
            Some(count.parse().map_err(|_| invalid())?),
        ),
        None => (port_field.parse().map_err(|_| invalid())?, None),
    };

    let mut formats = Vec::new();
    for format in fields {
        if !is_token(format) {
            return Err(invalid());
        }
        formats.push(format.to_owned());
    }
    if formats.is_empty() && port != 0 {
        return Err(invalid());
    }

    let mut media = MediaDescription::new(kind, port, protocol, formats);
    media.port_count = port_count;
    Ok(media)
}

/// RFC 4566 §9 `token`: visible ASCII except the separators `"`, `(`, `)`, `,`, `/`, `:`, `;`,
/// `<`, `=`, `>`, `?`, `@`, `[`, `\`, `]`.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|byte| {
            matches!(byte, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::Direction;

    const BASIC: &str = "v=0\r\n\
        o=carrier 1206 1 IN IP4 203.0.113.5\r\n\
        s=-\r\n\
        c=IN IP4 203.0.113.5\r\n\
        t=0 0\r\n\
        m=audio 40000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=sendrecv\r\n";

    #[test]
    fn parse_basic_offer() {
        let sdp = SessionDescription::parse(BASIC).unwrap();
        assert_eq!(sdp.origin.username, "carrier");
        assert_eq!(sdp.origin.session_id, "1206");
        assert_eq!(sdp.origin.session_version, "1");
        assert_eq!(sdp.session_name, "-");
        assert_eq!(sdp.connection.as_ref().unwrap().address, "203.0.113.5");
        assert_eq!(sdp.timings.len(), 1);
        assert_eq!(sdp.media.len(), 1);
        let audio = &sdp.media[0];
        assert_eq!(audio.kind, "audio");
        assert_eq!(audio.port, 40000);
        assert_eq!(audio.protocol, "RTP/AVP");
        assert_eq!(audio.formats, ["0", "101"]);
        assert_eq!(audio.attributes.len(), 4);
        assert_eq!(audio.direction(), Some(Direction::SendRecv));
    }

    #[test]
    fn parse_lf_only_and_missing_last_newline() {
        let text = BASIC
            .replace("\r\n", "\n")
            .replace("a=sendrecv\n", "a=sendonly");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.media[0].direction(), Some(Direction::SendOnly));
    }

    #[test]
    fn parse_lone_cr_line_ends() {
        let text = BASIC.replace("\r\n", "\r");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.media[0].formats, ["0", "101"]);
    }

    #[test]
    fn parse_ipv6_connection_without_brackets() {
        let text = BASIC.replace("c=IN IP4 203.0.113.5", "c=IN IP6 2001:db8::5");
        let sdp = SessionDescription::parse(&text).unwrap();
        let connection = sdp.connection.unwrap();
        assert_eq!(connection.addr_type, "IP6");
        assert_eq!(connection.ip(), Some("2001:db8::5".parse().unwrap()));
    }

    #[test]
    fn parse_rejects_bracketed_ipv6() {
        let text = BASIC.replace("c=IN IP4 203.0.113.5", "c=IN IP6 [2001:db8::5]");
        let error = SessionDescription::parse(&text).unwrap_err();
        assert_eq!(error, SdpError::InvalidConnection { line: 4 });
    }

    #[test]
    fn parse_multicast_suffixes() {
        let text = BASIC.replace("c=IN IP4 203.0.113.5", "c=IN IP4 233.252.0.1/127/3");
        let connection = SessionDescription::parse(&text)
            .unwrap()
            .connection
            .unwrap();
        assert_eq!(connection.address, "233.252.0.1");
        assert_eq!(connection.ttl, Some(127));
        assert_eq!(connection.address_count, Some(3));

        let text = BASIC.replace("c=IN IP4 203.0.113.5", "c=IN IP6 ff0e::1/2");
        let connection = SessionDescription::parse(&text)
            .unwrap()
            .connection
            .unwrap();
        assert_eq!(connection.ttl, None);
        assert_eq!(connection.address_count, Some(2));

        let text = BASIC.replace("c=IN IP4 203.0.113.5", "c=IN IP4 233.252.0.1/300");
        assert!(SessionDescription::parse(&text).is_err());
    }

    #[test]
    fn parse_media_level_connection() {
        let text = BASIC.replace(
            "a=sendrecv\r\n",
            "a=sendrecv\r\nc=IN IP4 192.0.2.7\r\nm=video 0 RTP/AVP 99\r\n",
        );
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.media[0].connections[0].address, "192.0.2.7");
        assert_eq!(
            sdp.connection_for(&sdp.media[0]).unwrap().address,
            "192.0.2.7"
        );
        assert_eq!(
            sdp.connection_for(&sdp.media[1]).unwrap().address,
            "203.0.113.5"
        );
    }

    #[test]
    fn parse_keeps_out_of_range_payload_type_token() {
        let text = BASIC.replace("RTP/AVP 0 101", "RTP/AVP 4294967296 0");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.media[0].formats, ["4294967296", "0"]);
    }

    #[test]
    fn parse_rejects_non_token_media_fields() {
        for bad in [
            "m=audio 40000 RTP/AVP 0 \"x\"",
            "m=audio 70000 RTP/AVP 0",
            "m=audio abc RTP/AVP 0",
            "m=audio 40000",
            "m=audio 40000 RTP//AVP 0",
            "m=audio 40000 RTP/AVP",
            "m=audio 40000/x RTP/AVP 0",
        ] {
            let text = BASIC.replace("m=audio 40000 RTP/AVP 0 101", bad);
            assert!(
                matches!(
                    SessionDescription::parse(&text),
                    Err(SdpError::InvalidMedia { line: 6 })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_accepts_rejected_stream_without_formats() {
        let text = format!("{BASIC}m=video 0 RTP/AVP\r\n");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert!(sdp.media[1].formats.is_empty());
    }

    #[test]
    fn parse_port_count() {
        let text = BASIC.replace("m=audio 40000 RTP/AVP", "m=audio 40000/2 RTP/AVP");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.media[0].port_count, Some(2));
    }

    #[test]
    fn parse_skips_malformed_advisory_lines() {
        let text = BASIC.replace("t=0 0\r\n", "t=now never\r\nb=AS:abc\r\nb=AS:64\r\n");
        let sdp = SessionDescription::parse(&text).unwrap();
        assert!(sdp.timings.is_empty());
        assert_eq!(sdp.bandwidths.len(), 1);
        assert_eq!(sdp.bandwidths[0].value, 64);
    }

    #[test]
    fn parse_keeps_unknown_lines() {
        let text = BASIC.replace("t=0 0\r\n", "t=0 0\r\ny=0123\r\n") + "x=media-level\r\n";
        let sdp = SessionDescription::parse(&text).unwrap();
        assert_eq!(sdp.unknown_lines[0].kind, 'y');
        assert_eq!(sdp.unknown_lines[0].value, "0123");
        assert_eq!(sdp.media[0].unknown_lines[0].kind, 'x');
    }

    #[test]
    fn parse_requires_version_first() {
        let text = BASIC.replace("v=0\r\n", "");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::MissingVersion { line: 1 })
        );
        let text = BASIC.replace("v=0", "v=1");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::UnsupportedVersion { line: 1 })
        );
    }

    #[test]
    fn parse_bytes_limits_body_not_text() {
        let mut body = BASIC.as_bytes().to_vec();
        body.extend(b"a=x:");
        body.resize(MAX_SDP_LEN, 0xFF);
        assert!(SessionDescription::parse_bytes(&body).is_ok());
        body.push(b'\n');
        assert_eq!(
            SessionDescription::parse_bytes(&body),
            Err(SdpError::TooLarge {
                len: MAX_SDP_LEN + 1
            })
        );
    }

    #[test]
    fn parse_requires_origin_second() {
        let text = BASIC
            .replace("s=-\r\n", "")
            .replace("v=0\r\n", "v=0\r\nc=IN IP4 192.0.2.1\r\n");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::LineBeforeOrigin { line: 2 })
        );
    }

    #[test]
    fn parse_requires_origin() {
        assert_eq!(
            SessionDescription::parse("v=0\r\ns=-\r\n"),
            Err(SdpError::MissingOrigin)
        );
        let text = BASIC.replace("o=carrier 1206 1 IN IP4 203.0.113.5\r\n", "");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::LineBeforeOrigin { line: 3 })
        );
        let text = BASIC.replace("o=carrier 1206 1 IN IP4 203.0.113.5", "o=carrier 1206 1");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::InvalidOrigin { line: 2 })
        );
    }

    #[test]
    fn parse_rejects_duplicates() {
        let text = BASIC.replace("s=-\r\n", "s=-\r\no=x 1 1 IN IP4 192.0.2.1\r\n");
        assert!(matches!(
            SessionDescription::parse(&text),
            Err(SdpError::DuplicateLine { kind: 'o', .. })
        ));
        let text = BASIC.replace("t=0 0\r\n", "c=IN IP4 192.0.2.1\r\nt=0 0\r\n");
        assert!(matches!(
            SessionDescription::parse(&text),
            Err(SdpError::DuplicateLine { kind: 'c', .. })
        ));
    }

    #[test]
    fn parse_rejects_line_without_type() {
        let text = BASIC.replace("t=0 0", "garbage");
        assert_eq!(
            SessionDescription::parse(&text),
            Err(SdpError::InvalidLine { line: 5 })
        );
    }

    #[test]
    fn parse_empty_and_blank() {
        assert_eq!(SessionDescription::parse(""), Err(SdpError::Empty));
        assert_eq!(SessionDescription::parse("\r\n \r\n"), Err(SdpError::Empty));
    }

    #[test]
    fn parse_limits_size_and_media_count() {
        let big = "a".repeat(MAX_SDP_LEN + 1);
        assert_eq!(
            SessionDescription::parse(&big),
            Err(SdpError::TooLarge { len: big.len() })
        );
        let many = format!("{BASIC}{}", "m=video 0 RTP/AVP 99\r\n".repeat(MAX_MEDIA));
        assert_eq!(
            SessionDescription::parse(&many),
            Err(SdpError::TooManyMedia)
        );
    }

    #[test]
    fn parse_bytes_replaces_invalid_utf8() {
        let mut body = BASIC.replace("s=-", "s=Sesi\u{f3}n").into_bytes();
        let position = body.iter().position(|&byte| byte == 0xC3).unwrap();
        body[position] = 0xF3;
        body.remove(position + 1);
        let sdp = SessionDescription::parse_bytes(&body).unwrap();
        assert_eq!(sdp.session_name, "Sesi\u{fffd}n");
    }

    #[test]
    fn parse_single_space_session_name() {
        let text = BASIC.replace("s=-", "s= ");
        assert_eq!(SessionDescription::parse(&text).unwrap().session_name, "");
    }

    #[test]
    fn token_characters() {
        assert!(is_token("RTP"));
        assert!(is_token("telephone-event"));
        assert!(is_token("4294967296"));
        assert!(!is_token(""));
        assert!(!is_token("a/b"));
        assert!(!is_token("a b"));
        assert!(!is_token("\u{e9}"));
    }
}
