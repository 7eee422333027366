//! Answering an offer (RFC 3264 §6): one audio stream, our codec preference, the offerer's
//! payload type numbers; every other stream rejected with port 0.

use std::net::{IpAddr, SocketAddr};

use super::error::{NegotiationError, excerpt};
use super::format::{RtpFormat, parse_format_parameters, parse_packet_time};
use super::model::{IpFamily, MediaDescription, SessionDescription};
use super::section::{AudioSettings, LocalFormat, LocalPayload, audio_section, rejected_section};
use super::types::{
    CodecName, Direction, LocalMedia, NegotiatedCodec, NegotiatedDtmf, NegotiatedMedia,
};

/// Most offered formats listed in a "no common codec" error.
const MAX_LISTED_FORMATS: usize = 8;

/// Our answer's media sections, one per offered section, and what was agreed.
pub(super) struct Answer {
    pub media: Vec<MediaDescription>,
    pub negotiated: NegotiatedMedia,
}

/// Answers an offer. `current` is the codec of the call so far: a re-offer that still contains
/// it keeps it, so a hold or refresh never switches codecs under the media path.
pub(super) fn answer_offer(
    offer: &SessionDescription,
    local: &LocalMedia,
    current: Option<CodecName>,
) -> Result<Answer, NegotiationError> {
    let audio_index = offer.audio_index().ok_or(NegotiationError::NoAudio)?;
    let Some(audio) = offer.media.get(audio_index) else {
        return Err(NegotiationError::NoAudio);
    };
    if !audio.is_plain_rtp() {
        return Err(NegotiationError::UnsupportedTransport(excerpt(
            &audio.protocol,
        )));
    }
    let remote_ip = remote_address(offer, audio, IpFamily::of(local.addr))?;

    let formats = audio.rtp_formats();
    let preference = current
        .filter(|codec| local.codecs.contains(codec))
        .into_iter()
        .chain(local.codecs.iter().copied());
    let (codec, format) =
        choose_codec(&formats, preference).ok_or_else(|| NegotiationError::NoCommonCodec {
            offered: describe_formats(&formats, audio),
        })?;
    let dtmf = formats
        .iter()
        .find(|candidate| candidate.is_telephone_event_at(codec.clock_rate()));

    let disabled = audio.port == 0;
    let remote_rtp = remote_ip
        .filter(|_| !disabled)
        .map(|ip| SocketAddr::new(ip, audio.port));
    let direction = if disabled {
        Direction::Inactive
    } else {
        our_direction(offer.direction_of(audio), remote_rtp.is_some())
    };
    let rtcp_mux = audio.has_attribute("rtcp-mux") && local.rtcp_mux;

    let mut payloads = vec![LocalPayload {
        payload_type: format.payload_type,
        format: LocalFormat::Codec(codec),
    }];
    payloads.extend(dtmf.map(|event| LocalPayload {
        payload_type: event.payload_type,
        format: LocalFormat::TelephoneEvent(event.clock_rate),
    }));
    let settings = AudioSettings {
        // RFC 3264 §6: a stream offered with port 0 is answered with port 0.
        port: if disabled { 0 } else { local.port },
        protocol: &audio.protocol,
        ptime_ms: local.ptime_ms,
        rtcp_mux,
        direction,
    };
    let audio_answer = audio_section(&settings, &payloads);
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(index, offered)| {
            if index == audio_index {
                audio_answer.clone()
            } else {
                rejected_section(offered)
            }
        })
        .collect();

    let negotiated = NegotiatedMedia {
        remote_rtp,
        remote_rtcp: remote_rtcp(audio, remote_rtp, rtcp_mux),
        rtcp_mux,
        codec: negotiated_codec(codec, format.payload_type, audio),
        dtmf: dtmf.map(|event| NegotiatedDtmf {
            payload_type: event.payload_type,
            clock_rate: event.clock_rate,
        }),
        ptime_ms: packet_time(offer, audio, local.ptime_ms),
        direction,
    };
    Ok(Answer { media, negotiated })
}

/// Returns the first codec in `preference` that is offered, with its first offered format.
fn choose_codec<'a>(
    formats: &[RtpFormat<'a>],
    preference: impl Iterator<Item = CodecName>,
) -> Option<(CodecName, RtpFormat<'a>)> {
    for codec in preference {
        if let Some(format) = formats.iter().find(|format| format.codec() == Some(codec)) {
            return Some((codec, *format));
        }
    }
    None
}

/// Returns the IP address where the peer receives media for a section. It is `None` for the
/// hold address `0.0.0.0` or `::` (RFC 3264 §8.4) and for a section with port 0. Fails when
/// the address cannot be used from our media address.
pub(super) fn remote_address(
    sdp: &SessionDescription,
    media: &MediaDescription,
    local_family: IpFamily,
) -> Result<Option<IpAddr>, NegotiationError> {
    if media.port == 0 {
        return Ok(None);
    }
    let connection = sdp
        .connection_for(media)
        .ok_or(NegotiationError::MissingConnection)?;
    if !connection.net_type.eq_ignore_ascii_case("IN") {
        return Err(NegotiationError::UnsupportedNetworkType(excerpt(
            &connection.net_type,
        )));
    }
    let Some(family) = connection.family() else {
        return Err(NegotiationError::UnsupportedAddress(excerpt(
            &connection.addr_type,
        )));
    };
    if family != local_family {
        // RFC 3264 §6: we cannot answer with an address of the other family.
        return Err(NegotiationError::AddressFamilyMismatch {
            offered: family,
            local: local_family,
        });
    }
    // TODO: resolve a host name in c= through the driver; SDP parsing stays free of DNS.
    let ip = connection
        .ip()
        .ok_or_else(|| NegotiationError::UnsupportedAddress(excerpt(&connection.address)))?;
    if ip.is_multicast() {
        return Err(NegotiationError::Multicast(excerpt(&connection.address)));
    }
    Ok((!ip.is_unspecified()).then_some(ip))
}

/// Our direction for a stream the peer described with `peer`. Without a usable peer address
/// we cannot send: a `sendonly` peer (music on hold) gets `recvonly`, and every other case,
/// including RFC 2543 hold with `0.0.0.0` and no attribute, gets `inactive`, never `sendrecv`.
pub(super) fn our_direction(peer: Direction, peer_reachable: bool) -> Direction {
    if peer_reachable {
        return peer.reversed();
    }
    match peer {
        Direction::SendOnly => Direction::RecvOnly,
        Direction::SendRecv | Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
    }
}

/// Returns where RTCP goes: the RTP address with rtcp-mux (RFC 5761 §5.1.1), else `a=rtcp`
/// (RFC 3605 §2.1), else the next port up (RFC 3550 §11).
pub(super) fn remote_rtcp(
    media: &MediaDescription,
    remote_rtp: Option<SocketAddr>,
    rtcp_mux: bool,
) -> Option<SocketAddr> {
    let rtp = remote_rtp?;
    if rtcp_mux {
        return Some(rtp);
    }
    match media.rtcp() {
        Some(rtcp) => {
            let address = rtcp
                .address
                .filter(|address| IpFamily::of(*address) == IpFamily::of(rtp.ip()))
                .unwrap_or(rtp.ip());
            Some(SocketAddr::new(address, rtcp.port))
        }
        None => rtp
            .port()
            .checked_add(1)
            .map(|port| SocketAddr::new(rtp.ip(), port)),
    }
}

/// Returns the packet time to send at. It is the peer's `a=ptime` (media level, else session
/// level), else ours, and never above the peer's `a=maxptime` (RFC 4566 §6).
pub(super) fn packet_time(sdp: &SessionDescription, media: &MediaDescription, ours: u32) -> u32 {
    let session_level = |name: &str| {
        sdp.attributes
            .iter()
            .filter(|attribute| attribute.name.eq_ignore_ascii_case(name))
            .find_map(|attribute| attribute.value.as_deref().and_then(parse_packet_time))
    };
    let ptime = media
        .ptime_ms()
        .or_else(|| session_level("ptime"))
        .unwrap_or(ours);
    match media.maxptime_ms().or_else(|| session_level("maxptime")) {
        Some(maxptime) => ptime.min(maxptime),
        None => ptime,
    }
}

/// Builds the codec as the media path needs it, with the peer's fmtp for that payload type.
pub(super) fn negotiated_codec(
    codec: CodecName,
    payload_type: u8,
    media: &MediaDescription,
) -> NegotiatedCodec {
    NegotiatedCodec {
        name: codec,
        payload_type,
        clock_rate: codec.clock_rate(),
        channels: codec.rtpmap_channels(),
        fmtp: media
            .fmtp(payload_type)
            .map(parse_format_parameters)
            .unwrap_or_default(),
    }
}

/// Lists formats for an error message, such as `18 G729/8000, 98 opus/16000`.
pub(super) fn describe_formats(formats: &[RtpFormat<'_>], media: &MediaDescription) -> String {
    if formats.is_empty() {
        return format!(
            "no usable payload types in `{}`",
            excerpt(&media.formats.join(" "))
        );
    }
    let listed: Vec<String> = formats
        .iter()
        .take(MAX_LISTED_FORMATS)
        .map(|format| {
            format!(
                "{} {}/{}",
                format.payload_type,
                excerpt(format.encoding),
                format.clock_rate
            )
        })
        .collect();
    listed.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalMedia {
        LocalMedia {
            addr: "198.51.100.10".parse().unwrap(),
            port: 30_000,
            codecs: vec![CodecName::Pcmu, CodecName::Pcma],
            ptime_ms: 20,
            rtcp_mux: true,
        }
    }

    fn offer(body: &str) -> SessionDescription {
        let text = format!(
            "v=0\r\no=peer 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n{body}"
        );
        SessionDescription::parse(&text).unwrap()
    }

    #[test]
    fn our_direction_table() {
        let cases = [
            (Direction::SendRecv, true, Direction::SendRecv),
            (Direction::SendOnly, true, Direction::RecvOnly),
            (Direction::RecvOnly, true, Direction::SendOnly),
            (Direction::Inactive, true, Direction::Inactive),
            (Direction::SendRecv, false, Direction::Inactive),
            (Direction::SendOnly, false, Direction::RecvOnly),
            (Direction::RecvOnly, false, Direction::Inactive),
            (Direction::Inactive, false, Direction::Inactive),
        ];
        for (peer, reachable, expected) in cases {
            assert_eq!(
                our_direction(peer, reachable),
                expected,
                "{peer:?} {reachable}"
            );
        }
    }

    #[test]
    fn answer_prefers_our_order() {
        let offer = offer("m=audio 40000 RTP/AVP 8 0\r\n");
        let answer = answer_offer(&offer, &local(), None).unwrap();
        assert_eq!(answer.negotiated.codec.name, CodecName::Pcmu);
        assert_eq!(answer.media[0].formats, ["0"]);
    }

    #[test]
    fn answer_keeps_current_codec() {
        let offer = offer("m=audio 40000 RTP/AVP 8 0\r\n");
        let answer = answer_offer(&offer, &local(), Some(CodecName::Pcma)).unwrap();
        assert_eq!(answer.negotiated.codec.name, CodecName::Pcma);
        let answer = answer_offer(&offer, &local(), Some(CodecName::Opus)).unwrap();
        assert_eq!(answer.negotiated.codec.name, CodecName::Pcmu);
    }

    #[test]
    fn disabled_audio_answered_with_port_zero() {
        let offer = offer("m=audio 0 RTP/AVP 0\r\n");
        let answer = answer_offer(&offer, &local(), None).unwrap();
        assert_eq!(answer.media[0].port, 0);
        assert_eq!(answer.negotiated.direction, Direction::Inactive);
        assert_eq!(answer.negotiated.remote_rtp, None);
        assert_eq!(answer.negotiated.remote_rtcp, None);
    }

    #[test]
    fn srtp_only_is_rejected() {
        let offer = offer("m=audio 40000 RTP/SAVP 0\r\n");
        let error = answer_offer(&offer, &local(), None).err().unwrap();
        assert_eq!(error.warning().0, 302);
    }

    #[test]
    fn plain_rtp_stream_preferred_over_srtp() {
        let offer = offer("m=audio 40002 RTP/SAVP 0\r\nm=audio 40000 RTP/AVP 0\r\n");
        let answer = answer_offer(&offer, &local(), None).unwrap();
        assert_eq!(answer.media[0].port, 0);
        assert_eq!(answer.media[1].port, 30_000);
        assert_eq!(answer.negotiated.remote_rtp.unwrap().port(), 40_000);
    }

    #[test]
    fn rtcp_address_and_port() {
        let plain = offer("m=audio 40000 RTP/AVP 0\r\n");
        let answer = answer_offer(&plain, &local(), None).unwrap();
        assert_eq!(
            answer.negotiated.remote_rtcp,
            Some("203.0.113.5:40001".parse().unwrap())
        );

        let explicit = offer("m=audio 40000 RTP/AVP 0\r\na=rtcp:40011 IN IP4 192.0.2.9\r\n");
        let answer = answer_offer(&explicit, &local(), None).unwrap();
        assert_eq!(
            answer.negotiated.remote_rtcp,
            Some("192.0.2.9:40011".parse().unwrap())
        );

        let top_port = offer("m=audio 65535 RTP/AVP 0\r\n");
        let answer = answer_offer(&top_port, &local(), None).unwrap();
        assert_eq!(answer.negotiated.remote_rtcp, None);
    }

    #[test]
    fn packet_time_sources() {
        let sdp = offer("a=ptime:30\r\nm=audio 40000 RTP/AVP 0\r\n");
        assert_eq!(packet_time(&sdp, &sdp.media[0], 20), 30);
        let sdp = offer("m=audio 40000 RTP/AVP 0\r\na=ptime:40\r\na=maxptime:30\r\n");
        assert_eq!(packet_time(&sdp, &sdp.media[0], 20), 30);
        let sdp = offer("m=audio 40000 RTP/AVP 0\r\na=ptime:abc\r\n");
        assert_eq!(packet_time(&sdp, &sdp.media[0], 20), 20);
        let sdp = offer("a=maxptime:10\r\nm=audio 40000 RTP/AVP 0\r\n");
        assert_eq!(packet_time(&sdp, &sdp.media[0], 20), 10);
    }

    #[test]
    fn host_name_and_multicast_rejected() {
        let host = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4 media.example.net\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(
            answer_offer(&host, &local(), None)
                .err()
                .unwrap()
                .warning()
                .0,
            301
        );
        let multicast = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4 233.252.0.1/127\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(
            answer_offer(&multicast, &local(), None)
                .err()
                .unwrap()
                .warning()
                .0,
            330
        );
    }

    #[test]
    fn missing_connection_rejected() {
        let sdp = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(
            answer_offer(&sdp, &local(), None).err(),
            Some(NegotiationError::MissingConnection)
        );
    }

    #[test]
    fn no_common_codec_lists_offer() {
        let sdp = offer("m=audio 40000 RTP/AVP 18 98\r\na=rtpmap:98 opus/16000\r\n");
        let error = answer_offer(&sdp, &local(), None).err().unwrap();
        assert_eq!(
            error,
            NegotiationError::NoCommonCodec {
                offered: "18 G729/8000, 98 opus/16000".into()
            }
        );
        assert_eq!(error.warning().0, 305);
    }
}
