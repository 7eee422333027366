//! Inbound calls: admitting a new INVITE, ringing, rejecting, answering, CANCEL and the ACK
//! that confirms the dialog.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::call::{Call, Phase, Retransmit, Role};
use super::config::{ALLOW, SUPPORTED, UNDERSTOOD};
use super::core::{Core, Endpoint, Tx};
use super::dialog::Dialog;
use super::session_timer::SessionTimer;
use super::types::{AnswerError, CallRef, Destination, EndReason, Event, IncomingCallInfo};
use crate::observability::Private;
use crate::sip::access::{Credentials, DigestVerdict, LimitExceeded, TrunkId};
use crate::sip::message::{HeaderAccess, MessageBuilder, Request, response_to, split_list};
use crate::sip::metrics;
use crate::sip::sdp::{LocalMedia, LocalSession, NegotiationError, SessionDescription};
use crate::sip::transaction::ServerKey;

/// Without another response within this time, a new INVITE gets 100 Trying
/// (RFC 3261 §17.2.1 allows skipping it when the answer comes within 200 ms).
const TRYING_DELAY: Duration = Duration::from_millis(100);

/// When a failed digest check was last logged, so a guessing peer cannot flood the log.
static INVALID_DIGEST_LOGGED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// Headers an application may not set on a rejection, because the stack writes them.
const RESERVED_HEADERS: [&str; 9] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "content-length",
    "content-type",
    "contact",
    "max-forwards",
];

impl Endpoint {
    /// Handles an INVITE without a To tag: a new call, unless something stops it first.
    pub(super) fn on_invite(
        &mut self,
        now: Instant,
        request: Request,
        from: Destination,
        local: SocketAddr,
    ) {
        let merge_key = (
            request.call_id.clone(),
            request.from.tag.clone().unwrap_or_default(),
        );
        // RFC 3261 §8.2.2.2: the same request reached us again over another path.
        if self.core.inbound.contains_key(&merge_key) {
            return self.reject_invite(now, &request, from, 482, "Loop Detected", &[]);
        }
        if self.core.draining {
            let retry = self.core.config.retry_after_secs.to_string();
            return self.reject_invite(
                now,
                &request,
                from,
                503,
                "Service Unavailable",
                &[("Retry-After", &retry)],
            );
        }
        if let Some(unsupported) = unsupported_requirements(&request) {
            return self.reject_invite(
                now,
                &request,
                from,
                420,
                "Bad Extension",
                &[("Unsupported", &unsupported)],
            );
        }
        let Some(trunk) = self.core.trunks.find(from.addr.ip()) else {
            return;
        };
        if !self.authenticate(now, &request, from, trunk) {
            return;
        }
        let offer = match parse_offer(&request) {
            Ok(offer) => offer,
            Err(Rejection {
                status,
                reason,
                headers,
            }) => {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                return self.reject_invite(now, &request, from, status, reason, &headers);
            }
        };
        let timer = match SessionTimer::negotiate_as_uas(
            &request,
            self.core.config.session_timer,
            None,
            now,
        ) {
            Ok(timer) => timer,
            Err(min_se) => {
                let min_se = min_se.to_string();
                return self.reject_invite(
                    now,
                    &request,
                    from,
                    422,
                    "Session Interval Too Small",
                    &[("Min-SE", &min_se)],
                );
            }
        };
        if let Err(limit) = self.core.trunks.admit(now, trunk) {
            let reason = match limit {
                LimitExceeded::ConcurrentCalls => "Trunk Call Limit Reached",
                LimitExceeded::CallsPerSecond => "Trunk Call Rate Exceeded",
            };
            return self.reject_invite(now, &request, from, 503, reason, &[("Retry-After", "1")]);
        }
        self.create_inbound_call(now, request, from, local, trunk, offer, timer);
    }

    #[allow(clippy::too_many_arguments)]
    fn create_inbound_call(
        &mut self,
        now: Instant,
        request: Request,
        from: Destination,
        local: SocketAddr,
        trunk: TrunkId,
        offer: Option<SessionDescription>,
        timer: SessionTimer,
    ) {
        let id = CallRef(self.core.next_id());
        let local_tag = self.core.new_tag();
        let contact = self.core.local_contact(from.transport, local);
        let local_seq = self.core.random_u31() >> 8;
        let dialog = Dialog::for_uas(&request, local_tag.clone(), local_seq, from, contact);
        let tx = self.core.start_server_invite(&request, from, Some(id));

        let mut call = Call::new(id, Role::Uas, Phase::Offered, dialog, now);
        call.invite_tx = Some(tx);
        call.trunk = Some(trunk);
        call.require_100rel = request.has_token("Require", "100rel");
        call.peer_allows_update = request.has_token("Allow", "UPDATE");
        call.answer_not_before = now + self.core.config.answer_delay;
        call.trying_at = Some(now + TRYING_DELAY);
        call.session_timer = Some(timer);
        call.remote_offer = offer.clone();
        call.counted = true;

        let info = IncomingCallInfo {
            call: id,
            call_id: request.call_id.clone(),
            source: from.addr,
            transport: from.transport,
            trunk: self.core.trunks.get(trunk).map(|t| t.info.clone()),
            request_uri: request.uri_text.clone(),
            to: request.to.uri_text.clone(),
            from: request.from.uri_text.clone(),
            p_called_party_id: request.header("P-Called-Party-ID").and_then(uri_of),
            diversion: request
                .headers_named("Diversion")
                .flat_map(split_list)
                .map(str::to_string)
                .collect(),
            offer,
        };
        info!(
            call_id = %request.call_id,
            source = %from.addr,
            to = %Private(crate::sip::message::uri_user(&request.to.uri).unwrap_or_default()),
            "inbound call offered"
        );
        self.core
            .dialogs
            .insert((request.call_id.clone(), local_tag), id);
        self.core.inbound.insert(
            (
                request.call_id.clone(),
                request.from.tag.clone().unwrap_or_default(),
            ),
            id,
        );
        call.invite = Some(request);
        self.core.reschedule_call(&call);
        self.calls.insert(id, call);
        metrics::inbound_call();
        metrics::CALLS_ACTIVE.inc();
        self.core
            .events
            .push_back(Event::IncomingCall(Box::new(info)));
    }

    /// Checks digest credentials when the trunk asks for them; false means a 401 went out.
    fn authenticate(
        &mut self,
        now: Instant,
        request: &Request,
        from: Destination,
        trunk: TrunkId,
    ) -> bool {
        let Some(trunk) = self.core.trunks.get(trunk) else {
            return true;
        };
        if !trunk.requires_auth() {
            return true;
        }

        let realm = if trunk.config.realm.is_empty() {
            "voicegate".to_string()
        } else {
            trunk.config.realm.clone()
        };
        let credentials = Credentials {
            username: &trunk.config.username,
            password: &trunk.config.password,
            realm: &realm,
        };
        let headers = request
            .headers_named("Authorization")
            .chain(request.headers_named("Proxy-Authorization"));
        let verdict =
            self.core
                .digest
                .verify(now, headers, "INVITE", &request.uri_text, credentials);
        match verdict {
            DigestVerdict::Valid => return true,
            DigestVerdict::Invalid if super::core::log_allowed(&INVALID_DIGEST_LOGGED) => {
                warn!(source = %from.addr, trunk = %trunk.info.name, "digest credentials did not verify");
            }
            _ => {}
        }

        let (status, reason, header) = if trunk.config.proxy_auth {
            (407, "Proxy Authentication Required", "Proxy-Authenticate")
        } else {
            (401, "Unauthorized", "WWW-Authenticate")
        };
        let challenges = self
            .core
            .digest
            .challenges(now, &realm, verdict == DigestVerdict::Stale);
        let headers: Vec<(&str, &str)> = challenges.iter().map(|c| (header, c.as_str())).collect();
        self.reject_invite(now, request, from, status, reason, &headers);
        false
    }

    /// Answers a new INVITE with an error in its own transaction, without creating a call.
    pub(super) fn reject_invite(
        &mut self,
        now: Instant,
        request: &Request,
        from: Destination,
        status: u16,
        reason: &str,
        headers: &[(&str, &str)],
    ) {
        metrics::rejected(status);
        debug!(call_id = %request.call_id, status, reason, "rejected INVITE");
        let tag = self.core.new_tag();
        let mut builder = response_to(request, status, reason, Some(&tag), from.addr);
        for (name, value) in headers {
            builder.header(name, value);
        }
        self.core.decorate_response(&mut builder);
        let tx = self.core.start_server_invite(request, from, None);
        self.core
            .respond_invite(now, tx, status, Bytes::from(builder.finish_empty()));
    }

    /// Sends 180 Ringing, reliably when the INVITE required 100rel (RFC 3262 §3).
    pub fn ring(&mut self, now: Instant, call: CallRef) {
        let Some(call) = self.calls.get_mut(&call) else {
            return;
        };
        if !matches!(call.phase, Phase::Offered | Phase::AnswerQueued) || call.reliable.is_some() {
            return;
        }
        send_provisional(&mut self.core, now, call, 180, "Ringing");
    }

    /// Rejects an inbound call that has not been answered.
    pub fn reject(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        status: u16,
        reason: &str,
        headers: &[(String, String)],
    ) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if !matches!(call.phase, Phase::Offered | Phase::AnswerQueued)
            || !(300..700).contains(&status)
        {
            return;
        }
        let mut builder = invite_response(&self.core, call, status, reason);
        for (name, value) in headers {
            if !RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                builder.header(name, value);
            }
        }
        if let Some(tx) = call.invite_tx {
            self.core
                .respond_invite(now, tx, status, Bytes::from(builder.finish_empty()));
        }
        debug!(call_id = %call.dialog.call_id, status, "application rejected call");
        self.finish_call(call_ref);
    }

    /// Answers an inbound call: the 200 carries our answer, or our offer for a late offer.
    /// The 200 waits for the answer delay and for the PRACK of a reliable provisional.
    /// Reports [`Event::Established`] after the ACK, or [`Event::AnswerFailed`].
    pub fn answer(&mut self, now: Instant, call_ref: CallRef, local: LocalMedia) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            self.core.events.push_back(Event::AnswerFailed {
                call: call_ref,
                error: AnswerError::NotPending,
            });
            return;
        };
        if call.phase != Phase::Offered {
            self.core.events.push_back(Event::AnswerFailed {
                call: call_ref,
                error: AnswerError::NotPending,
            });
            return;
        }
        let mut session = LocalSession::new(local, self.core.random_u64());
        let body = match call.remote_offer.take() {
            Some(offer) => match session.answer(&offer) {
                Ok((answer, negotiated)) => {
                    call.negotiated = Some(negotiated);
                    answer.to_string()
                }
                Err(error) => return self.reject_not_acceptable(now, call_ref, &error),
            },
            None => {
                call.offer_in_ok = true;
                session.offer().to_string()
            }
        };
        call.media = Some(session);
        call.prepared_answer = Some(body);
        call.phase = Phase::AnswerQueued;
        if now < call.answer_not_before && !call.ringing {
            send_provisional(&mut self.core, now, call, 180, "Ringing");
        }
        self.try_send_ok(now, call_ref);
    }

    fn reject_not_acceptable(&mut self, now: Instant, call_ref: CallRef, error: &NegotiationError) {
        let (code, text) = error.warning();
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let mut builder = invite_response(&self.core, call, 488, "Not Acceptable Here");
        builder.header(
            "Warning",
            format_args!("{code} {} \"{text}\"", call.dialog.local.host_port),
        );
        if let Some(tx) = call.invite_tx {
            self.core
                .respond_invite(now, tx, 488, Bytes::from(builder.finish_empty()));
        }
        metrics::rejected(488);
        self.core.events.push_back(Event::AnswerFailed {
            call: call_ref,
            error: AnswerError::NotAcceptable { code, text },
        });
        self.finish_call(call_ref);
    }

    /// Sends the prepared 200 once the answer delay passed and no PRACK is outstanding.
    pub(super) fn try_send_ok(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if call.phase != Phase::AnswerQueued
            || call.reliable.is_some()
            || now < call.answer_not_before
        {
            self.core.reschedule_call(call);
            return;
        }
        let Some(body) = call.prepared_answer.take() else {
            return;
        };
        let mut builder = invite_response(&self.core, call, 200, "OK");
        builder.header("Allow", ALLOW);
        builder.header("Supported", SUPPORTED);
        if let Some(invite) = &call.invite {
            for route in invite.headers_named("Record-Route") {
                builder.header("Record-Route", route);
            }
        }
        add_session_timer(&mut builder, call.session_timer.as_ref());
        let data = Bytes::from(builder.finish("application/sdp", body.as_bytes()));
        let seq = call.invite.as_ref().map(|r| r.cseq.seq).unwrap_or_default();
        if let Some(tx) = call.invite_tx {
            self.core.respond_invite(now, tx, 200, data.clone());
        }
        let timers = self.core.config.timers;
        call.ok_retransmit = Some((
            Retransmit::start(now, &timers, data, call.dialog.peer, true),
            seq,
        ));
        call.phase = Phase::AwaitingAck;
        call.trying_at = None;
        self.core.reschedule_call(call);
    }

    /// Handles CANCEL (RFC 3261 §9.2): 200 to the CANCEL and, if the INVITE is still
    /// unanswered, 487 to it. A CANCEL after the final response changes nothing.
    pub(super) fn on_cancel(&mut self, now: Instant, request: Request, from: Destination) {
        let own_key = ServerKey::of(&request);
        if let Some(id) = self.core.server_keys.get(&own_key).copied() {
            if let Some(Tx::ServerNonInvite { tx, .. }) = self.core.txs.get(&id)
                && let Some(data) = tx.on_retransmission()
            {
                self.core.send(from, data);
            }
            return;
        }
        let invite_key = ServerKey::invite_of_cancel(&request);
        let Some(invite_tx) = self.core.server_keys.get(&invite_key).copied() else {
            return self
                .core
                .reply(now, &request, from, 481, "Call/Transaction Does Not Exist");
        };
        self.core.reply(now, &request, from, 200, "OK");
        if self.core.invite_has_final(invite_tx) {
            return;
        }
        let call_ref = match self.core.txs.get(&invite_tx) {
            Some(Tx::ServerInvite {
                call: Some(call), ..
            }) => *call,
            _ => return,
        };
        self.terminate_unanswered(now, call_ref);
        self.core.events.push_back(Event::Cancelled(call_ref));
    }

    /// Sends 487 to an unanswered INVITE and removes the call.
    pub(super) fn terminate_unanswered(&mut self, now: Instant, call_ref: CallRef) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let builder = invite_response(&self.core, call, 487, "Request Terminated");
        if let Some(tx) = call.invite_tx {
            self.core
                .respond_invite(now, tx, 487, Bytes::from(builder.finish_empty()));
        }
        info!(call_id = %call.dialog.call_id, "inbound call cancelled");
        self.finish_call(call_ref);
    }

    /// Handles an ACK: for a non-2xx final it ends the server transaction (§17.2.1); for our
    /// 2xx it confirms the dialog (§13.3.1.4) and may carry the answer to our offer.
    pub(super) fn on_ack(&mut self, now: Instant, request: Request, _from: Destination) {
        let key = ServerKey::of(&request);
        if let Some(id) = self.core.server_keys.get(&key).copied()
            && let Some(Tx::ServerInvite { tx, .. }) = self.core.txs.get_mut(&id)
            && tx.on_ack(now)
        {
            self.core.reschedule_tx(id);
            return;
        }
        let Some(tag) = request.to.tag.as_deref() else {
            return;
        };
        let Some(&call_ref) = self
            .core
            .dialogs
            .get(&(request.call_id.clone(), tag.to_string()))
        else {
            return;
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        match &call.ok_retransmit {
            Some((_, seq)) if *seq == request.cseq.seq => {}
            _ => return,
        }
        call.ok_retransmit = None;
        let initial = call.phase == Phase::AwaitingAck;
        if call.offer_in_ok {
            call.offer_in_ok = false;
            if !self.accept_ack_answer(call_ref, &request) {
                let reason = EndReason::BadAnswer;
                if initial {
                    self.core.events.push_back(Event::AnswerFailed {
                        call: call_ref,
                        error: AnswerError::NoAnswerInAck,
                    });
                }
                return self.end_call(
                    now,
                    call_ref,
                    "Q.850;cause=47;text=\"no SDP answer in ACK\"",
                    reason,
                    !initial,
                );
            }
            if !initial
                && let Some(call) = self.calls.get(&call_ref)
                && let Some(media) = call.negotiated.clone()
            {
                self.core.events.push_back(Event::Call {
                    call: call_ref,
                    event: super::types::CallEvent::MediaChanged(media),
                });
            }
        }
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        if initial {
            call.phase = Phase::Confirmed;
            call.invite = None;
            if let Some(timer) = &mut call.session_timer {
                timer.refreshed_at = now;
            }
            info!(call_id = %call.dialog.call_id, "inbound call established");
            if let Some(negotiated) = call.negotiated.clone() {
                self.core.events.push_back(Event::Established {
                    call: call_ref,
                    negotiated,
                });
            }
        }
        self.core.reschedule_call(call);
        let pending = call.bye_pending.take();
        if let Some(reason) = pending {
            self.hangup(now, call_ref, &reason);
        }
    }

    /// Takes the SDP answer from an ACK; false when it is missing or unusable.
    fn accept_ack_answer(&mut self, call_ref: CallRef, ack: &Request) -> bool {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return false;
        };
        if !ack.has_sdp() {
            return false;
        }
        let Ok(answer) = SessionDescription::parse_bytes(&ack.body) else {
            return false;
        };
        let Some(media) = call.media.as_mut() else {
            return false;
        };
        match media.accept_answer(&answer) {
            Ok(negotiated) => {
                call.negotiated = Some(negotiated);
                true
            }
            Err(error) => {
                debug!(%error, "answer in ACK is unusable");
                false
            }
        }
    }
}

/// Starts a response to the call's INVITE with our To tag and Contact.
pub(super) fn invite_response(
    core: &Core,
    call: &Call,
    status: u16,
    reason: &str,
) -> MessageBuilder {
    let Some(invite) = &call.invite else {
        return MessageBuilder::response(status, reason);
    };
    let mut builder = response_to(
        invite,
        status,
        reason,
        Some(&call.dialog.local_tag),
        call.dialog.peer.addr,
    );
    if (101..300).contains(&status) {
        builder.header("Contact", format_args!("<{}>", call.dialog.local.uri()));
    }
    core.decorate_response(&mut builder);
    builder
}

/// Sends a provisional response; reliable with RSeq when the INVITE required 100rel.
fn send_provisional(core: &mut Core, now: Instant, call: &mut Call, status: u16, reason: &str) {
    let Some(tx) = call.invite_tx else {
        return;
    };
    let mut builder = invite_response(core, call, status, reason);
    if call.require_100rel {
        call.rseq += 1;
        builder.header("Require", "100rel");
        builder.header("RSeq", call.rseq);
        builder.header("Allow", ALLOW);
    }
    let data = Bytes::from(builder.finish_empty());
    core.respond_invite(now, tx, status, data.clone());
    if call.require_100rel {
        let timers = core.config.timers;
        call.reliable = Some((
            Retransmit::start(now, &timers, data, call.dialog.peer, false),
            call.rseq,
        ));
    }
    call.ringing = true;
    call.trying_at = None;
    core.reschedule_call(call);
}

/// Adds Session-Expires and, when the peer supports it, Require: timer (RFC 4028 §9).
pub(super) fn add_session_timer(builder: &mut MessageBuilder, timer: Option<&SessionTimer>) {
    if let Some(timer) = timer {
        builder.header("Session-Expires", timer.response_value());
        if timer.peer_supports {
            builder.header("Require", "timer");
        }
    }
}

/// Returns the tokens of Require we do not understand, comma-separated (RFC 3261 §8.2.2.3).
fn unsupported_requirements(request: &Request) -> Option<String> {
    let unknown: Vec<&str> = request
        .headers_named("Require")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !UNDERSTOOD.iter().any(|u| u.eq_ignore_ascii_case(t)))
        .collect();
    (!unknown.is_empty()).then(|| unknown.join(", "))
}

/// How to refuse an INVITE whose body is not a usable offer.
struct Rejection {
    status: u16,
    reason: &'static str,
    headers: Vec<(&'static str, String)>,
}

/// Returns the SDP offer of an INVITE: `None` for a late offer, a rejection for a bad body.
fn parse_offer(request: &Request) -> Result<Option<SessionDescription>, Rejection> {
    if request.body.is_empty() {
        return Ok(None);
    }
    if !request.has_sdp() {
        return Err(Rejection {
            status: 415,
            reason: "Unsupported Media Type",
            headers: vec![("Accept", "application/sdp".to_string())],
        });
    }
    SessionDescription::parse_bytes(&request.body)
        .map(Some)
        .map_err(|error| {
            let (code, text) = NegotiationError::from(error).warning();
            Rejection {
                status: 488,
                reason: "Not Acceptable Here",
                headers: vec![("Warning", format!("{code} voicegate \"{text}\""))],
            }
        })
}

/// Returns the URI inside a header value such as `<sip:+12025550100@host>;param`.
fn uri_of(value: &str) -> Option<String> {
    let value = value.trim();
    let uri = match value.find('<') {
        Some(open) => value[open + 1..].split('>').next()?,
        None => value.split(';').next()?,
    };
    (!uri.is_empty()).then(|| uri.to_string())
}
