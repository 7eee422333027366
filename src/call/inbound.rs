//! An offered call up to the answer: the dialled number, the tenant's admission, ringing,
//! an RTP port and the 200 OK.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::CallContext;
use super::metrics;
use super::running::{self, Answered};
use super::settings::CallSettings;
use crate::observability::Private;
use crate::sip::sdp::{CodecName, LocalMedia};
use crate::sip::{AnswerError, IncomingCall, TrunkConfig};
use crate::tenancy::{
    CallRecord, LiveEvent, LiveEventKind, NumberSources, normalize_number, resolve_dialled,
};

/// Runs one offered call to its end.
pub(super) async fn handle(context: Arc<CallContext>, call: IncomingCall) {
    let invite_at = Utc::now();
    let received = Instant::now();
    let entry = context.calls.enter(&call.call_id);
    let _gauge = metrics::ActiveGauge::new();

    let defaults = TrunkConfig::default();
    let (trunk_name, number_from, trusted, country, strict_source) = match &call.trunk {
        Some(trunk) => (
            trunk.name.clone(),
            trunk.number_from.clone(),
            trunk.trusted,
            trunk.default_country.clone(),
            trunk.strict_rtp_source,
        ),
        None => (
            String::new(),
            defaults.number_from,
            false,
            defaults.default_country,
            context.config.rtp.strict_source,
        ),
    };
    let sources = NumberSources {
        request_uri: &call.request_uri,
        to: &call.to,
        p_called_party_id: call.p_called_party_id.as_deref(),
        diversion: &call.diversion,
    };
    let dialled = resolve_dialled(&sources, &number_from, trusted, &country);
    let to = dialled.number.clone().unwrap_or_default();
    let from = normalize_number(&call.from, &country).unwrap_or_else(|| user_part(&call.from));

    let admission = match context
        .store
        .route_and_admit(dialled.number.as_deref(), &call.call_id)
        .await
    {
        Ok(admission) => admission,
        Err(rejection) => {
            tracing::info!(
                call_id = %call.call_id,
                to = %Private(&to),
                status = rejection.status,
                reason = %rejection,
                "call rejected"
            );
            let headers = rejection
                .headers()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            call.server
                .reject(rejection.status, rejection.reason_phrase(), headers);
            metrics::CALLS_TOTAL.with_label_values(&["rejected"]).inc();
            return;
        }
    };
    let tenant = admission.tenant;
    let settings = CallSettings::resolve(&context.config, &tenant.settings, &call.call_id);
    context.events.publish(
        tenant.id,
        LiveEvent::now(
            &call.call_id,
            LiveEventKind::CallStarted {
                from: from.clone(),
                to: to.clone(),
            },
        ),
    );

    let mut record = CallRecord {
        call_id: call.call_id.clone(),
        tenant_id: tenant.id,
        from,
        to,
        forwarded_from: dialled.forwarded_from().unwrap_or_default().to_owned(),
        trunk: trunk_name,
        codec: String::new(),
        invite_at,
        answer_at: None,
        end_at: invite_at,
        end_reason: String::new(),
        sip_status: 0,
        cost_micros: 0,
        turns: Vec::new(),
    };

    let failure = 'answer: {
        call.server.ring();
        if settings.answer_delay_ms > 0 {
            let delay = tokio::time::sleep(Duration::from_millis(settings.answer_delay_ms));
            tokio::select! {
                () = delay => {}
                () = call.server.cancelled() => break 'answer (487, "cancel".to_owned()),
            }
        }

        let ip = match media_ip(&context, call.source) {
            Ok(ip) => ip,
            Err(message) => {
                tracing::error!(call_id = %call.call_id, %message, "no address for media");
                call.server.reject(
                    503,
                    "Service Unavailable",
                    vec![(
                        "Reason".into(),
                        "SIP;cause=503;text=\"no media address\"".into(),
                    )],
                );
                break 'answer (503, "no-media-address".to_owned());
            }
        };
        let port = match context.media.allocate(ip.bind) {
            Ok(port) => port,
            Err(error) => {
                tracing::warn!(call_id = %call.call_id, %error, "no RTP port");
                call.server.reject(
                    503,
                    "Service Unavailable",
                    vec![
                        ("Reason".into(), "SIP;cause=503;text=\"no RTP port\"".into()),
                        ("Retry-After".into(), "5".into()),
                    ],
                );
                break 'answer (503, "no-rtp-port".to_owned());
            }
        };
        let local = LocalMedia {
            addr: ip.advertised,
            port: port.rtp_port(),
            codecs: codecs(&context.config.media.codecs),
            ptime_ms: context.config.media.ptime_ms,
            rtcp_mux: true,
        };
        match call.server.answer(local).await {
            Ok(active) => {
                record.answer_at = Some(Utc::now());
                record.sip_status = 200;
                entry.answered(active.control.clone());
                let answered = Answered {
                    active,
                    port,
                    tenant,
                    settings,
                    strict_source,
                    setup: received.elapsed(),
                };
                running::run(&context, answered, record, admission.slot).await;
                return;
            }
            Err(AnswerError::Cancelled) => (487, "cancel".to_owned()),
            Err(AnswerError::NotAcceptable { code, text }) => {
                tracing::info!(call_id = %call.call_id, code, %text, "no common codec");
                (488, "not-acceptable".to_owned())
            }
            Err(AnswerError::NoAck) => (200, "no-ack".to_owned()),
            Err(AnswerError::NoAnswerInAck) => (200, "bad-answer".to_owned()),
            Err(error) => {
                tracing::warn!(call_id = %call.call_id, %error, "answer failed");
                (500, "answer-failed".to_owned())
            }
        }
    };

    let (status, reason) = failure;
    let result = if status == 487 { "cancelled" } else { "failed" };
    metrics::CALLS_TOTAL.with_label_values(&[result]).inc();
    tracing::info!(
        call_id = %record.call_id,
        tenant = %tenant.name,
        status,
        end_reason = %reason,
        "call ended before the answer"
    );
    record.sip_status = status;
    record.end_reason.clone_from(&reason);
    record.end_at = Utc::now();
    admission.slot.release().await;
    let tenant_id = record.tenant_id;
    let call_id = record.call_id.clone();
    context.store.record_call(record).await;
    context.events.publish(
        tenant_id,
        LiveEvent::now(
            &call_id,
            LiveEventKind::CallEnded {
                reason,
                duration_ms: 0,
            },
        ),
    );
}

/// The address a call's RTP socket binds to and the one the SDP announces.
struct MediaIp {
    bind: IpAddr,
    advertised: IpAddr,
}

/// Picks the media addresses: `rtp.bind_addr` (or every address) to bind, and
/// `rtp.public_addr`, `sip.public_addr`, the bind address or the local address that routes to
/// the caller for the SDP.
fn media_ip(context: &CallContext, peer: SocketAddr) -> Result<MediaIp, String> {
    let config = &context.config;
    let bind: IpAddr = if config.rtp.bind_addr.is_empty() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        config.rtp.bind_addr.parse().map_err(|_| {
            format!(
                "rtp.bind_addr `{}` is not an IP address",
                config.rtp.bind_addr
            )
        })?
    };
    let public = [&config.rtp.public_addr, &config.sip.public_addr]
        .into_iter()
        .find(|value| !value.is_empty())
        .and_then(|value| public_ip(value));
    let advertised = match public {
        Some(ip) => ip,
        None if !bind.is_unspecified() => bind,
        None => route_to(peer).ok_or_else(|| format!("no local route to {peer}"))?,
    };
    let bind = if bind.is_unspecified() && advertised.is_ipv6() != bind.is_ipv6() {
        advertised
    } else {
        bind
    };
    Ok(MediaIp { bind, advertised })
}

/// Reads the IP of a `public_addr` value (`203.0.113.5` or `203.0.113.5:5060`).
fn public_ip(value: &str) -> Option<IpAddr> {
    value
        .parse::<IpAddr>()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// Returns the local address the kernel would use to reach `peer`. Connecting a UDP socket
/// sends nothing, because it only selects the route.
fn route_to(peer: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if peer.is_ipv6() {
        "[::]:0".parse().ok()?
    } else {
        "0.0.0.0:0".parse().ok()?
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(peer).ok()?;
    socket.local_addr().ok().map(|addr| addr.ip())
}

/// Codecs from `media.codecs`, in preference order. Validation of the configuration already
/// rejected unknown names.
pub(crate) fn codecs(names: &[String]) -> Vec<CodecName> {
    names
        .iter()
        .filter_map(|name| match name.to_ascii_lowercase().as_str() {
            "pcmu" => Some(CodecName::Pcmu),
            "pcma" => Some(CodecName::Pcma),
            "g722" => Some(CodecName::G722),
            "opus" => Some(CodecName::Opus),
            _ => None,
        })
        .collect()
}

/// Returns the user part of a From URI, for CDRs when it is not a telephone number.
fn user_part(uri: &str) -> String {
    let inner = uri
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(uri, |(inner, _)| inner);
    let without_scheme = inner.split_once(':').map_or(inner, |(_, rest)| rest);
    let user = without_scheme
        .split_once('@')
        .map_or(without_scheme, |(user, _)| user);
    user.split(';')
        .next()
        .unwrap_or_default()
        .chars()
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_map_in_order() {
        let names = vec!["opus".into(), "PCMU".into(), "g722".into(), "pcma".into()];
        assert_eq!(
            codecs(&names),
            vec![
                CodecName::Opus,
                CodecName::Pcmu,
                CodecName::G722,
                CodecName::Pcma
            ]
        );
    }

    #[test]
    fn user_part_of_from_values() {
        assert_eq!(user_part("\"Ann\" <sip:alice@example.com>;tag=1"), "alice");
        assert_eq!(user_part("sip:anonymous@anonymous.invalid"), "anonymous");
        assert_eq!(user_part("<sip:bob;x=y@host>"), "bob");
    }

    #[test]
    fn public_addr_forms() {
        assert_eq!(public_ip("203.0.113.5"), "203.0.113.5".parse().ok());
        assert_eq!(public_ip("203.0.113.5:5060"), "203.0.113.5".parse().ok());
        assert_eq!(public_ip("[2001:db8::1]:5060"), "2001:db8::1".parse().ok());
        assert_eq!(public_ip("sip.example.com"), None);
    }

    #[test]
    fn loopback_peer_routes_from_loopback() {
        let peer: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(route_to(peer), Some(IpAddr::from([127, 0, 0, 1])));
    }
}
