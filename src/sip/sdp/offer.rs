//! Our own offers (a late offer in our 200, a UAC INVITE, a refresh) and accepting the
//! peer's answer to them (RFC 3264 §5, §7).

use std::net::SocketAddr;

use super::error::NegotiationError;
use super::format::{RtpFormat, parse_payload_type, static_format};
use super::model::{IpFamily, MediaDescription, SessionDescription};
use super::negotiate::{
    describe_formats, negotiated_codec, our_direction, packet_time, remote_address, remote_rtcp,
};
use super::section::{AudioSettings, LocalFormat, LocalPayload, audio_section};
use super::types::{CodecName, Direction, LocalMedia, NegotiatedDtmf, NegotiatedMedia};

/// First number of the dynamic payload type range (RFC 3551 §6).
const FIRST_DYNAMIC_PAYLOAD_TYPE: u8 = 96;

/// Number we give telephone-event/8000 in our offers. Any dynamic number is valid, but many
/// gateways use 101 and some answer with it whatever we offered, so offering it avoids a
/// renumbered answer.
const TELEPHONE_EVENT_8000_PAYLOAD_TYPE: u8 = 101;

/// Builds the audio section of an offer. Before any negotiation it lists every codec of `local` with
/// telephone-event at each codec clock rate (8000, and 48000 with Opus). Once a codec is agreed
/// and still allowed, it lists only that codec and its telephone-event with the agreed numbers,
/// so that a refresh repeats the session instead of reopening the codec choice.
pub(super) fn offer_section(
    local: &LocalMedia,
    current: Option<&NegotiatedMedia>,
) -> MediaDescription {
    let agreed = current.filter(|media| local.codecs.contains(&media.codec.name));
    // NOTE: `media.codecs` validation rejects an empty list. Should one reach here anyway,
    // PCMU keeps the offer valid, because an m-line needs at least one format.
    let codecs: &[CodecName] = if local.codecs.is_empty() {
        &[CodecName::Pcmu]
    } else {
        &local.codecs
    };
    let payloads = match agreed {
        Some(media) => agreed_payloads(media),
        None => full_payloads(codecs),
    };
    let settings = AudioSettings {
        port: local.port,
        protocol: "RTP/AVP",
        ptime_ms: local.ptime_ms,
        rtcp_mux: local.rtcp_mux,
        direction: Direction::SendRecv,
    };
    audio_section(&settings, &payloads)
}

fn agreed_payloads(media: &NegotiatedMedia) -> Vec<LocalPayload> {
    let mut payloads = vec![LocalPayload {
        payload_type: media.codec.payload_type,
        format: LocalFormat::Codec(media.codec.name),
    }];
    payloads.extend(media.dtmf.map(|dtmf| LocalPayload {
        payload_type: dtmf.payload_type,
        format: LocalFormat::TelephoneEvent(dtmf.clock_rate),
    }));
    payloads
}

/// Lists every codec in our order, then telephone-event per distinct clock rate. Static codecs keep
/// their RFC 3551 numbers, telephone-event/8000 gets 101, and the rest get dynamic numbers
/// from 96 upward. Four codecs and two event rates never reach 101.
fn full_payloads(codecs: &[CodecName]) -> Vec<LocalPayload> {
    let mut next_dynamic = FIRST_DYNAMIC_PAYLOAD_TYPE;
    let mut allocate = |fixed_number: Option<u8>| {
        fixed_number.unwrap_or_else(|| {
            let number = next_dynamic;
            next_dynamic = next_dynamic.saturating_add(1);
            number
        })
    };
    let mut payloads = Vec::new();
    let mut clock_rates: Vec<u32> = Vec::new();
    for &codec in codecs {
        if payloads
            .iter()
            .any(|payload: &LocalPayload| payload.format == LocalFormat::Codec(codec))
        {
            continue;
        }
        payloads.push(LocalPayload {
            payload_type: allocate(codec.static_payload_type()),
            format: LocalFormat::Codec(codec),
        });
        if !clock_rates.contains(&codec.clock_rate()) {
            clock_rates.push(codec.clock_rate());
        }
    }
    for clock_rate in clock_rates {
        let fixed_number = (clock_rate == 8_000).then_some(TELEPHONE_EVENT_8000_PAYLOAD_TYPE);
        payloads.push(LocalPayload {
            payload_type: allocate(fixed_number),
            format: LocalFormat::TelephoneEvent(clock_rate),
        });
    }
    payloads
}

/// Reads the peer's answer to our offer. The answer must keep one section per offered one
/// (RFC 3264 §6), accept our audio stream and pick a codec we offered; otherwise the dialog
/// ends the call.
pub(super) fn accept_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
    local: &LocalMedia,
) -> Result<NegotiatedMedia, NegotiationError> {
    if answer.media.len() != offer.media.len() {
        return Err(NegotiationError::MediaCountMismatch {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let audio_index = offer.audio_index().ok_or(NegotiationError::NoAudio)?;
    let (Some(offered), Some(answered)) =
        (offer.media.get(audio_index), answer.media.get(audio_index))
    else {
        return Err(NegotiationError::NoAudio);
    };
    if !answered.is_audio() || answered.port == 0 {
        return Err(NegotiationError::AudioRejected);
    }
    if !answered.is_plain_rtp() {
        return Err(NegotiationError::UnsupportedTransport(
            super::error::excerpt(&answered.protocol),
        ));
    }
    let remote_ip = remote_address(answer, answered, IpFamily::of(local.addr))?;

    let offered_formats = offered.rtp_formats();
    let answered_formats = answered_rtp_formats(answered, &offered_formats);
    let (codec, payload_type) = answered_formats
        .iter()
        .find_map(|format| {
            let codec = format.codec()?;
            let was_offered = offered_formats
                .iter()
                .any(|ours| ours.codec() == Some(codec));
            was_offered.then_some((codec, format.payload_type))
        })
        .ok_or_else(|| NegotiationError::NoOfferedCodec {
            answered: describe_formats(&answered_formats, answered),
        })?;
    let dtmf = answered_formats
        .iter()
        .filter(|format| format.is_telephone_event_at(codec.clock_rate()))
        .find(|_| {
            offered_formats
                .iter()
                .any(|ours| ours.is_telephone_event_at(codec.clock_rate()))
        })
        .map(|format| NegotiatedDtmf {
            payload_type: format.payload_type,
            clock_rate: format.clock_rate,
        });

    let remote_rtp = remote_ip.map(|ip| SocketAddr::new(ip, answered.port));
    let rtcp_mux = offered.has_attribute("rtcp-mux") && answered.has_attribute("rtcp-mux");
    Ok(NegotiatedMedia {
        remote_rtp,
        remote_rtcp: remote_rtcp(answered, remote_rtp, rtcp_mux),
        rtcp_mux,
        // NOTE: an answer that renumbers a codec is taken at its word in both directions. RFC
        // 3264 §6.1 recommends that answerers keep the offered numbers, and peers that
        // renumber send with their own number too.
        codec: negotiated_codec(codec, payload_type, answered),
        dtmf,
        ptime_ms: packet_time(answer, answered, local.ptime_ms),
        direction: our_direction(answer.direction_of(answered), remote_rtp.is_some()),
    })
}

/// Returns the answer's formats in its order. A dynamic number without an rtpmap is read as the
/// format we offered under that number, because some answerers leave rtpmaps out.
fn answered_rtp_formats<'a>(
    answered: &'a MediaDescription,
    offered: &[RtpFormat<'a>],
) -> Vec<RtpFormat<'a>> {
    let mut formats: Vec<RtpFormat<'a>> = Vec::new();
    for token in &answered.formats {
        let Some(payload_type) = parse_payload_type(token) else {
            continue;
        };
        if formats
            .iter()
            .any(|known| known.payload_type == payload_type)
        {
            continue;
        }
        let format = answered
            .rtpmap(payload_type)
            .or_else(|| {
                offered
                    .iter()
                    .find(|ours| ours.payload_type == payload_type)
                    .copied()
            })
            .or_else(|| static_format(payload_type));
        formats.extend(format);
    }
    formats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_payloads_numbering() {
        let payloads = full_payloads(&[
            CodecName::Opus,
            CodecName::Pcmu,
            CodecName::G722,
            CodecName::Pcma,
        ]);
        let expected = [
            (96, LocalFormat::Codec(CodecName::Opus)),
            (0, LocalFormat::Codec(CodecName::Pcmu)),
            (9, LocalFormat::Codec(CodecName::G722)),
            (8, LocalFormat::Codec(CodecName::Pcma)),
            (97, LocalFormat::TelephoneEvent(48_000)),
            (101, LocalFormat::TelephoneEvent(8_000)),
        ];
        let actual: Vec<_> = payloads
            .iter()
            .map(|p| (p.payload_type, p.format))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn full_payloads_skip_repeated_codecs() {
        let payloads = full_payloads(&[CodecName::Pcmu, CodecName::Pcmu]);
        assert_eq!(payloads.len(), 2);
    }

    #[test]
    fn empty_codec_list_still_offers_a_format() {
        let local = LocalMedia {
            addr: "192.0.2.1".parse().unwrap(),
            port: 30_000,
            codecs: Vec::new(),
            ptime_ms: 20,
            rtcp_mux: false,
        };
        let section = offer_section(&local, None);
        assert_eq!(section.formats, ["0", "101"]);
    }

    #[test]
    fn pcmu_only_offer_has_no_48000_events() {
        let payloads = full_payloads(&[CodecName::Pcmu]);
        assert!(
            !payloads
                .iter()
                .any(|p| p.format == LocalFormat::TelephoneEvent(48_000))
        );
        assert!(
            payloads
                .iter()
                .any(|p| p.format == LocalFormat::TelephoneEvent(8_000))
        );
    }
}
