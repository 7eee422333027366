//! Media sections voicegate writes: its own audio section and rejected copies of the peer's.

use super::format::parse_payload_type;
use super::model::{Attribute, MediaDescription};
use super::types::{CodecName, Direction};
use crate::audio::SAMPLE_RATE;

/// Telephone events we receive: the sixteen DTMF tones `0-9 * # A-D` (RFC 4733 §3.2).
const DTMF_EVENTS: &str = "0-15";

/// A payload format in a section we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalFormat {
    /// An audio codec.
    Codec(CodecName),
    /// RFC 4733 telephone events at a clock rate.
    TelephoneEvent(u32),
}

/// A payload format with the number it has in our section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LocalPayload {
    pub payload_type: u8,
    pub format: LocalFormat,
}

/// Settings of an audio section we write, besides its formats.
pub(super) struct AudioSettings<'a> {
    pub port: u16,
    pub protocol: &'a str,
    pub ptime_ms: u32,
    pub rtcp_mux: bool,
    pub direction: Direction,
}

/// Builds our audio section: `m=` line, an rtpmap and, where one applies, an fmtp per format,
/// then ptime, rtcp-mux and an explicit direction.
pub(super) fn audio_section(
    settings: &AudioSettings<'_>,
    payloads: &[LocalPayload],
) -> MediaDescription {
    let formats = payloads
        .iter()
        .map(|payload| payload.payload_type.to_string())
        .collect();
    let mut media = MediaDescription::new("audio", settings.port, settings.protocol, formats);
    for payload in payloads {
        let number = payload.payload_type;
        media.attributes.push(Attribute::with_value(
            "rtpmap",
            format!("{number} {}", rtpmap(payload.format)),
        ));
        if let Some(parameters) = receive_parameters(payload.format) {
            media.attributes.push(Attribute::with_value(
                "fmtp",
                format!("{number} {parameters}"),
            ));
        }
    }
    media.attributes.push(Attribute::with_value(
        "ptime",
        settings.ptime_ms.to_string(),
    ));
    if settings.rtcp_mux {
        media.attributes.push(Attribute::flag("rtcp-mux"));
    }
    media
        .attributes
        .push(Attribute::flag(settings.direction.attribute_name()));
    media
}

/// Builds a rejected copy of an offered section: port 0 and the offered format list (RFC 3264 §6).
/// Formats of an RTP section that are not payload types are dropped so that a bad number is
/// never written back. RFC 4566 requires at least one format, so a list left empty gets `0`,
/// which is harmless on a stream that carries nothing.
pub(super) fn rejected_section(offered: &MediaDescription) -> MediaDescription {
    let mut formats: Vec<String> = offered
        .formats
        .iter()
        .filter(|format| !offered.is_rtp() || parse_payload_type(format).is_some())
        .cloned()
        .collect();
    if formats.is_empty() {
        formats.push("0".into());
    }
    MediaDescription::new(&offered.kind, 0, &offered.protocol, formats)
}

fn rtpmap(format: LocalFormat) -> String {
    match format {
        LocalFormat::Codec(CodecName::Opus) => "opus/48000/2".to_owned(),
        LocalFormat::Codec(codec) => format!("{}/{}", codec.encoding_name(), codec.clock_rate()),
        LocalFormat::TelephoneEvent(clock_rate) => format!("telephone-event/{clock_rate}"),
    }
}

/// Returns what we can receive, as fmtp parameters. voicegate turns all audio into 16 kHz mono,
/// so for Opus it requests no more than that (RFC 7587 §6.1) and announces that it sends no
/// more either.
fn receive_parameters(format: LocalFormat) -> Option<String> {
    match format {
        LocalFormat::Codec(CodecName::Opus) => Some(format!(
            "maxplaybackrate={SAMPLE_RATE};sprop-maxcapturerate={SAMPLE_RATE};\
             stereo=0;sprop-stereo=0;useinbandfec=1"
        )),
        LocalFormat::Codec(_) => None,
        LocalFormat::TelephoneEvent(_) => Some(DTMF_EVENTS.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AudioSettings<'static> {
        AudioSettings {
            port: 30_000,
            protocol: "RTP/AVP",
            ptime_ms: 20,
            rtcp_mux: true,
            direction: Direction::RecvOnly,
        }
    }

    #[test]
    fn audio_section_lines() {
        let payloads = [
            LocalPayload {
                payload_type: 107,
                format: LocalFormat::Codec(CodecName::Opus),
            },
            LocalPayload {
                payload_type: 101,
                format: LocalFormat::TelephoneEvent(48_000),
            },
        ];
        let text = audio_section(&settings(), &payloads).to_string();
        assert_eq!(
            text,
            "m=audio 30000 RTP/AVP 107 101\r\n\
             a=rtpmap:107 opus/48000/2\r\n\
             a=fmtp:107 maxplaybackrate=16000;sprop-maxcapturerate=16000;stereo=0;sprop-stereo=0;useinbandfec=1\r\n\
             a=rtpmap:101 telephone-event/48000\r\n\
             a=fmtp:101 0-15\r\n\
             a=ptime:20\r\n\
             a=rtcp-mux\r\n\
             a=recvonly\r\n"
        );
    }

    #[test]
    fn g722_rtpmap_uses_8000() {
        let payloads = [LocalPayload {
            payload_type: 9,
            format: LocalFormat::Codec(CodecName::G722),
        }];
        let media = audio_section(&settings(), &payloads);
        assert_eq!(
            media.attribute("rtpmap").unwrap().value.as_deref(),
            Some("9 G722/8000")
        );
    }

    #[test]
    fn rejected_section_keeps_formats() {
        let offered =
            MediaDescription::new("video", 41_402, "RTP/AVP", vec!["99".into(), "100".into()]);
        let rejected = rejected_section(&offered);
        assert_eq!(rejected.to_string(), "m=video 0 RTP/AVP 99 100\r\n");
    }

    #[test]
    fn rejected_section_drops_bad_payload_types() {
        let offered = MediaDescription::new("audio", 1, "RTP/AVP", vec!["4294967296".into()]);
        assert_eq!(rejected_section(&offered).formats, ["0"]);
        let offered = MediaDescription::new("image", 1, "udptl", vec!["t38".into()]);
        assert_eq!(
            rejected_section(&offered).to_string(),
            "m=image 0 udptl t38\r\n"
        );
    }
}
