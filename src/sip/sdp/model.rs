//! The session description model (RFC 4566 §5): every line type, media sections, and the
//! lines we do not interpret, kept so that a description survives a parse and print unchanged.

use std::fmt;
use std::net::IpAddr;

use super::types::Direction;

/// Address family of a connection address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`IP4` in SDP).
    V4,
    /// IPv6 (`IP6` in SDP).
    V6,
}

impl IpFamily {
    /// Returns the family of an address.
    pub fn of(addr: IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// Returns the `<addrtype>` token of `o=` and `c=` lines.
    pub fn addr_type(self) -> &'static str {
        match self {
            IpFamily::V4 => "IP4",
            IpFamily::V6 => "IP6",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// A whole session description. `v=` is not stored because version 0 is the only one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=` line.
    pub origin: Origin,
    /// `s=` line; empty when the peer left it out or wrote a single space.
    pub session_name: String,
    /// `i=` line.
    pub information: Option<String>,
    /// `u=` line.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=` line, used by media sections without their own.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines, each with its `r=` lines.
    pub timings: Vec<Timing>,
    /// `z=` line, kept verbatim.
    pub time_zones: Option<String>,
    /// Session-level `k=` line, kept verbatim.
    pub encryption_key: Option<String>,
    /// Session-level `a=` lines in their original order.
    pub attributes: Vec<Attribute>,
    /// Session-level lines of a type RFC 4566 does not define, in their original order.
    pub unknown_lines: Vec<UnknownLine>,
    /// Media sections, one per `m=` line.
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
///
/// The session id and version are kept as text because peers send values longer than 64 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when the peer has none.
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version, which goes up whenever the writer changes its description.
    pub session_version: String,
    /// Network type, `IN` for the Internet.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Address of the machine that created the session.
    pub address: String,
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN` for the Internet.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// Address without its `/ttl` or `/count` suffix: an IP literal or a host name.
    pub address: String,
    /// Multicast time to live (IPv4 only).
    pub ttl: Option<u8>,
    /// Number of consecutive multicast addresses.
    pub address_count: Option<u32>,
}

impl Connection {
    /// Builds a unicast `IN` connection line for an IP address.
    pub fn for_ip(addr: IpAddr) -> Connection {
        Connection {
            net_type: "IN".into(),
            addr_type: IpFamily::of(addr).addr_type().into(),
            address: addr.to_string(),
            ttl: None,
            address_count: None,
        }
    }

    /// Returns the address family named by the address type, or `None` for a type other than
    /// IP4 and IP6. The case of the token is ignored because some gateways write `ip4`.
    pub fn family(&self) -> Option<IpFamily> {
        if self.addr_type.eq_ignore_ascii_case("IP4") {
            Some(IpFamily::V4)
        } else if self.addr_type.eq_ignore_ascii_case("IP6") {
            Some(IpFamily::V6)
        } else {
            None
        }
    }

    /// Returns the address as an IP literal of the announced family. It returns `None` for a
    /// host name, for an address of the other family and for an unknown address type.
    pub fn ip(&self) -> Option<IpAddr> {
        let addr: IpAddr = self.address.parse().ok()?;
        (Some(IpFamily::of(addr)) == self.family()).then_some(addr)
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 4566 §5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Modifier such as `AS`, `CT` or `TIAS`.
    pub kind: String,
    /// Value in the modifier's unit (kilobits per second for `AS` and `CT`).
    pub value: u64,
}

/// `t=<start-time> <stop-time>` with its `r=` lines (RFC 4566 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time in NTP seconds; 0 for an unbounded session.
    pub start: u64,
    /// Stop time in NTP seconds; 0 for an unbounded session.
    pub stop: u64,
    /// `r=` lines, kept verbatim.
    pub repeats: Vec<String>,
}

/// `a=<name>` or `a=<name>:<value>` (RFC 4566 §5.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Value after the first colon; `None` for a property attribute such as `a=rtcp-mux`.
    pub value: Option<String>,
}

impl Attribute {
    /// Builds a property attribute, which has no value.
    pub fn flag(name: &str) -> Attribute {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// Builds an attribute with a value.
    pub fn with_value(name: &str, value: impl Into<String>) -> Attribute {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// A line whose type letter RFC 4566 does not define, kept so that it can be printed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLine {
    /// Type letter before the `=`.
    pub kind: char,
    /// Text after the `=`.
    pub value: String,
}

/// One media section: an `m=` line and the lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type: `audio`, `video`, `image`, ...
    pub kind: String,
    /// Transport port; 0 marks a rejected or disabled stream (RFC 3264 §6).
    pub port: u16,
    /// Number of ports from `<port>/<count>`.
    pub port_count: Option<u16>,
    /// Transport protocol such as `RTP/AVP`.
    pub protocol: String,
    /// Media formats: RTP payload type numbers for RTP protocols, exactly as written.
    pub formats: Vec<String>,
    /// `i=` line.
    pub information: Option<String>,
    /// Media-level `c=` lines; the session-level one applies when there are none.
    pub connections: Vec<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// Media-level `k=` line, kept verbatim.
    pub encryption_key: Option<String>,
    /// Media-level `a=` lines in their original order.
    pub attributes: Vec<Attribute>,
    /// Lines of an unknown type, or of a session-only type, found in this section.
    pub unknown_lines: Vec<UnknownLine>,
}

impl MediaDescription {
    /// Builds a media section with no optional lines.
    pub fn new(kind: &str, port: u16, protocol: &str, formats: Vec<String>) -> MediaDescription {
        MediaDescription {
            kind: kind.into(),
            port,
            port_count: None,
            protocol: protocol.into(),
            formats,
            information: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            encryption_key: None,
            attributes: Vec::new(),
            unknown_lines: Vec::new(),
        }
    }

    /// Returns whether this is an audio section.
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Returns whether the protocol is plain RTP (`RTP/AVP`, or `RTP/AVPF` whose feedback is optional),
    /// the only media transport voicegate speaks.
    pub fn is_plain_rtp(&self) -> bool {
        self.protocol.eq_ignore_ascii_case("RTP/AVP")
            || self.protocol.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Returns whether the protocol carries RTP in any profile, so that formats are payload types.
    pub fn is_rtp(&self) -> bool {
        self.protocol
            .split('/')
            .any(|part| part.eq_ignore_ascii_case("RTP"))
    }

    /// Returns the first attribute with this name (ASCII case ignored).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// Returns whether an attribute with this name is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// Returns the values of every attribute with this name.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        attribute_values(&self.attributes, name)
    }

    /// Returns the direction attribute of this section, if it has one.
    pub fn direction(&self) -> Option<Direction> {
        find_direction(&self.attributes)
    }
}

impl SessionDescription {
    /// Returns the index of the audio stream that offer/answer uses: the first `m=audio` with a non-zero
    /// port over plain RTP, else the first `m=audio` of any kind.
    pub fn audio_index(&self) -> Option<usize> {
        let usable = self
            .media
            .iter()
            .position(|media| media.is_audio() && media.port != 0 && media.is_plain_rtp());
        usable.or_else(|| self.media.iter().position(MediaDescription::is_audio))
    }

    /// Returns the audio stream that offer/answer uses (see [`SessionDescription::audio_index`]).
    pub fn audio(&self) -> Option<&MediaDescription> {
        self.media.get(self.audio_index()?)
    }

    /// Returns the address family of the audio stream, for choosing our media socket. It is
    /// `None` when there is no audio stream, no connection line for it, or an address type
    /// other than IP4 and IP6.
    pub fn audio_family(&self) -> Option<IpFamily> {
        self.connection_for(self.audio()?)?.family()
    }

    /// Returns the connection line that applies to a media section: its own first `c=`, else the
    /// session-level one (RFC 4566 §5.7).
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connections.first().or(self.connection.as_ref())
    }

    /// Returns the first session-level attribute with this name (ASCII case ignored).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find_attribute(&self.attributes, name)
    }

    /// Returns the direction of a media section: its own attribute, else the session-level one, else
    /// `sendrecv` (RFC 3264 §5.1).
    pub fn direction_of(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| find_direction(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }
}

fn find_attribute<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}

fn attribute_values<'a>(
    attributes: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    attributes
        .iter()
        .filter(move |attribute| attribute.name.eq_ignore_ascii_case(name))
        .filter_map(|attribute| attribute.value.as_deref())
}

/// Returns the first direction attribute. RFC 3264 §5.1 allows at most one, so a second one is
/// ignored.
fn find_direction(attributes: &[Attribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|attribute| attribute.value.is_none())
        .find_map(|attribute| Direction::from_attribute_name(&attribute.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(addr_type: &str, address: &str) -> Connection {
        Connection {
            net_type: "IN".into(),
            addr_type: addr_type.into(),
            address: address.into(),
            ttl: None,
            address_count: None,
        }
    }

    #[test]
    fn connection_ip_checks_family() {
        assert_eq!(
            connection("IP4", "192.0.2.1").ip(),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(connection("IP6", "192.0.2.1").ip(), None);
        assert_eq!(connection("IP4", "2001:db8::5").ip(), None);
        assert_eq!(
            connection("IP6", "2001:db8::5").ip(),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(connection("IP4", "media.example.net").ip(), None);
    }

    #[test]
    fn connection_family_ignores_case() {
        assert_eq!(connection("ip4", "x").family(), Some(IpFamily::V4));
        assert_eq!(connection("IP6", "x").family(), Some(IpFamily::V6));
        assert_eq!(connection("ATM", "x").family(), None);
    }

    #[test]
    fn rtp_protocol_detection() {
        let mut media = MediaDescription::new("audio", 1, "RTP/AVP", vec!["0".into()]);
        assert!(media.is_plain_rtp());
        assert!(media.is_rtp());
        media.protocol = "RTP/SAVP".into();
        assert!(!media.is_plain_rtp());
        assert!(media.is_rtp());
        media.protocol = "udptl".into();
        assert!(!media.is_rtp());
    }

    #[test]
    fn direction_ignores_valued_attribute() {
        let mut media = MediaDescription::new("audio", 1, "RTP/AVP", vec!["0".into()]);
        media
            .attributes
            .push(Attribute::with_value("sendonly", "x"));
        assert_eq!(media.direction(), None);
        media.attributes.push(Attribute::flag("recvonly"));
        media.attributes.push(Attribute::flag("sendonly"));
        assert_eq!(media.direction(), Some(Direction::RecvOnly));
    }
}
