//! Typed views of the headers every transaction and dialog needs: Via, From/To, CSeq, and the
//! URI checks that the rsip parser leaves out.
//!
//! Parsing of URIs and name-addr values is done by `rsipstack::sip`; this module adds the
//! checks it does not make: RFC 5118 bracket rules for IPv6 hosts, bracketed `received`
//! parameters, whitespace inside URIs, and the RFC 3261 ranges of scalar values.

use std::net::IpAddr;

use rsipstack::sip::uri::{Host, ParamsExt};
use rsipstack::sip::{Scheme, Uri};

use super::method::{Method, is_token};

/// The top Via header of a message (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token (`UDP`, `TCP`, `TLS`, ...), upper case.
    pub transport: String,
    /// sent-by host as written; IPv6 addresses keep their brackets.
    pub host: String,
    /// sent-by port, if written.
    pub port: Option<u16>,
    /// `branch` parameter.
    pub branch: Option<String>,
    /// `received` parameter (RFC 3261 §18.2.1); brackets around IPv6 are accepted.
    pub received: Option<IpAddr>,
    /// `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub rport: Option<Option<u16>>,
    /// The first Via value exactly as received.
    pub raw: String,
}

/// Magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

impl Via {
    /// Parses one Via value (the first of a comma-separated list is taken).
    pub fn parse(value: &str) -> Result<Via, &'static str> {
        let first = split_list(value).next().ok_or("empty Via")?;
        let (protocol, rest) = first
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or("Via without sent-by")?;
        let mut parts = protocol.split('/').map(str::trim);
        let (name, version, transport) = (parts.next(), parts.next(), parts.next());
        if !name.is_some_and(|n| n.eq_ignore_ascii_case("SIP")) || version != Some("2.0") {
            return Err("Via protocol is not SIP/2.0");
        }
        let transport = transport
            .filter(|t| is_token(t))
            .ok_or("Via transport is not a token")?
            .to_ascii_uppercase();

        let rest = rest.trim();
        let (sent_by, params) = match rest.split_once(';') {
            Some((sent_by, params)) => (sent_by.trim(), params),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(sent_by).ok_or("Via sent-by is invalid")?;

        let mut via = Via {
            transport,
            host: host.to_string(),
            port,
            branch: None,
            received: None,
            rport: None,
            raw: first.to_string(),
        };
        for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param, None),
            };
            if name.eq_ignore_ascii_case("branch") {
                via.branch = Some(value.ok_or("Via branch without value")?.to_string());
            } else if name.eq_ignore_ascii_case("received") {
                let value = value.ok_or("Via received without value")?;
                // RFC 5118 §4.5: accept `received=[2001:db8::5]` as well as the bare form.
                let bare = value.trim_start_matches('[').trim_end_matches(']');
                via.received = Some(bare.parse().map_err(|_| "Via received is not an address")?);
            } else if name.eq_ignore_ascii_case("rport") {
                let port = match value {
                    Some(v) => Some(v.parse().map_err(|_| "Via rport is not a port")?),
                    None => None,
                };
                via.rport = Some(port);
            }
        }
        Ok(via)
    }

    /// Branch if it carries the RFC 3261 magic cookie; older branches are not unique.
    pub fn rfc3261_branch(&self) -> Option<&str> {
        self.branch
            .as_deref()
            .filter(|b| b.starts_with(BRANCH_COOKIE))
    }

    /// sent-by as `host[:port]`, the form used in transaction keys.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// A From or To header value: a URI with a display name and a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The URI, parsed by rsip.
    pub uri: Uri,
    /// The URI as written, without angle brackets.
    pub uri_text: String,
    /// The `tag` parameter.
    pub tag: Option<String>,
    /// The whole value as received.
    pub raw: String,
}

impl NameAddr {
    /// Parses a name-addr or addr-spec value with its header parameters.
    pub fn parse(value: &str) -> Result<NameAddr, &'static str> {
        let value = value.trim();
        let (uri_text, params) = split_name_addr(value)?;
        let uri = parse_uri(uri_text)?;
        let tag = params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("tag"))
            .map(|(_, tag)| tag.trim().to_string())
            .filter(|tag| !tag.is_empty());
        Ok(NameAddr {
            uri,
            uri_text: uri_text.to_string(),
            tag,
            raw: value.to_string(),
        })
    }
}

/// Splits `"Name" <uri>;params` or `uri;params` into the URI text and the parameters.
fn split_name_addr(value: &str) -> Result<(&str, &str), &'static str> {
    if let Some(open) = find_unquoted(value, b'<') {
        let rest = &value[open + 1..];
        let close = rest.find('>').ok_or("missing '>' after URI")?;
        let params = rest[close + 1..].trim();
        if !params.is_empty() && !params.starts_with(';') {
            return Err("text after '>' is not a parameter");
        }
        return Ok((rest[..close].trim(), params.trim_start_matches(';')));
    }
    if value.contains('>') {
        return Err("'>' without '<'");
    }
    // RFC 3261 §20.10: in the addr-spec form, parameters after ';' belong to the header.
    Ok(match value.split_once(';') {
        Some((uri, params)) => (uri.trim(), params),
        None => (value, ""),
    })
}

fn find_unquoted(text: &str, wanted: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b if b == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Parses a SIP, SIPS or tel URI and applies the checks rsip leaves out.
pub fn parse_uri(text: &str) -> Result<Uri, &'static str> {
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
        return Err("URI is empty or contains whitespace");
    }
    let (scheme, rest) = text.split_once(':').ok_or("URI has no scheme")?;
    if scheme.eq_ignore_ascii_case("tel") {
        // RFC 3966: the number is everything up to the first parameter.
        let number = rest.split(';').next().unwrap_or_default();
        if number.is_empty() {
            return Err("tel URI has no number");
        }
    } else if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let host_port = rest.split([';', '?']).next().unwrap_or_default();
        let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
        split_host_port(host_port).ok_or("URI host is invalid")?;
    } else {
        return Err("URI scheme is not sip, sips or tel");
    }
    let uri = rsipstack::sip::parse_uri(text).map_err(|_| "URI does not parse")?;
    Ok(uri)
}

/// Returns whether the URI scheme is one voicegate accepts in a Request-URI.
pub fn is_supported_scheme(uri: &Uri) -> bool {
    match &uri.scheme {
        Some(Scheme::Sip | Scheme::Sips) => true,
        Some(Scheme::Other(s)) => s.eq_ignore_ascii_case("tel"),
        None => false,
    }
}

/// Returns the user part of a SIP URI or the number of a tel URI.
pub fn uri_user(uri: &Uri) -> Option<&str> {
    match (&uri.scheme, &uri.host_with_port.host) {
        (Some(Scheme::Other(_)), Host::Domain(number)) => Some(number.0.as_str()),
        _ => uri.user(),
    }
}

/// Returns whether a URI carries the `lr` parameter (RFC 3261 §19.1.1).
pub fn is_loose_route(uri: &Uri) -> bool {
    uri.has_lr()
}

/// Splits `host[:port]`, checking RFC 5118 rules: an IPv6 host must be in brackets, and
/// `[2001:db8::10:5070]` is a host without a port (§4.3).
pub fn split_host_port(text: &str) -> Option<(&str, Option<u16>)> {
    if let Some(inner) = text.strip_prefix('[') {
        let close = inner.find(']')?;
        inner[..close].parse::<std::net::Ipv6Addr>().ok()?;
        let host = &text[..close + 2];
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host, port));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port.parse().ok()?)),
        None => (text, None),
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
    valid_host.then_some((host, port))
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2**31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// Method, which must equal the request's.
    pub method: Method,
}

impl CSeq {
    /// Parses `<number> <method>`.
    pub fn parse(value: &str) -> Result<CSeq, &'static str> {
        let mut parts = value.split_ascii_whitespace();
        let number = parts.next().ok_or("CSeq is empty")?;
        let method = parts.next().ok_or("CSeq has no method")?;
        if parts.next().is_some() {
            return Err("CSeq has extra text");
        }
        if number.len() > 10 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err("CSeq number is out of range");
        }
        let seq: u64 = number.parse().map_err(|_| "CSeq number is out of range")?;
        if seq >= 1 << 31 {
            return Err("CSeq number is out of range");
        }
        let method = Method::from_token(method).ok_or("CSeq method is not a token")?;
        Ok(CSeq {
            seq: seq as u32,
            method,
        })
    }
}

/// Splits a comma-separated header value, honouring quotes and angle brackets.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    std::iter::from_fn(move || {
        loop {
            let text = rest?;
            let (item, next) = split_first_item(text);
            rest = next;
            let item = item.trim();
            if !item.is_empty() {
                return Some(item);
            }
        }
    })
}

fn split_first_item(text: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    let mut angle = 0usize;
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle += 1,
            b'>' if !quoted => angle = angle.saturating_sub(1),
            b',' if !quoted && angle == 0 => return (&text[..i], Some(&text[i + 1..])),
            _ => {}
        }
    }
    (text, None)
}

/// Returns whether a comma-separated token list (Supported, Require, Allow) contains `token`.
pub fn list_contains(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_ipv6_with_bracketed_received() {
        let via = Via::parse(
            "SIP/2.0/UDP [2001:db8::5]:5060;received=[2001:db8::5];branch=z9hG4bK-c03-v6",
        )
        .unwrap();
        assert_eq!(via.host, "[2001:db8::5]");
        assert_eq!(via.port, Some(5060));
        assert_eq!(via.received, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(via.rfc3261_branch(), Some("z9hG4bK-c03-v6"));
    }

    #[test]
    fn via_takes_first_of_list() {
        let via =
            Via::parse("SIP/2.0/TCP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example").unwrap();
        assert_eq!(via.transport, "TCP");
        assert_eq!(via.host, "a.example");
        assert_eq!(via.raw, "SIP/2.0/TCP a.example;branch=z9hG4bK1");
    }

    #[test]
    fn via_rport_forms() {
        let empty = Via::parse("SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(empty.rport, Some(None));
        let set = Via::parse("SIP/2.0/UDP 127.0.0.1;rport=5071").unwrap();
        assert_eq!(set.rport, Some(Some(5071)));
        assert!(Via::parse("SIP/2.0/UDP 127.0.0.1;rport=99999").is_err());
    }

    #[test]
    fn via_rejects_bad_protocol_and_host() {
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDP 2001:db8::5:5060").is_err());
    }

    #[test]
    fn host_port_follows_rfc5118() {
        assert_eq!(
            split_host_port("[2001:db8::10:5070]"),
            Some(("[2001:db8::10:5070]", None))
        );
        assert_eq!(
            split_host_port("[2001:db8::10]:5070"),
            Some(("[2001:db8::10]", Some(5070)))
        );
        assert_eq!(split_host_port("2001:db8::10"), None);
        assert_eq!(split_host_port("[2001:db8::10"), None);
        assert_eq!(split_host_port("[::1]:"), None);
        assert_eq!(split_host_port("host.example:70000"), None);
    }

    #[test]
    fn uri_checks() {
        assert!(parse_uri("sip:+12025550100@[2001:db8::10]").is_ok());
        assert!(parse_uri("sip:+12025550100@2001:db8::10").is_err());
        assert!(parse_uri("sip:+1202555 0142@carrier.example.com").is_err());
        assert!(parse_uri("http://example.com").is_err());
        let tel = parse_uri("tel:+12025550100;phone-context=example.com").unwrap();
        assert_eq!(uri_user(&tel), Some("+12025550100"));
        let sip = parse_uri("sip:+12025550100@127.0.0.1:5060;user=phone").unwrap();
        assert_eq!(uri_user(&sip), Some("+12025550100"));
    }

    #[test]
    fn name_addr_forms() {
        let from = NameAddr::parse("\"Caller, Test\" <sip:alice@a.example>;tag=abc").unwrap();
        assert_eq!(from.tag.as_deref(), Some("abc"));
        assert_eq!(from.uri_text, "sip:alice@a.example");
        let bare = NameAddr::parse("sip:bob@b.example;tag=x1").unwrap();
        assert_eq!(bare.tag.as_deref(), Some("x1"));
        assert_eq!(bare.uri_text, "sip:bob@b.example");
        assert!(NameAddr::parse("\"Broken\" <sip:+1202555 0142@c.example;tag=t").is_err());
        assert!(NameAddr::parse("<sip:a@b.example> junk").is_err());
    }

    #[test]
    fn cseq_ranges() {
        let cseq = CSeq::parse("20 INVITE").unwrap();
        assert_eq!((cseq.seq, cseq.method), (20, Method::Invite));
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert!(CSeq::parse("1 INVITE extra").is_err());
    }

    #[test]
    fn list_split_respects_quotes() {
        let items: Vec<_> = split_list("<sip:a@x;lr>, \"b, c\" <sip:b@y>,,d").collect();
        assert_eq!(items, vec!["<sip:a@x;lr>", "\"b, c\" <sip:b@y>", "d"]);
    }
}
