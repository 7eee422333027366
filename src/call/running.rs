//! An answered call: media session and conversation loop until either side ends it, then the
//! BYE, the CDR and the release of the tenant's slot.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;

use super::CallContext;
use super::metrics;
use super::settings::CallSettings;
use crate::ai::conversation::{
    self, ControlInput, ConversationEnd, ConversationEvent, ConversationOutcome, ProviderChains,
};
use crate::media::engine::{MediaPort, MediaSession};
use crate::media::session::StreamParams;
use crate::media::turn::BargeInSettings;
use crate::observability::Private;
use crate::sip::{ActiveCall, CallEvent, EndReason};
use crate::tenancy::{CallRecord, CallSlot, LiveEvent, LiveEventKind, Tenant, TurnRole};

/// How long a transfer may take before the call is ended anyway.
const TRANSFER_WAIT: Duration = Duration::from_secs(30);
/// How long the conversation loop gets to hand back its turns after the media stopped.
const CONVERSATION_DRAIN: Duration = Duration::from_secs(3);

/// A call that was just answered.
pub(super) struct Answered {
    pub active: ActiveCall,
    pub port: MediaPort,
    pub tenant: Tenant,
    pub settings: CallSettings,
    pub strict_source: bool,
    pub setup: Duration,
}

/// Maps the SIP reason a dialog ended to the CDR end reason.
fn sip_end_reason(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::RemoteHangup(_) => "caller-bye",
        EndReason::LocalHangup(_) => "local-bye",
        EndReason::SessionExpired => "session-expired",
        EndReason::NoAck => "no-ack",
        EndReason::BadAnswer => "bad-answer",
        EndReason::DialogLost => "dialog-lost",
        EndReason::Shutdown => "shutdown",
    }
}

/// Runs the answered call to its end and writes its record.
pub(super) async fn run(
    context: &Arc<CallContext>,
    answered: Answered,
    mut record: CallRecord,
    slot: CallSlot,
) {
    let Answered {
        mut active,
        port,
        tenant,
        settings,
        strict_source,
        setup,
    } = answered;
    let call_id = active.call_id.clone();
    let codec = active
        .negotiated
        .codec
        .name
        .encoding_name()
        .to_ascii_lowercase();
    record.codec.clone_from(&codec);
    let answered_at = std::time::Instant::now();
    tracing::info!(
        %call_id,
        tenant = %tenant.name,
        %codec,
        from = %Private(&record.from),
        to = %Private(&record.to),
        setup_ms = setup.as_millis() as u64,
        "call started"
    );
    context.events.publish(
        tenant.id,
        LiveEvent::now(
            &call_id,
            LiveEventKind::CallState {
                state: "answered".into(),
            },
        ),
    );

    let barge_in =
        BargeInSettings::from_config(&context.config.media, settings.min_interruption_ms());
    let mut params = StreamParams::from_negotiated(&active.negotiated, strict_source, barge_in);
    if settings.record {
        params.record = Some(recording_path(&context.config.media.record_dir, &call_id));
    }
    let chains = match context.providers.chains(&settings, &tenant.provider_keys) {
        Ok(chains) => chains,
        Err(error) => {
            tracing::warn!(%call_id, tenant = %tenant.name, %error, "providers unavailable");
            ProviderChains::default()
        }
    };

    let (end_reason, outcome) = match context.media.start_session(port, params) {
        Ok(session) => {
            let scope = Scope {
                context,
                tenant: &tenant,
                settings: &settings,
                call_id: &call_id,
                strict_source,
            };
            converse(&scope, &mut active, session, chains).await
        }
        Err(error) => {
            tracing::warn!(%call_id, %error, "media session failed to start");
            active
                .control
                .hangup("SIP;cause=503;text=\"media unavailable\"");
            ("media-failed".to_owned(), None)
        }
    };

    if let Some(outcome) = outcome {
        record.turns = outcome.turns;
    }
    record.end_at = Utc::now();
    record.end_reason.clone_from(&end_reason);
    let duration = answered_at.elapsed();
    metrics::CALLS_TOTAL.with_label_values(&["answered"]).inc();
    metrics::CALL_DURATION.observe(duration.as_secs_f64());
    tracing::info!(
        %call_id,
        tenant = %tenant.name,
        %codec,
        duration_ms = duration.as_millis() as u64,
        end_reason = %end_reason,
        turns = record.turns.len(),
        "call ended"
    );
    slot.release().await;
    let duration_ms = record.duration_ms();
    context.store.record_call(record).await;
    context.events.publish(
        tenant.id,
        LiveEvent::now(
            &call_id,
            LiveEventKind::CallEnded {
                reason: end_reason,
                duration_ms,
            },
        ),
    );
}

/// References a running call keeps while it converses.
#[derive(Clone, Copy)]
struct Scope<'a> {
    context: &'a Arc<CallContext>,
    tenant: &'a Tenant,
    settings: &'a CallSettings,
    call_id: &'a str,
    strict_source: bool,
}

/// Drives SIP events, the media session and the conversation loop until the call ends.
/// Returns the CDR end reason and the conversation's outcome.
async fn converse(
    scope: &Scope<'_>,
    active: &mut ActiveCall,
    mut session: MediaSession,
    chains: ProviderChains,
) -> (String, Option<ConversationOutcome>) {
    let Scope {
        context,
        tenant,
        settings,
        call_id,
        strict_source,
    } = *scope;
    let (_, placeholder) = mpsc::channel(1);
    let media_events = std::mem::replace(&mut session.events, placeholder);
    let (control_tx, control_rx) = mpsc::channel(32);
    let (events_tx, mut events_rx) = mpsc::channel(256);
    let mut conversation = tokio::spawn(conversation::run(
        settings.conversation.clone(),
        chains,
        media_events,
        session.playout.clone(),
        control_rx,
        events_tx,
    ));
    let max_secs = context.config.server.max_call_secs;
    let max_call = async {
        if max_secs == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(max_secs)).await;
    };
    tokio::pin!(max_call);

    let mut outcome = None;
    let end_reason = loop {
        tokio::select! {
            event = active.events.recv() => match event {
                Some(CallEvent::MediaChanged(negotiated)) => {
                    let barge_in = BargeInSettings::from_config(
                        &context.config.media,
                        settings.min_interruption_ms(),
                    );
                    let mut params = StreamParams::from_negotiated(&negotiated, strict_source, barge_in);
                    if settings.record {
                        params.record = Some(recording_path(&context.config.media.record_dir, call_id));
                    }
                    let hold = params.on_hold();
                    if let Err(error) = session.update(params) {
                        tracing::warn!(%call_id, %error, "media update failed");
                    }
                    let _ = control_tx.try_send(ControlInput::Hold(hold));
                    let state = if hold { "on_hold" } else { "answered" };
                    context.events.publish(tenant.id, LiveEvent::now(call_id, LiveEventKind::CallState { state: state.into() }));
                    tracing::debug!(%call_id, hold, "media changed");
                }
                Some(CallEvent::Dtmf { digit, .. }) => {
                    let _ = control_tx.try_send(ControlInput::Dtmf(digit));
                }
                Some(CallEvent::Transfer(result)) => {
                    tracing::debug!(%call_id, ?result, "transfer finished");
                }
                Some(CallEvent::Ended(reason)) => {
                    tracing::debug!(%call_id, %reason, "dialog ended");
                    break sip_end_reason(&reason).to_owned();
                }
                None => break "dialog-lost".to_owned(),
            },
            Some(event) = events_rx.recv() => publish(context, tenant, call_id, event),
            finished = &mut conversation => {
                let finished = finished.unwrap_or_else(|error| {
                    tracing::error!(%call_id, %error, "conversation task failed");
                    ConversationOutcome { turns: Vec::new(), end: ConversationEnd::MediaClosed }
                });
                let reason = end_by_agent(active, &finished.end, call_id).await;
                outcome = Some(finished);
                break reason;
            }
            () = &mut max_call => {
                active.control.hangup("SIP;cause=200;text=\"maximum call duration\"");
                break "max-duration".to_owned();
            }
        }
    };
    let stats = session.stop().await;
    if outcome.is_none() {
        // The media events channel closed with the session, so the loop returns its turns.
        outcome = match tokio::time::timeout(CONVERSATION_DRAIN, &mut conversation).await {
            Ok(Ok(finished)) => Some(finished),
            Ok(Err(_)) => None,
            Err(_) => {
                conversation.abort();
                None
            }
        };
    }
    while let Ok(event) = events_rx.try_recv() {
        publish(context, tenant, call_id, event);
    }
    tracing::debug!(
        %call_id,
        received = stats.received,
        lost = stats.lost,
        jitter_ms = stats.jitter.as_millis() as u64,
        sent = stats.sent,
        "media stats"
    );
    (end_reason, outcome)
}

/// Ends the dialog the way the conversation asked; returns the CDR end reason.
async fn end_by_agent(active: &mut ActiveCall, end: &ConversationEnd, call_id: &str) -> String {
    match end {
        ConversationEnd::Hangup => {
            active
                .control
                .hangup("SIP;cause=200;text=\"Call completed\"");
            "agent-bye".to_owned()
        }
        ConversationEnd::MediaTimeout => {
            // Q.850 cause 102: recovery on timer expiry.
            active
                .control
                .hangup("Q.850;cause=102;text=\"RTP timeout\"");
            "media-timeout".to_owned()
        }
        ConversationEnd::MediaClosed => {
            active
                .control
                .hangup("SIP;cause=500;text=\"media stopped\"");
            "media-stopped".to_owned()
        }
        ConversationEnd::Transfer { target } => {
            tracing::info!(%call_id, "transferring call");
            match tokio::time::timeout(TRANSFER_WAIT, active.control.refer(target)).await {
                Ok(Ok(())) => {
                    active
                        .control
                        .hangup("SIP;cause=200;text=\"Call transferred\"");
                    "transferred".to_owned()
                }
                Ok(Err(error)) => {
                    tracing::warn!(%call_id, %error, "transfer failed");
                    active
                        .control
                        .hangup("SIP;cause=480;text=\"transfer failed\"");
                    "transfer-failed".to_owned()
                }
                Err(_) => {
                    active
                        .control
                        .hangup("SIP;cause=408;text=\"transfer timed out\"");
                    "transfer-failed".to_owned()
                }
            }
        }
    }
}

/// Forwards a conversation event to the tenant's live stream.
fn publish(context: &CallContext, tenant: &Tenant, call_id: &str, event: ConversationEvent) {
    let kind = match event {
        ConversationEvent::Transcript {
            role,
            text,
            is_final,
        } => LiveEventKind::Transcript {
            role,
            text,
            is_final,
        },
        ConversationEvent::BargeIn { heard_text, cut } => {
            tracing::debug!(%call_id, cut_ms = cut.as_millis() as u64, "barge-in");
            LiveEventKind::BargeIn { heard_text }
        }
        ConversationEvent::Turn(turn) => {
            if turn.role != TurnRole::Agent || turn.latency_ms.is_empty() {
                return;
            }
            LiveEventKind::TurnLatency {
                stages: turn.latency_ms,
            }
        }
    };
    context
        .events
        .publish(tenant.id, LiveEvent::now(call_id, kind));
}

/// Returns where a call's recording goes: `<record_dir>/<date>/<call id>.wav`, with the Call-ID
/// reduced to characters that are safe in a file name.
fn recording_path(dir: &str, call_id: &str) -> PathBuf {
    let safe: String = call_id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.').to_owned();
    let day = Utc::now().format("%Y-%m-%d").to_string();
    PathBuf::from(dir).join(day).join(format!("{safe}.wav"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_paths_cannot_escape_the_directory() {
        let path = recording_path("/var/lib/voicegate", "../../etc/passwd@host");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(path.starts_with("/var/lib/voicegate"));
        assert!(!name.contains('/'));
        assert_eq!(path.components().count(), 6);
        assert!(name.ends_with(".wav"));
    }

    #[test]
    fn end_reasons_name_the_side() {
        assert_eq!(sip_end_reason(&EndReason::RemoteHangup(None)), "caller-bye");
        assert_eq!(
            sip_end_reason(&EndReason::SessionExpired),
            "session-expired"
        );
        assert_eq!(sip_end_reason(&EndReason::Shutdown), "shutdown");
    }
}
