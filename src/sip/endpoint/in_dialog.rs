//! Requests inside an existing dialog: BYE, re-INVITE, UPDATE, INFO, PRACK, NOTIFY and
//! OPTIONS (RFC 3261 §12.2.2, §14.2; RFC 3311; RFC 6086; RFC 3262; RFC 3515).

use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, info};

use super::call::{Call, Phase, Retransmit};
use super::config::{ACCEPT, ALLOW, SUPPORTED};
use super::core::Endpoint;
use super::dtmf::parse_info_dtmf;
use super::schedule::TxId;
use super::session_timer::SessionTimer;
use super::types::{
    AnswerError, CallEvent, CallRef, Destination, EndReason, Event, TransferResult,
};
use super::uas::add_session_timer;
use crate::sip::message::{HeaderAccess, Method, Request, response_to};
use crate::sip::metrics;
use crate::sip::sdp::{NegotiationError, SessionDescription};

/// Outcome of the SDP in a re-INVITE or UPDATE.
enum OfferOutcome {
    /// Our answer and the new media.
    Answered(String),
    /// Our offer, for a re-INVITE without SDP.
    Offered(String),
    /// No SDP (an UPDATE that only refreshes the session).
    None,
    /// 488 with this Warning.
    Rejected(u16, String),
}

impl Endpoint {
    /// Dispatches a request with a To tag.
    pub(super) fn on_in_dialog(&mut self, now: Instant, request: Request, from: Destination) {
        let tag = request.to.tag.clone().unwrap_or_default();
        let Some(&call_ref) = self.core.dialogs.get(&(request.call_id.clone(), tag)) else {
            return self
                .core
                .reply(now, &request, from, 481, "Call/Transaction Does Not Exist");
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return self
                .core
                .reply(now, &request, from, 481, "Call/Transaction Does Not Exist");
        };
        if request.from.tag.as_deref().unwrap_or_default() != call.dialog.remote_tag {
            return self
                .core
                .reply(now, &request, from, 481, "Call/Transaction Does Not Exist");
        }
        // RFC 3261 §12.2.2: a CSeq below the last one is out of order.
        if call
            .dialog
            .remote_seq
            .is_some_and(|last| request.cseq.seq < last)
        {
            return self
                .core
                .reply(now, &request, from, 500, "CSeq Out Of Order");
        }
        call.dialog.remote_seq = Some(request.cseq.seq);
        match request.method {
            Method::Bye => self.on_bye(now, call_ref, &request, from),
            Method::Invite => self.on_reinvite(now, call_ref, request, from),
            Method::Update => self.on_update(now, call_ref, &request, from),
            Method::Info => self.on_info(now, call_ref, &request, from),
            Method::Prack => self.on_prack(now, call_ref, &request, from),
            Method::Notify => self.on_notify(now, call_ref, &request, from),
            Method::Options => {
                let mut builder = response_to(&request, 200, "OK", None, from.addr);
                builder.header("Allow", ALLOW);
                builder.header("Accept", ACCEPT);
                builder.header("Supported", SUPPORTED);
                self.core.decorate_response(&mut builder);
                let data = Bytes::from(builder.finish_empty());
                self.core
                    .send_non_invite_response(now, &request, from, 200, data);
            }
            Method::Extension(_) => {
                self.core
                    .reply_allow(now, &request, from, 501, "Not Implemented")
            }
            _ => self
                .core
                .reply_allow(now, &request, from, 405, "Method Not Allowed"),
        }
    }

    fn on_bye(&mut self, now: Instant, call_ref: CallRef, request: &Request, from: Destination) {
        self.core.reply(now, request, from, 200, "OK");
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let reason = request.header("Reason").map(str::to_string);
        info!(call_id = %call.dialog.call_id, reason = reason.as_deref().unwrap_or(""), "peer hung up");
        match call.phase {
            // RFC 3261 §15.1.2: BYE on an early dialog ends the INVITE with 487.
            Phase::Offered | Phase::AnswerQueued => {
                self.terminate_unanswered(now, call_ref);
                self.core.events.push_back(Event::Cancelled(call_ref));
            }
            Phase::AwaitingAck => {
                self.core.events.push_back(Event::AnswerFailed {
                    call: call_ref,
                    error: AnswerError::Cancelled,
                });
                self.finish_call(call_ref);
            }
            _ => {
                call.phase = Phase::Ended;
                if !call.end_reported {
                    call.end_reported = true;
                    let event = CallEvent::Ended(EndReason::RemoteHangup(reason));
                    self.core.events.push_back(Event::Call {
                        call: call_ref,
                        event,
                    });
                }
                self.finish_call(call_ref);
            }
        }
    }

    /// Handles a re-INVITE (RFC 3261 §14.2): hold, unhold, a new address or a refresh.
    fn on_reinvite(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        request: Request,
        from: Destination,
    ) {
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        let busy = reinvite_busy(call);
        let tx = self
            .core
            .start_server_invite(&request, from, Some(call_ref));
        if let Some((status, reason)) = busy {
            let retry = (status == 500).then(|| ("Retry-After", "1".to_string()));
            return self.reject_in_dialog_invite(now, tx, &request, from, status, reason, retry);
        }

        let Some(timer) = self.renegotiate_timer(now, call_ref, &request) else {
            let min_se = ("Min-SE", self.core.config.session_timer.min_se.to_string());
            let reason = "Session Interval Too Small";
            return self.reject_in_dialog_invite(
                now,
                tx,
                &request,
                from,
                422,
                reason,
                Some(min_se),
            );
        };

        let (body, offered) = match self.negotiate_in_dialog(call_ref, &request, true) {
            OfferOutcome::Rejected(code, text) => {
                let host = self.local_host(call_ref);
                let warning = ("Warning", format!("{code} {host} \"{text}\""));
                let reason = "Not Acceptable Here";
                return self.reject_in_dialog_invite(
                    now,
                    tx,
                    &request,
                    from,
                    488,
                    reason,
                    Some(warning),
                );
            }
            OfferOutcome::Answered(body) => (body, false),
            OfferOutcome::Offered(body) => (body, true),
            OfferOutcome::None => (String::new(), false),
        };
        self.accept_reinvite(now, call_ref, tx, &request, from, timer, body, offered);
    }

    /// Sends the 200 to a re-INVITE and retransmits it until the ACK, like the first one.
    #[allow(clippy::too_many_arguments)]
    fn accept_reinvite(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        tx: TxId,
        request: &Request,
        from: Destination,
        timer: SessionTimer,
        body: String,
        offered: bool,
    ) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        call.offer_in_ok = offered;
        call.dialog.refresh_target(request);
        call.session_timer = Some(timer);

        let mut builder = response_to(request, 200, "OK", None, from.addr);
        builder.header("Contact", format_args!("<{}>", call.dialog.local.uri()));
        builder.header("Allow", ALLOW);
        builder.header("Supported", SUPPORTED);
        add_session_timer(&mut builder, call.session_timer.as_ref());
        self.core.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish("application/sdp", body.as_bytes()));
        self.core.respond_invite(now, tx, 200, data.clone());

        let timers = self.core.config.timers;
        let retransmit = Retransmit::start(now, &timers, data, from, true);
        call.ok_retransmit = Some((retransmit, request.cseq.seq));
        self.core.reschedule_call(call);
    }

    /// Answers a re-INVITE with an error and one extra header.
    #[allow(clippy::too_many_arguments)]
    fn reject_in_dialog_invite(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Request,
        from: Destination,
        status: u16,
        reason: &str,
        header: Option<(&str, String)>,
    ) {
        let mut builder = response_to(request, status, reason, None, from.addr);
        if let Some((name, value)) = header {
            builder.header(name, value);
        }
        self.core.decorate_response(&mut builder);
        metrics::rejected(status);
        self.core
            .respond_invite(now, tx, status, Bytes::from(builder.finish_empty()));
    }

    /// Our `host:port` for the Warning header of a call.
    fn local_host(&self, call_ref: CallRef) -> String {
        self.calls
            .get(&call_ref)
            .map(|c| c.dialog.local.host_port.clone())
            .unwrap_or_default()
    }

    /// Applies a refresh request to the session timer; `None` means 422.
    fn renegotiate_timer(
        &mut self,
        now: Instant,
        call_ref: CallRef,
        request: &Request,
    ) -> Option<SessionTimer> {
        let call = self.calls.get(&call_ref)?;
        SessionTimer::negotiate_as_uas(
            request,
            self.core.config.session_timer,
            call.session_timer.as_ref(),
            now,
        )
        .ok()
    }

    /// Answers the SDP offer in a re-INVITE or UPDATE, reporting changed media at once.
    fn negotiate_in_dialog(
        &mut self,
        call_ref: CallRef,
        request: &Request,
        offer_if_empty: bool,
    ) -> OfferOutcome {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return OfferOutcome::None;
        };
        let Some(media) = call.media.as_mut() else {
            return OfferOutcome::Rejected(399, "no local media for this call".into());
        };
        if request.body.is_empty() {
            if offer_if_empty {
                return OfferOutcome::Offered(media.offer().to_string());
            }
            return OfferOutcome::None;
        }
        if !request.has_sdp() {
            return OfferOutcome::Rejected(399, "body is not application/sdp".into());
        }
        let result = SessionDescription::parse_bytes(&request.body)
            .map_err(NegotiationError::from)
            .and_then(|offer| media.answer(&offer));
        match result {
            Ok((answer, negotiated)) => {
                debug!(call_id = %call.dialog.call_id, direction = ?negotiated.direction, "media changed by peer");
                call.negotiated = Some(negotiated.clone());
                self.core.events.push_back(Event::Call {
                    call: call_ref,
                    event: CallEvent::MediaChanged(negotiated),
                });
                OfferOutcome::Answered(answer.to_string())
            }
            Err(error) => {
                let (code, text) = error.warning();
                OfferOutcome::Rejected(code, text)
            }
        }
    }

    /// Handles UPDATE (RFC 3311): a new offer or a session refresh.
    fn on_update(&mut self, now: Instant, call_ref: CallRef, request: &Request, from: Destination) {
        let Some(call) = self.calls.get(&call_ref) else {
            return;
        };
        let offer_pending =
            call.offer_in_ok || call.our_offer_tx.is_some() || call.remote_offer.is_some();
        let answered = matches!(call.phase, Phase::Confirmed | Phase::AwaitingAck);
        if !request.body.is_empty() && (offer_pending || !answered) {
            // RFC 3311 §5.2: an offer while another is outstanding gets 491.
            return self.core.reply(now, request, from, 491, "Request Pending");
        }
        let Some(timer) = self.renegotiate_timer(now, call_ref, request) else {
            let min_se = self.core.config.session_timer.min_se;
            let mut builder =
                response_to(request, 422, "Session Interval Too Small", None, from.addr);
            builder.header("Min-SE", min_se);
            self.core.decorate_response(&mut builder);
            metrics::rejected(422);
            let data = Bytes::from(builder.finish_empty());
            return self
                .core
                .send_non_invite_response(now, request, from, 422, data);
        };
        let body = match self.negotiate_in_dialog(call_ref, request, false) {
            OfferOutcome::Rejected(code, text) => {
                let host = self
                    .calls
                    .get(&call_ref)
                    .map(|c| c.dialog.local.host_port.clone())
                    .unwrap_or_default();
                let mut builder = response_to(request, 488, "Not Acceptable Here", None, from.addr);
                builder.header("Warning", format_args!("{code} {host} \"{text}\""));
                self.core.decorate_response(&mut builder);
                metrics::rejected(488);
                let data = Bytes::from(builder.finish_empty());
                return self
                    .core
                    .send_non_invite_response(now, request, from, 488, data);
            }
            OfferOutcome::Answered(body) | OfferOutcome::Offered(body) => body,
            OfferOutcome::None => String::new(),
        };
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        call.dialog.refresh_target(request);
        call.session_timer = Some(timer);
        let mut builder = response_to(request, 200, "OK", None, from.addr);
        builder.header("Contact", format_args!("<{}>", call.dialog.local.uri()));
        add_session_timer(&mut builder, call.session_timer.as_ref());
        self.core.decorate_response(&mut builder);
        let data = Bytes::from(builder.finish("application/sdp", body.as_bytes()));
        self.core
            .send_non_invite_response(now, request, from, 200, data);
        self.core.reschedule_call(call);
    }

    /// Handles INFO (RFC 6086): DTMF bodies become events; every accepted INFO gets 200.
    fn on_info(&mut self, now: Instant, call_ref: CallRef, request: &Request, from: Destination) {
        if request.body.is_empty() {
            return self.core.reply(now, request, from, 200, "OK");
        }
        let content_type = request.content_type().unwrap_or_default();
        if content_type != "application/dtmf-relay" && content_type != "application/dtmf" {
            let mut builder = response_to(request, 415, "Unsupported Media Type", None, from.addr);
            builder.header("Accept", "application/dtmf-relay, application/dtmf");
            self.core.decorate_response(&mut builder);
            metrics::rejected(415);
            let data = Bytes::from(builder.finish_empty());
            return self
                .core
                .send_non_invite_response(now, request, from, 415, data);
        }
        let Some(dtmf) = parse_info_dtmf(&content_type, &request.body) else {
            return self
                .core
                .reply(now, request, from, 400, "Invalid DTMF Body");
        };
        self.core.reply(now, request, from, 200, "OK");
        let event = CallEvent::Dtmf {
            digit: dtmf.digit,
            duration_ms: dtmf.duration_ms,
        };
        self.core.events.push_back(Event::Call {
            call: call_ref,
            event,
        });
    }

    /// Handles PRACK (RFC 3262 §3): a matching RAck stops the reliable provisional and lets a
    /// queued 200 go; anything else gets 481.
    fn on_prack(&mut self, now: Instant, call_ref: CallRef, request: &Request, from: Destination) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let invite_seq = call.invite.as_ref().map(|r| r.cseq.seq);
        let matches = match (parse_rack(request), &call.reliable, invite_seq) {
            (Some((rseq, cseq, method)), Some((_, outstanding)), Some(invite_seq)) => {
                rseq == *outstanding && cseq == invite_seq && method == "INVITE"
            }
            _ => false,
        };
        if !matches {
            return self
                .core
                .reply(now, request, from, 481, "Call/Transaction Does Not Exist");
        }
        call.reliable = None;
        self.core.reply(now, request, from, 200, "OK");
        self.try_send_ok(now, call_ref);
    }

    /// Handles NOTIFY for a REFER we sent (RFC 3515 §2.4.5): the sipfrag status tells how the
    /// transfer went.
    fn on_notify(&mut self, now: Instant, call_ref: CallRef, request: &Request, from: Destination) {
        let Some(call) = self.calls.get_mut(&call_ref) else {
            return;
        };
        let event = request.header("Event").unwrap_or_default();
        let package = event.split(';').next().unwrap_or_default().trim();
        if !package.eq_ignore_ascii_case("refer") || call.refers.is_empty() {
            return self
                .core
                .reply(now, request, from, 481, "Subscription Does Not Exist");
        }
        let id = event
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("id"))
            .and_then(|(_, value)| value.trim().parse::<u32>().ok());
        let position = match id {
            Some(id) => call.refers.iter().position(|r| r.cseq == id),
            None => Some(0),
        };
        let Some(position) = position else {
            return self
                .core
                .reply(now, request, from, 481, "Subscription Does Not Exist");
        };
        self.core.reply(now, request, from, 200, "OK");
        let Some((status, reason)) = sipfrag_status(&request.body) else {
            return;
        };
        if status < 200 {
            return;
        }
        let refer = call.refers.remove(position);
        let result = TransferResult { status, reason };
        info!(call_id = %call.dialog.call_id, status, "transfer finished");
        self.core.events.push_back(Event::Call {
            call: call_ref,
            event: CallEvent::Transfer(result.clone()),
        });
        self.core.events.push_back(Event::ReferDone {
            call: call_ref,
            request: refer.request,
            result,
        });
    }
}

/// The error a re-INVITE gets because of the call's state, if any (RFC 3261 §14.2): 500 with
/// Retry-After before the call is answered, 491 while our 2xx waits for its ACK or our own
/// offer is out (glare).
fn reinvite_busy(call: &Call) -> Option<(u16, &'static str)> {
    match call.phase {
        Phase::Offered | Phase::AnswerQueued | Phase::Calling => {
            Some((500, "Server Internal Error"))
        }
        Phase::AwaitingAck => Some((491, "Request Pending")),
        _ if call.our_offer_tx.is_some() || call.ok_retransmit.is_some() => {
            Some((491, "Request Pending"))
        }
        _ => None,
    }
}

/// Parses `RAck: <rseq> <cseq> <method>` (RFC 3262 §7.2).
fn parse_rack(request: &Request) -> Option<(u32, u32, String)> {
    let mut parts = request.header("RAck")?.split_ascii_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method = parts.next()?.to_string();
    Some((rseq, cseq, method))
}

/// Returns the status line of a `message/sipfrag` body (RFC 3420), such as `SIP/2.0 200 OK`.
fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = code.parse().ok()?;
    (100..700)
        .contains(&status)
        .then(|| (status, reason.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_lines() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 200 OK\r\n"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            sipfrag_status(b"SIP/2.0 180 Ringing"),
            Some((180, "Ringing".into()))
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 999 X"), None);
        assert_eq!(sipfrag_status(b"garbage"), None);
        assert_eq!(sipfrag_status(&[0xff]), None);
    }
}
