//! RTP payload formats of a media section: payload type numbers resolved through `a=rtpmap` or
//! the static table, their `a=fmtp` parameters, packet times and `a=rtcp`.
//!
//! Every accessor ignores a value it cannot read instead of failing, so one bad token in an
//! offer (a payload type of 4294967296, `a=ptime:abc`, an fmtp of `;;==;;`) costs only that
//! token.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::model::{Connection, MediaDescription};
use super::parse::is_token;
use super::types::CodecName;

/// Most parameters read from one `a=fmtp` line; the rest are ignored.
const MAX_FORMAT_PARAMETERS: usize = 32;

/// One RTP payload format of a media section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpFormat<'a> {
    /// Payload type number, 0 to 127.
    pub payload_type: u8,
    /// Encoding name, as written (case varies between peers).
    pub encoding: &'a str,
    /// RTP clock rate in hertz.
    pub clock_rate: u32,
    /// Channel count, when the rtpmap gives one.
    pub channels: Option<u8>,
}

/// Classification of a payload format by what voicegate can do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// An audio codec voicegate implements.
    Codec(CodecName),
    /// RFC 4733 telephone events.
    TelephoneEvent,
    /// Anything else (comfort noise, G.729, video, ...).
    Other,
}

impl RtpFormat<'_> {
    /// Classifies the format. Opus is recognised only at 48000 Hz (RFC 7587 §7), with two
    /// channels or, leniently, with one or none; `opus/16000` is not RFC 7587 Opus. G.711 and
    /// G.722 are recognised only at 8000 Hz and one channel.
    pub fn kind(&self) -> FormatKind {
        let name = self.encoding;
        let mono = matches!(self.channels, None | Some(1));
        if name.eq_ignore_ascii_case("telephone-event") {
            return FormatKind::TelephoneEvent;
        }
        let codec = if name.eq_ignore_ascii_case("opus") {
            let channels_ok = matches!(self.channels, None | Some(1) | Some(2));
            (self.clock_rate == 48_000 && channels_ok).then_some(CodecName::Opus)
        } else {
            [CodecName::Pcmu, CodecName::Pcma, CodecName::G722]
                .into_iter()
                .find(|codec| codec.encoding_name().eq_ignore_ascii_case(name))
                .filter(|codec| self.clock_rate == codec.clock_rate() && mono)
        };
        codec.map_or(FormatKind::Other, FormatKind::Codec)
    }

    /// Returns the codec, if this format is one voicegate implements.
    pub fn codec(&self) -> Option<CodecName> {
        match self.kind() {
            FormatKind::Codec(codec) => Some(codec),
            FormatKind::TelephoneEvent | FormatKind::Other => None,
        }
    }

    /// Returns whether this format is telephone-event at the given clock rate.
    pub fn is_telephone_event_at(&self, clock_rate: u32) -> bool {
        self.kind() == FormatKind::TelephoneEvent && self.clock_rate == clock_rate
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address when the attribute names an IP literal; otherwise the `c=` address applies.
    pub address: Option<IpAddr>,
}

impl MediaDescription {
    /// Returns the section's RTP payload formats in the order of the `m=` line. Tokens that are not a
    /// payload type from 0 to 127, dynamic types without a readable rtpmap, and repeated
    /// numbers are skipped.
    pub fn rtp_formats(&self) -> Vec<RtpFormat<'_>> {
        let mut formats: Vec<RtpFormat<'_>> = Vec::new();
        for token in &self.formats {
            let Some(payload_type) = parse_payload_type(token) else {
                continue;
            };
            if formats
                .iter()
                .any(|known| known.payload_type == payload_type)
            {
                continue;
            }
            if let Some(format) = self
                .rtpmap(payload_type)
                .or_else(|| static_format(payload_type))
            {
                formats.push(format);
            }
        }
        formats
    }

    /// Returns the first readable `a=rtpmap` for a payload type.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpFormat<'_>> {
        self.attribute_values("rtpmap")
            .filter_map(parse_rtpmap)
            .find(|format| format.payload_type == payload_type)
    }

    /// Parameters of the first `a=fmtp` for a payload type, as written.
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|value| {
            let (number, parameters) = split_first_word(value);
            (parse_payload_type(number) == Some(payload_type)).then_some(parameters)
        })
    }

    /// `a=ptime` in milliseconds, if present and valid (see [`parse_packet_time`]).
    pub fn ptime_ms(&self) -> Option<u32> {
        self.attribute_values("ptime").find_map(parse_packet_time)
    }

    /// `a=maxptime` in milliseconds, if present and valid (see [`parse_packet_time`]).
    pub fn maxptime_ms(&self) -> Option<u32> {
        self.attribute_values("maxptime")
            .find_map(parse_packet_time)
    }

    /// Returns the first readable `a=rtcp`.
    pub fn rtcp(&self) -> Option<RtcpAttribute> {
        self.attribute_values("rtcp").find_map(parse_rtcp)
    }
}

/// Parses a payload type token: one to three decimal digits with a value up to 127
/// (RFC 3551 §3).
pub fn parse_payload_type(token: &str) -> Option<u8> {
    let digits_only =
        !token.is_empty() && token.len() <= 3 && token.bytes().all(|b| b.is_ascii_digit());
    let value: u8 = token.parse().ok().filter(|_| digits_only)?;
    (value <= 127).then_some(value)
}

/// `<payload type> <encoding name>/<clock rate>[/<channels>]` (RFC 4566 §6).
fn parse_rtpmap(value: &str) -> Option<RtpFormat<'_>> {
    let (number, mapping) = split_first_word(value);
    let payload_type = parse_payload_type(number)?;
    let mut parts = mapping.split('/');
    let encoding = parts.next().filter(|name| is_token(name))?;
    let clock_rate: u32 = parts.next()?.parse().ok().filter(|&rate| rate > 0)?;
    let channels = match parts.next() {
        Some(channels) => Some(channels.parse::<u8>().ok().filter(|&count| count > 0)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpFormat {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

/// Audio formats with a static payload type (RFC 3551 Table 4), used when an offer lists the
/// number without an rtpmap.
pub fn static_format(payload_type: u8) -> Option<RtpFormat<'static>> {
    let (encoding, clock_rate, channels) = match payload_type {
        0 => ("PCMU", 8_000, 1),
        3 => ("GSM", 8_000, 1),
        4 => ("G723", 8_000, 1),
        5 => ("DVI4", 8_000, 1),
        6 => ("DVI4", 16_000, 1),
        7 => ("LPC", 8_000, 1),
        8 => ("PCMA", 8_000, 1),
        9 => ("G722", 8_000, 1),
        10 => ("L16", 44_100, 2),
        11 => ("L16", 44_100, 1),
        12 => ("QCELP", 8_000, 1),
        13 => ("CN", 8_000, 1),
        14 => ("MPA", 90_000, 1),
        15 => ("G728", 8_000, 1),
        16 => ("DVI4", 11_025, 1),
        17 => ("DVI4", 22_050, 1),
        18 => ("G729", 8_000, 1),
        _ => return None,
    };
    Some(RtpFormat {
        payload_type,
        encoding,
        clock_rate,
        channels: Some(channels),
    })
}

/// `a=fmtp` parameters as `key=value` pairs separated by `;` (RFC 7587 §6.1 and most other
/// payload formats). Keys are lowercased because media type parameter names ignore case.
/// Items without `=`, with an empty or non-token key, or past the 32nd are ignored.
pub fn parse_format_parameters(parameters: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let pairs = parameters
        .split(';')
        .filter_map(|item| item.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .filter(|(key, value)| is_token(key) && value.bytes().all(|byte| byte.is_ascii_graphic()));
    for (key, value) in pairs.take(MAX_FORMAT_PARAMETERS) {
        map.entry(key.to_ascii_lowercase())
            .or_insert_with(|| value.to_owned());
    }
    map
}

/// Parses a packet time in whole milliseconds from 10 to 120 and a multiple of 10. voicegate frames
/// audio in 10 ms steps, and every common packet time (10, 20, 30, 40, 60) fits.
pub fn parse_packet_time(value: &str) -> Option<u32> {
    let digits_only =
        !value.is_empty() && value.len() <= 3 && value.bytes().all(|b| b.is_ascii_digit());
    let ms: u32 = value.parse().ok().filter(|_| digits_only)?;
    ((10..=120).contains(&ms) && ms.is_multiple_of(10)).then_some(ms)
}

fn parse_rtcp(value: &str) -> Option<RtcpAttribute> {
    let mut fields = value.split_whitespace();
    let port = fields.next()?.parse().ok().filter(|&port| port != 0)?;
    let address = match (fields.next(), fields.next(), fields.next()) {
        (Some(net_type), Some(addr_type), Some(address)) => Connection {
            net_type: net_type.to_owned(),
            addr_type: addr_type.to_owned(),
            address: address.to_owned(),
            ttl: None,
            address_count: None,
        }
        .ip()
        .filter(|_| net_type.eq_ignore_ascii_case("IN")),
        _ => None,
    };
    Some(RtcpAttribute { port, address })
}

/// Splits at the first run of whitespace; the rest is trimmed and may be empty.
fn split_first_word(value: &str) -> (&str, &str) {
    let value = value.trim();
    match value.split_once(char::is_whitespace) {
        Some((first, rest)) => (first, rest.trim()),
        None => (value, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::sdp::model::Attribute;

    fn media(formats: &[&str], attributes: &[&str]) -> MediaDescription {
        let mut media = MediaDescription::new(
            "audio",
            40_000,
            "RTP/AVP",
            formats.iter().map(|format| format.to_string()).collect(),
        );
        for attribute in attributes {
            let (name, value) = attribute.split_once(':').unwrap();
            media.attributes.push(Attribute::with_value(name, value));
        }
        media
    }

    #[test]
    fn static_types_need_no_rtpmap() {
        let media = media(&["0", "8", "9"], &[]);
        let codecs: Vec<_> = media.rtp_formats().iter().map(RtpFormat::codec).collect();
        assert_eq!(
            codecs,
            [
                Some(CodecName::Pcmu),
                Some(CodecName::Pcma),
                Some(CodecName::G722)
            ]
        );
    }

    #[test]
    fn rtpmap_overrides_static_type() {
        let media = media(&["0"], &["rtpmap:0 PCMA/8000"]);
        assert_eq!(media.rtp_formats()[0].codec(), Some(CodecName::Pcma));
    }

    #[test]
    fn dynamic_type_without_rtpmap_is_skipped() {
        let media = media(&["96", "0"], &[]);
        let formats = media.rtp_formats();
        assert_eq!(formats.len(), 1);
        assert_eq!(formats[0].payload_type, 0);
    }

    #[test]
    fn out_of_range_tokens_are_skipped() {
        let media = media(
            &["4294967296", "128", "-1", "+0", "007", "0"],
            &["rtpmap:4294967296 PCMU/8000"],
        );
        let numbers: Vec<u8> = media.rtp_formats().iter().map(|f| f.payload_type).collect();
        assert_eq!(numbers, [7, 0]);
    }

    #[test]
    fn repeated_payload_type_is_skipped() {
        let media = media(&["0", "0"], &[]);
        assert_eq!(media.rtp_formats().len(), 1);
    }

    #[test]
    fn opus_variants() {
        let cases = [
            ("opus/48000/2", Some(CodecName::Opus)),
            ("OPUS/48000/1", Some(CodecName::Opus)),
            ("opus/48000", Some(CodecName::Opus)),
            ("opus/16000", None),
            ("opus/8000/1", None),
            ("opus/48000/6", None),
        ];
        for (mapping, expected) in cases {
            let media = media(&["111"], &[&format!("rtpmap:111 {mapping}")]);
            let formats = media.rtp_formats();
            assert_eq!(formats[0].codec(), expected, "{mapping}");
        }
    }

    #[test]
    fn g711_and_g722_need_8000_mono() {
        let cases = [
            ("PCMU/8000", Some(CodecName::Pcmu)),
            ("pcmu/8000/1", Some(CodecName::Pcmu)),
            ("PCMU/8000/2", None),
            ("PCMA/16000", None),
            ("G722/8000", Some(CodecName::G722)),
            ("G722/16000", None),
        ];
        for (mapping, expected) in cases {
            let media = media(&["100"], &[&format!("rtpmap:100 {mapping}")]);
            assert_eq!(media.rtp_formats()[0].codec(), expected, "{mapping}");
        }
    }

    #[test]
    fn malformed_rtpmap_is_ignored() {
        for mapping in [
            "PCMU",
            "PCMU/0",
            "PCMU/abc",
            "PCMU/8000/0",
            "PCMU/8000/1/1",
            "/8000",
        ] {
            let media = media(&["100"], &[&format!("rtpmap:100 {mapping}")]);
            assert!(media.rtp_formats().is_empty(), "{mapping}");
        }
    }

    #[test]
    fn telephone_event_rates() {
        let media = media(
            &["97", "101"],
            &[
                "rtpmap:97 telephone-event/48000",
                "rtpmap:101 telephone-event/8000",
            ],
        );
        let formats = media.rtp_formats();
        assert!(formats[0].is_telephone_event_at(48_000));
        assert!(!formats[0].is_telephone_event_at(8_000));
        assert!(formats[1].is_telephone_event_at(8_000));
    }

    #[test]
    fn fmtp_per_payload_type() {
        let media = media(
            &["96", "101"],
            &[
                "fmtp:101 0-15",
                "fmtp:96 useinbandfec=1; stereo=0",
                "fmtp:96 stereo=1",
            ],
        );
        assert_eq!(media.fmtp(96), Some("useinbandfec=1; stereo=0"));
        assert_eq!(media.fmtp(101), Some("0-15"));
        assert_eq!(media.fmtp(0), None);
    }

    #[test]
    fn format_parameters_parse() {
        let map = parse_format_parameters(
            "maxplaybackrate=16000; Stereo=0;;==;;useinbandfec=1;junk;maxplaybackrate=48000",
        );
        assert_eq!(map.len(), 3);
        assert_eq!(map["maxplaybackrate"], "16000");
        assert_eq!(map["stereo"], "0");
        assert_eq!(map["useinbandfec"], "1");
        assert!(parse_format_parameters(";;==;;").is_empty());
        assert!(parse_format_parameters("0-15").is_empty());
    }

    #[test]
    fn format_parameters_are_bounded() {
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse_format_parameters(&many.join(";")).len(),
            MAX_FORMAT_PARAMETERS
        );
    }

    #[test]
    fn packet_time_validation() {
        assert_eq!(parse_packet_time("20"), Some(20));
        assert_eq!(parse_packet_time("120"), Some(120));
        assert_eq!(parse_packet_time("abc"), None);
        assert_eq!(parse_packet_time("0"), None);
        assert_eq!(parse_packet_time("25"), None);
        assert_eq!(parse_packet_time("20.0"), None);
        assert_eq!(parse_packet_time("130"), None);
        assert_eq!(parse_packet_time("99999999999"), None);
    }

    #[test]
    fn ptime_skips_invalid_values() {
        let media = media(&["0"], &["ptime:abc", "ptime:30", "maxptime:40"]);
        assert_eq!(media.ptime_ms(), Some(30));
        assert_eq!(media.maxptime_ms(), Some(40));
    }

    #[test]
    fn rtcp_attribute_forms() {
        let plain = media(&["0"], &["rtcp:40001"]);
        assert_eq!(
            plain.rtcp(),
            Some(RtcpAttribute {
                port: 40_001,
                address: None
            })
        );
        let with_address = media(&["0"], &["rtcp:53020 IN IP6 2001:db8::7"]);
        assert_eq!(
            with_address.rtcp().unwrap().address,
            Some("2001:db8::7".parse().unwrap())
        );
        let host_name = media(&["0"], &["rtcp:53020 IN IP4 rtcp.example.net"]);
        assert_eq!(host_name.rtcp().unwrap().address, None);
        let bad = media(&["0"], &["rtcp:0", "rtcp:abc"]);
        assert_eq!(bad.rtcp(), None);
    }
}
