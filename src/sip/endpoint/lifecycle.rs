//! Ending calls, the application's hangup, shutdown, and the timers a call owns: 100 Trying,
//! 2xx and reliable provisional retransmission, the answer delay and session timers.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info};

use super::call::{Phase, Role};
use super::config::SUPPORTED;
use super::core::{Endpoint, Purpose};
use super::schedule::Owner;
use super::types::{AnswerError, CallEvent, CallRef, EndReason, Event};
use super::uas::invite_response;
use crate::sip::message::{Method, clean};
use crate::sip::metrics;

/// Returns the value of a Reason header (RFC 3326) for `text`: kept when it already is one
/// (`Q.850;cause=102;text="RTP timeout"`), else wrapped as normal clearing (Q.850 cause 16).
pub fn reason_header(text: &str) -> String {
    let lower = text.trim_start().to_ascii_lowercase();
    if lower.starts_with("q.850;") || lower.starts_with("sip;") {
        return clean(text).into_owned();
    }
    let quoted: String = text
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    format!("Q.850;cause=16;text=\"{}\"", quoted.replace('\\', "/"))
}

impl Endpoint {
    /// Removes a call and everything that indexes it. Transactions keep running until their
    /// timers end them.
    pub(super) fn finish_call(&mut self, call_ref: CallRef) {
        let Some(call) = self.calls.remove(&call_ref) else {
            return;
        };
        let dialog = &call.dialog;
        self.core
            .dialogs
            .remove(&(dialog.call_id.clone(), dialog.local_tag.clone()));
        if call.role == Role::Uas {
            self.core
                .inbound
                .remove(&(dialog.call_id.clone(), dialog.remote_tag.clone()));
        }
        if let Some(trunk) = call.trunk {
            self.core.trunks.release(trunk);
        }
        self.core.schedule.set(Owner::Call(call_ref), None);
        if call.counted {
            metrics::CALLS_ACTIVE.dec();
        }
        debug!(call_id = %dialog.call_id, "call state released");
    }

    /// Sends BYE with a Reason header when the dialog is confirmed or awaiting its ACK,
    /// reports the end when `report` is set, and removes the call.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        reason: &str,
        end: EndReason,
        report: bool,
    ) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if matches!(call.phase, Phase::Confirmed | Phase::AwaitingAck) {
            let seq = call.dialog.next_seq();
            let branch = self.core.new_branch();
            let (mut builder, destination) = call.dialog.request(&Method::Bye, seq, &branch);
            builder.header("Reason", reason_header(reason));
            builder.header_if("User-Agent", &self.core.config.user_agent);
            let data = Bytes::from(builder.finish_empty());
            self.core.start_client_non_invite(
                now,
                &branch,
                Method::Bye,
                destination,
                data,
                None,
                Purpose::Bye,
            );
            info!(call_id = %call.dialog.call_id, reason = %end, "call ended by us");
        }
        call.phase = Phase::Ended;
        if report && !call.end_reported {
            call.end_reported = true;
            self.core.events.push_back(Event::Call {
                call: call_ref,
                event: CallEvent::Ended(end),
            });
        }
        self.finish_call(call_ref);
    }

    /// Ends a call from the application: BYE with a Reason header for an established call,
    /// CANCEL for an outbound call still ringing, 480 for an inbound call not yet answered.
    /// `reason` is either a whole Reason value or free text. Idempotent.
    pub fn hangup(&mut self, now: Instant, call_ref: CallRef, reason: &str) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match (call.role, call.phase) {
            (_, Phase::Offered | Phase::AnswerQueued) => {
                self.reject(now, call_ref, 480, "Temporarily Unavailable", &[]);
            }
            // RFC 3261 §15: no BYE before the ACK; it goes out when the ACK arrives.
            (_, Phase::AwaitingAck) => call.bye_pending = Some(reason.to_string()),
            (Role::Uac, Phase::Calling) => self.cancel(now, call_ref),
            (_, Phase::Confirmed) => {
                let end = EndReason::LocalHangup(reason.to_string());
                self.end_call(now, call_ref, reason, end, true);
            }
            (_, Phase::Ended | Phase::Calling) => {}
        }
    }

    /// Ends every call for shutdown: BYE for established ones, 503 for unanswered inbound
    /// ones, CANCEL for outbound ones still ringing.
    pub fn hangup_all(&mut self, now: Instant) {
        let refs: Vec<CallRef> = self.calls.keys().copied().collect();
        for call_ref in refs {
            let Some(call) = self.calls.get(&call_ref) else {
                continue;
            };
            match call.phase {
                Phase::Offered | Phase::AnswerQueued => {
                    let retry = self.core.config.retry_after_secs.to_string();
                    self.reject(
                        now,
                        call_ref,
                        503,
                        "Service Unavailable",
                        &[("Retry-After".into(), retry)],
                    );
                    self.core.events.push_back(Event::AnswerFailed {
                        call: call_ref,
                        error: AnswerError::Shutdown,
                    });
                }
                Phase::Confirmed | Phase::AwaitingAck => {
                    self.end_call(
                        now,
                        call_ref,
                        "Q.850;cause=16;text=\"server shutdown\"",
                        EndReason::Shutdown,
                        true,
                    );
                }
                Phase::Calling => self.cancel(now, call_ref),
                Phase::Ended => {}
            }
        }
    }

    /// Runs the call's due timers.
    pub(super) fn on_call_timer(&mut self, now: Instant, call_ref: CallRef) {
        self.send_trying_if_due(now, call_ref);
        if !self.retransmit_ok(now, call_ref) || !self.retransmit_reliable(now, call_ref) {
            return;
        }
        if matches!(self.calls.get(&call_ref), Some(c) if c.phase == Phase::AnswerQueued) {
            self.try_send_ok(now, call_ref);
        }
        if !self.run_session_timer(now, call_ref) {
            return;
        }
        if let Some(call) = self.calls.get(&call_ref) {
            self.core.reschedule_call(call);
        }
    }

    fn send_trying_if_due(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.trying_at.is_none_or(|at| at > now) {
            return;
        }
        call.trying_at = None;
        // 100 Trying carries no To tag (RFC 3261 §8.2.6.1).
        let Some(invite) = &call.invite else {
            return;
        };
        let mut builder =
            crate::sip::message::response_to(invite, 100, "Trying", None, call.dialog.peer.addr);
        self.core.decorate_response(&mut builder);
        if let Some(tx) = call.invite_tx {
            self.core
                .respond_invite(now, tx, 100, Bytes::from(builder.finish_empty()));
        }
    }

    /// Retransmits our 2xx until the ACK (RFC 3261 §13.3.1.4); without an ACK for 64*T1 the
    /// dialog ends with BYE. Returns false when the call ended.
    fn retransmit_ok(&mut self, now: Instant, call_ref: CallRef) -> bool {
        let timers = self.core.config.timers;
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return false;
        };
        let Some((retransmit, _)) = &mut call.ok_retransmit else {
            return true;
        };
        if now >= retransmit.give_up_at {
            call.ok_retransmit = None;
            let initial = call.phase == Phase::AwaitingAck;
            info!(call_id = %call.dialog.call_id, "no ACK for our 200; ending the call");
            if initial {
                self.core.events.push_back(Event::AnswerFailed {
                    call: call_ref,
                    error: AnswerError::NoAck,
                });
            }
            let reason = "SIP;cause=408;text=\"ACK timeout\"";
            self.end_call(now, call_ref, reason, EndReason::NoAck, !initial);
            return false;
        }
        if now >= retransmit.next_at {
            let (data, destination) = (retransmit.data.clone(), retransmit.destination);
            retransmit.advance(now, &timers);
            metrics::RETRANSMISSIONS.with_label_values(&["2xx"]).inc();
            self.core.send(destination, data);
        }
        true
    }

    /// Retransmits a reliable provisional until its PRACK (RFC 3262 §3); after 64*T1 the
    /// INVITE gets 504. Returns false when the call ended.
    fn retransmit_reliable(&mut self, now: Instant, call_ref: CallRef) -> bool {
        let timers = self.core.config.timers;
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return false;
        };
        let Some((retransmit, _)) = &mut call.reliable else {
            return true;
        };
        if now >= retransmit.give_up_at {
            call.reliable = None;
            let builder = invite_response(&self.core, call, 504, "Server Time-out");
            if let Some(tx) = call.invite_tx {
                self.core
                    .respond_invite(now, tx, 504, Bytes::from(builder.finish_empty()));
            }
            info!(call_id = %call.dialog.call_id, "no PRACK for our reliable provisional");
            self.core.events.push_back(Event::AnswerFailed {
                call: call_ref,
                error: AnswerError::NoPrack,
            });
            self.finish_call(call_ref);
            return false;
        }
        if now >= retransmit.next_at {
            let (data, destination) = (retransmit.data.clone(), retransmit.destination);
            retransmit.advance(now, &timers);
            metrics::RETRANSMISSIONS
                .with_label_values(&["reliable_provisional"])
                .inc();
            self.core.send(destination, data);
        }
        true
    }

    /// Refreshes the session or ends it when no refresh came (RFC 4028 §10). Returns false
    /// when the call ended.
    fn run_session_timer(&mut self, now: Instant, call_ref: CallRef) -> bool {
        let Some(call) = self.calls.get(&call_ref) else {
            return false;
        };
        let Some(timer) = &call.session_timer else {
            return true;
        };
        if call.phase != Phase::Confirmed {
            return true;
        }
        if now >= timer.expires_at() {
            let reason = "SIP;cause=408;text=\"session timer expired\"";
            self.end_call(now, call_ref, reason, EndReason::SessionExpired, true);
            return false;
        }
        if call.our_offer_tx.is_none() && timer.refresh_at().is_some_and(|at| now >= at) {
            self.send_refresh(now, call_ref);
        }
        true
    }

    /// Sends a session refresh: UPDATE without a body when the peer allows it, else a
    /// re-INVITE with our unchanged offer (RFC 4028 §7.1).
    fn send_refresh(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let Some(timer) = &call.session_timer else {
            return;
        };
        let session_expires = timer.request_value();
        let seq = call.dialog.next_seq();
        let branch = self.core.new_branch();
        let method = if call.peer_allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let (mut builder, destination) = call.dialog.request(&method, seq, &branch);
        builder.header("Session-Expires", session_expires);
        builder.header("Supported", SUPPORTED);
        builder.header_if("User-Agent", &self.core.config.user_agent);
        debug!(call_id = %call.dialog.call_id, %method, "sending session refresh");
        let tx = if method == Method::Update {
            let data = Bytes::from(builder.finish_empty());
            self.core.start_client_non_invite(
                now,
                &branch,
                method,
                destination,
                data,
                Some(call_ref),
                Purpose::Update,
            )
        } else {
            let Some(media) = call.media.as_mut() else {
                return;
            };
            let offer = media.offer().to_string();
            builder.header("Allow", super::config::ALLOW);
            let data = Bytes::from(builder.finish("application/sdp", offer.as_bytes()));
            self.core
                .start_client_invite(now, &branch, destination, data, call_ref, false)
        };
        call.our_offer_tx = Some(tx);
        self.core.reschedule_call(call);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_values() {
        assert_eq!(
            reason_header("Q.850;cause=102;text=\"RTP timeout\""),
            "Q.850;cause=102;text=\"RTP timeout\""
        );
        assert_eq!(
            reason_header("caller said \"bye\""),
            "Q.850;cause=16;text=\"caller said 'bye'\""
        );
        assert!(!reason_header("a\r\nX-Evil: 1").contains('\n'));
    }
}
