//! Requests we originate: outbound calls (INVITE, CANCEL, ACK), and REFER and INFO inside a
//! call, with the handling of their responses.

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info};

use super::call::{Call, PendingRefer, Phase, Role, UacInvite};
use super::config::ALLOW;
use super::core::{Endpoint, Purpose, Tx};
use super::dialog::{Dialog, literal_address};
use super::dtmf::info_body;
use super::schedule::TxId;
use super::session_timer::SessionTimer;
use super::types::{
    CallEvent, CallRef, Destination, EndReason, Event, OutgoingInvite, TransferResult,
};
use crate::sip::error::SipError;
use crate::sip::message::{HeaderAccess, MessageBuilder, Method, Response, parse_uri};
use crate::sip::metrics;
use crate::sip::sdp::{LocalSession, SessionDescription};
use crate::sip::transaction::InviteResponseAction;

impl Endpoint {
    /// Places an outbound call. Progress, the answer and failures arrive as events.
    pub fn invite(&mut self, now: Instant, request: OutgoingInvite) -> Result<CallRef, SipError> {
        let target = normalize_target(&request.target).ok_or_else(|| SipError::InvalidTarget {
            target: request.target.clone(),
            reason: "not a sip: URI or user@host",
        })?;
        let (addr, transport) =
            literal_address(&target).ok_or_else(|| SipError::InvalidTarget {
                target: request.target.clone(),
                reason: "host must be an IP address (no DNS lookups are made)",
            })?;
        let transport = transport.unwrap_or(request.transport);
        let local = self
            .core
            .local_addr(transport)
            .ok_or(SipError::NoTransport(transport))?;
        let destination = Destination {
            transport,
            addr,
            connection: None,
        };
        let contact = self.core.local_contact(transport, local);
        let from_uri = from_uri(&request.from, &contact.host_port);

        let id = CallRef(self.core.next_id());
        let local_tag = self.core.new_tag();
        let call_id = format!("{:016x}@{}", self.core.random_u64(), contact.host_port);
        let seq = self.core.random_u31() >> 8;
        let branch = self.core.new_branch();
        let mut media = LocalSession::new(request.local.clone(), self.core.random_u64());
        let offer = media.offer().to_string();

        let via = contact.via(&branch);
        let mut builder = MessageBuilder::request(&Method::Invite, &target);
        builder.header("Via", &via);
        builder.header("Max-Forwards", "70");
        builder.header("From", format_args!("<{from_uri}>;tag={local_tag}"));
        builder.header("To", format_args!("<{target}>"));
        builder.header("Call-ID", &call_id);
        builder.header("CSeq", format_args!("{seq} INVITE"));
        builder.header("Contact", format_args!("<{}>", contact.uri()));
        builder.header("Allow", ALLOW);
        builder.header("Supported", "timer");
        let timers = self.core.config.session_timer;
        builder.header("Session-Expires", timers.session_expires);
        builder.header("Min-SE", timers.min_se);
        builder.header_if("User-Agent", &self.core.config.user_agent);
        for (name, value) in &request.headers {
            builder.header(name, value);
        }
        let data = Bytes::from(builder.finish("application/sdp", offer.as_bytes()));

        let dialog = Dialog {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: String::new(),
            local_party: format!("<{from_uri}>;tag={local_tag}"),
            remote_party: format!("<{target}>"),
            local_seq: seq,
            remote_seq: None,
            remote_target: target.clone(),
            route_set: Vec::new(),
            peer: destination,
            local: contact,
        };
        let tx = self
            .core
            .start_client_invite(now, &branch, destination, data, id, true);
        let mut call = Call::new(id, Role::Uac, Phase::Calling, dialog, now);
        call.invite_tx = Some(tx);
        call.media = Some(media);
        call.counted = true;
        call.uac_invite = Some(UacInvite {
            request_uri: target,
            via,
            routes: Vec::new(),
            seq,
            destination,
            tx,
        });
        self.core.dialogs.insert((call_id.clone(), local_tag), id);
        self.calls.insert(id, call);
        metrics::CALLS_STARTED
            .with_label_values(&["outbound"])
            .inc();
        metrics::CALLS_ACTIVE.inc();
        info!(%call_id, destination = %addr, "outbound call started");
        Ok(id)
    }

    /// Cancels an outbound call that has no final response yet (RFC 3261 §9.1). Before any
    /// provisional arrived the CANCEL waits for one.
    pub fn cancel(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.role != Role::Uac || call.phase != Phase::Calling {
            return;
        }
        let Some(invite) = call.uac_invite.clone() else {
            return;
        };
        let proceeding = matches!(
            self.core.txs.get(&invite.tx),
            Some(Tx::ClientInvite { tx, .. }) if tx.state() == crate::sip::transaction::ClientInviteState::Proceeding
        );
        if !proceeding {
            call.cancel_wanted = true;
            return;
        }
        call.cancel_wanted = false;
        let mut builder = MessageBuilder::request(&Method::Cancel, &invite.request_uri);
        builder.header("Via", &invite.via);
        for route in &invite.routes {
            builder.header("Route", route);
        }
        builder.header("Max-Forwards", "70");
        builder.header("From", &call.dialog.local_party);
        builder.header("To", format_args!("<{}>", invite.request_uri));
        builder.header("Call-ID", &call.dialog.call_id);
        builder.header("CSeq", format_args!("{} CANCEL", invite.seq));
        let data = Bytes::from(builder.finish_empty());
        let branch = branch_of(&invite.via);
        self.core.start_client_non_invite(
            now,
            &branch,
            Method::Cancel,
            invite.destination,
            data,
            Some(call_ref),
            Purpose::Cancel,
        );
    }

    /// Asks the peer to call `target` (RFC 3515). The outcome arrives as
    /// [`Event::ReferDone`] with `request`.
    pub fn refer(&mut self, now: Instant, call_ref: CallRef, target: &str, request: u64) {
        let Some(call) = self
            .calls
            .get_mut(&call_ref)
            .filter(|c| c.phase == Phase::Confirmed)
        else {
            let result = TransferResult {
                status: 481,
                reason: "Call/Transaction Does Not Exist".into(),
            };
            self.core.events.push_back(Event::ReferDone {
                call: call_ref,
                request,
                result,
            });
            return;
        };
        let target = normalize_target(target).unwrap_or_else(|| target.to_string());
        let seq = call.dialog.next_seq();
        let branch = self.core.new_branch();
        let (mut builder, destination) = call.dialog.request(&Method::Refer, seq, &branch);
        builder.header("Refer-To", format_args!("<{target}>"));
        builder.header(
            "Referred-By",
            format_args!("<sip:{}>", call.dialog.local.host_port),
        );
        builder.header_if("User-Agent", &self.core.config.user_agent);
        let data = Bytes::from(builder.finish_empty());
        call.refers.push(PendingRefer { request, cseq: seq });
        self.core.start_client_non_invite(
            now,
            &branch,
            Method::Refer,
            destination,
            data,
            Some(call_ref),
            Purpose::Refer(request),
        );
    }

    /// Sends one DTMF digit as INFO with `application/dtmf-relay`.
    pub fn send_dtmf(&mut self, now: Instant, call_ref: CallRef, digit: char, duration_ms: u32) {
        let Some(call) = self
            .calls
            .get_mut(&call_ref)
            .filter(|c| c.phase == Phase::Confirmed)
        else {
            return;
        };
        let seq = call.dialog.next_seq();
        let branch = self.core.new_branch();
        let (builder, destination) = call.dialog.request(&Method::Info, seq, &branch);
        let body = info_body(digit, duration_ms);
        let data = Bytes::from(builder.finish("application/dtmf-relay", body.as_bytes()));
        self.core.start_client_non_invite(
            now,
            &branch,
            Method::Info,
            destination,
            data,
            Some(call_ref),
            Purpose::Info,
        );
    }

    /// Handles a response: it must match one of our client transactions (RFC 3261 §17.1.3).
    pub(super) fn on_response(&mut self, now: Instant, response: Response) {
        let Some(id) = self.core.client_tx_for(&response) else {
            metrics::dropped("unmatched_response");
            return;
        };
        match self.core.txs.get_mut(&id) {
            Some(Tx::ClientInvite {
                tx, call, initial, ..
            }) => {
                let action = tx.on_response(now, response.status);
                let (call, initial) = (*call, *initial);
                self.core.reschedule_tx(id);
                match action {
                    InviteResponseAction::Pass => {
                        self.on_invite_response(now, call, initial, &response)
                    }
                    InviteResponseAction::PassAndAck => {
                        self.ack_error(id, call, &response);
                        self.on_invite_response(now, call, initial, &response);
                    }
                    InviteResponseAction::ResendAck(data) => {
                        if let Some(destination) = self.calls.get(&call).map(|c| c.dialog.peer) {
                            self.core.send(destination, data);
                        }
                    }
                    InviteResponseAction::Absorb => {}
                }
            }
            Some(Tx::ClientNonInvite {
                tx, call, purpose, ..
            }) => {
                let action = tx.on_response(now, response.status);
                let (call, purpose) = (*call, *purpose);
                self.core.reschedule_tx(id);
                if action == crate::sip::transaction::ResponseAction::Pass
                    && response.status >= 200
                    && let Some(call) = call
                {
                    self.on_non_invite_final(now, call, id, purpose, &response);
                }
            }
            _ => {}
        }
    }

    /// Builds and sends the ACK for a non-2xx final response (RFC 3261 §17.1.1.3).
    fn ack_error(&mut self, tx: TxId, call_ref: CallRef, response: &Response) {
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        let (request_uri, via, routes, seq, destination) = match &call.uac_invite {
            Some(invite) if invite.tx == tx => (
                invite.request_uri.clone(),
                invite.via.clone(),
                invite.routes.clone(),
                invite.seq,
                invite.destination,
            ),
            // A re-INVITE: same Request-URI and Via as the request, which the dialog rebuilt.
            _ => {
                let Some(Tx::ClientInvite { tx: client, .. }) = self.core.txs.get(&tx) else {
                    return;
                };
                let Some((uri, via)) = first_line_and_via(client.request()) else {
                    return;
                };
                (
                    uri,
                    via,
                    call.dialog.route_set.clone(),
                    response.cseq.seq,
                    call.dialog.next_hop(),
                )
            }
        };
        let mut builder = MessageBuilder::request(&Method::Ack, &request_uri);
        builder.header("Via", via);
        for route in &routes {
            builder.header("Route", route);
        }
        builder.header("Max-Forwards", "70");
        builder.header("From", &call.dialog.local_party);
        builder.header("To", &response.to.raw);
        builder.header("Call-ID", &call.dialog.call_id);
        builder.header("CSeq", format_args!("{seq} ACK"));
        let data = Bytes::from(builder.finish_empty());
        if let Some(Tx::ClientInvite { tx: client, .. }) = self.core.txs.get_mut(&tx) {
            client.set_ack(data.clone());
        }
        self.core.send(destination, data);
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        initial: bool,
        response: &Response,
    ) {
        if !initial {
            return self.on_reinvite_response(now, call_ref, response);
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            // The call is gone; a late 2xx still needs ACK and BYE (RFC 3261 §13.2.2.4).
            return;
        };
        match response.status {
            100..=199 => {
                self.core.events.push_back(Event::Progress {
                    call: call_ref,
                    status: response.status,
                    reason: response.reason.clone(),
                });
                if call.cancel_wanted {
                    self.cancel(now, call_ref);
                }
            }
            200..=299 => self.on_invite_accepted(now, call_ref, response),
            _ => {
                info!(call_id = %call.dialog.call_id, status = response.status, "outbound call failed");
                self.core.events.push_back(Event::Failed {
                    call: call_ref,
                    status: response.status,
                    reason: response.reason.clone(),
                });
                call.phase = Phase::Ended;
                self.finish_call(call_ref);
            }
        }
    }

    /// Handles a 2xx to our INVITE: confirms the dialog, sends the ACK and takes the answer.
    fn on_invite_accepted(&mut self, now: Instant, call_ref: CallRef, response: &Response) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.phase != Phase::Calling {
            // RFC 3261 §13.2.2.4: a retransmitted 2xx gets the same ACK again; a 2xx from
            // another fork gets its own ACK and an immediate BYE.
            if response.to.tag.as_deref() == Some(call.dialog.remote_tag.as_str()) {
                if let Some(ack) = call.ack.clone() {
                    self.core.send(call.dialog.next_hop(), ack);
                }
            } else {
                let fork = Dialog::for_uac(
                    response,
                    call.dialog.local_tag.clone(),
                    call.dialog.local_party.clone(),
                    call.dialog.local_seq,
                    call.dialog.peer,
                    call.dialog.local.clone(),
                    &call.dialog.remote_target,
                );
                self.end_fork(now, fork, response.cseq.seq);
            }
            return;
        }
        let dialog = Dialog::for_uac(
            response,
            call.dialog.local_tag.clone(),
            call.dialog.local_party.clone(),
            call.dialog.local_seq,
            call.dialog.peer,
            call.dialog.local.clone(),
            &call.dialog.remote_target,
        );
        call.dialog = dialog;
        call.peer_allows_update = response.has_token("Allow", "UPDATE");
        let branch = self.core.new_branch();
        let seq = response.cseq.seq;
        let (builder, destination) = call.dialog.request(&Method::Ack, seq, &branch);
        let ack = Bytes::from(builder.finish_empty());
        call.ack = Some(ack.clone());
        self.core.send(destination, ack);

        let answer = SessionDescription::parse_bytes(&response.body).ok();
        let negotiated = match (answer, call.media.as_mut()) {
            (Some(answer), Some(media)) if response.has_sdp() => media.accept_answer(&answer).ok(),
            _ => None,
        };
        call.phase = Phase::Confirmed;
        call.session_timer = SessionTimer::from_uac_response(response, None, now);
        let Some(negotiated) = negotiated else {
            self.core.events.push_back(Event::Failed {
                call: call_ref,
                status: 488,
                reason: "Unusable SDP Answer".into(),
            });
            let reason = "Q.850;cause=88;text=\"unusable SDP answer\"";
            return self.end_call(now, call_ref, reason, EndReason::BadAnswer, false);
        };
        call.negotiated = Some(negotiated.clone());
        info!(call_id = %call.dialog.call_id, "outbound call established");
        self.core.reschedule_call(call);
        self.core.events.push_back(Event::Established {
            call: call_ref,
            negotiated,
        });
    }

    /// Acknowledges and ends a dialog that a second fork of our INVITE created.
    fn end_fork(&mut self, now: Instant, mut fork: Dialog, invite_seq: u32) {
        let branch = self.core.new_branch();
        let (ack, destination) = fork.request(&Method::Ack, invite_seq, &branch);
        self.core.send(destination, Bytes::from(ack.finish_empty()));
        let seq = fork.next_seq();
        let branch = self.core.new_branch();
        let (mut bye, destination) = fork.request(&Method::Bye, seq, &branch);
        bye.header("Reason", "SIP;cause=200;text=\"call answered elsewhere\"");
        let data = Bytes::from(bye.finish_empty());
        debug!(call_id = %fork.call_id, "ending a second fork of our INVITE");
        self.core.start_client_non_invite(
            now,
            &branch,
            Method::Bye,
            destination,
            data,
            None,
            Purpose::Bye,
        );
    }

    /// Handles a response to our re-INVITE (a session refresh).
    fn on_reinvite_response(&mut self, now: Instant, call_ref: CallRef, response: &Response) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match response.status {
            100..=199 => {}
            200..=299 => {
                let branch = self.core.new_branch();
                let (builder, destination) =
                    call.dialog
                        .request(&Method::Ack, response.cseq.seq, &branch);
                self.core
                    .send(destination, Bytes::from(builder.finish_empty()));
                call.dialog.refresh_target(response);
                if let Some(answer) = SessionDescription::parse_bytes(&response.body)
                    .ok()
                    .filter(|_| response.has_sdp())
                    && let Some(media) = call.media.as_mut()
                    && let Ok(negotiated) = media.accept_answer(&answer)
                {
                    call.negotiated = Some(negotiated);
                }
                call.our_offer_tx = None;
                let previous = call.session_timer.take();
                call.session_timer =
                    SessionTimer::from_uac_response(response, previous.as_ref(), now).or(previous
                        .map(|mut t| {
                            t.refreshed_at = now;
                            t
                        }));
                self.core.reschedule_call(call);
            }
            status => {
                self.on_request_failed(now, call_ref, Purpose::Update, status, &response.reason)
            }
        }
    }

    /// Handles a final response to a non-INVITE request of ours.
    fn on_non_invite_final(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        tx: TxId,
        purpose: Purpose,
        response: &Response,
    ) {
        if response.status >= 300 {
            return self.on_request_failed(
                now,
                call_ref,
                purpose,
                response.status,
                &response.reason,
            );
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if purpose == Purpose::Update && call.our_offer_tx == Some(tx) {
            call.our_offer_tx = None;
            let previous = call.session_timer.take();
            call.session_timer = SessionTimer::from_uac_response(response, previous.as_ref(), now)
                .or(previous.map(|mut t| {
                    t.refreshed_at = now;
                    t
                }));
            self.core.reschedule_call(call);
        }
    }

    /// Handles a request of ours that failed with `status` (408 for a timeout). 408 and 481 mean the
    /// dialog is gone (RFC 3261 §12.2.1.2).
    pub(super) fn on_request_failed(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        purpose: Purpose,
        status: u16,
        reason: &str,
    ) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        debug!(call_id = %call.dialog.call_id, ?purpose, status, "request in dialog failed");
        match purpose {
            Purpose::Refer(request) => {
                if let Some(position) = call.refers.iter().position(|r| r.request == request) {
                    call.refers.remove(position);
                }
                let result = TransferResult {
                    status,
                    reason: reason.to_string(),
                };
                self.core.events.push_back(Event::Call {
                    call: call_ref,
                    event: CallEvent::Transfer(result.clone()),
                });
                self.core.events.push_back(Event::ReferDone {
                    call: call_ref,
                    request,
                    result,
                });
            }
            Purpose::Update => {
                call.our_offer_tx = None;
                if status == 408 || status == 481 {
                    let reason = "SIP;cause=408;text=\"session refresh failed\"";
                    return self.end_call(now, call_ref, reason, EndReason::DialogLost, true);
                }
                // NOTE: other failures stop our refreshes; the session then ends at expiry.
                if let Some(timer) = &mut call.session_timer {
                    timer.we_refresh = false;
                }
                self.core.reschedule_call(call);
            }
            Purpose::Bye | Purpose::Cancel | Purpose::Info => {}
        }
    }

    /// Our INVITE got no final response within Timer B.
    pub(super) fn on_invite_timeout(&mut self, now: Instant, call_ref: CallRef, initial: bool) {
        if !initial {
            return self.on_request_failed(now, call_ref, Purpose::Update, 408, "Request Timeout");
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.phase == Phase::Calling {
            self.core.events.push_back(Event::Failed {
                call: call_ref,
                status: 408,
                reason: "Request Timeout".into(),
            });
            call.phase = Phase::Ended;
            self.finish_call(call_ref);
        }
    }
}

/// `sip:` URI for a target written as a URI or as `user@host[:port]`.
fn normalize_target(target: &str) -> Option<String> {
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    let uri = if target.starts_with("sip:") || target.starts_with("sips:") {
        target.to_string()
    } else {
        format!("sip:{target}")
    };
    parse_uri(&uri).ok().map(|_| uri)
}

/// Our From URI: a given SIP URI, a user part at our address, or `voicegate` at it.
fn from_uri(from: &str, host_port: &str) -> String {
    let from = from.trim();
    if from.is_empty() {
        return format!("sip:voicegate@{host_port}");
    }
    if from.starts_with("sip:") || from.starts_with("sips:") || from.starts_with("tel:") {
        return from.to_string();
    }
    if from.contains('@') {
        return format!("sip:{from}");
    }
    format!("sip:{from}@{host_port}")
}

fn branch_of(via: &str) -> String {
    via.split(';')
        .filter_map(|p| p.trim().strip_prefix("branch="))
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Returns the Request-URI and top Via of a request we serialized.
fn first_line_and_via(request: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(request).ok()?;
    let mut lines = text.split("\r\n");
    let uri = lines.next()?.split(' ').nth(1)?.to_string();
    let via = lines.find_map(|l| l.strip_prefix("Via: "))?.to_string();
    Some((uri, via))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_normalize() {
        assert_eq!(
            normalize_target("+12025550100@127.0.0.1:5080").as_deref(),
            Some("sip:+12025550100@127.0.0.1:5080")
        );
        assert_eq!(
            normalize_target("<sip:a@[::1]:5062>").as_deref(),
            Some("sip:a@[::1]:5062")
        );
        assert_eq!(normalize_target("not a uri"), None);
    }

    #[test]
    fn from_forms() {
        assert_eq!(
            from_uri("", "127.0.0.1:5060"),
            "sip:voicegate@127.0.0.1:5060"
        );
        assert_eq!(
            from_uri("+12025550142", "127.0.0.1:5060"),
            "sip:+12025550142@127.0.0.1:5060"
        );
        assert_eq!(from_uri("sip:ai@example.com", "x"), "sip:ai@example.com");
    }
}
