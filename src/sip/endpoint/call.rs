//! One call (an INVITE dialog) inside the endpoint, with the timers that belong to the dialog
//! rather than to a transaction.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::dialog::Dialog;
use super::schedule::TxId;
use super::session_timer::SessionTimer;
use super::types::{CallRef, Destination};
use crate::sip::access::TrunkId;
use crate::sip::message::Request;
use crate::sip::sdp::{LocalSession, NegotiatedMedia, SessionDescription};
use crate::sip::transaction::TimerConfig;

/// Our side of the INVITE transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We answered the INVITE.
    Uas,
    /// We sent the INVITE.
    Uac,
}

/// Stage of a call's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Inbound: waiting for the application to ring, answer or reject.
    Offered,
    /// Inbound: answer requested; the 200 waits for the answer delay or a PRACK.
    AnswerQueued,
    /// Inbound: 200 sent, waiting for the ACK.
    AwaitingAck,
    /// Outbound: INVITE sent, no final response yet.
    Calling,
    /// The dialog is confirmed.
    Confirmed,
    /// Over; only a BYE transaction may still run.
    Ended,
}

/// A message retransmitted by the dialog layer until something stops it: a 2xx until its ACK
/// (RFC 3261 §13.3.1.4) or a reliable provisional until its PRACK (RFC 3262 §3).
#[derive(Debug, Clone)]
pub struct Retransmit {
    /// The message.
    pub data: Bytes,
    /// Destination.
    pub destination: Destination,
    /// Next retransmission.
    pub next_at: Instant,
    /// Current interval.
    pub interval: Duration,
    /// When to give up: 64*T1 after the first send.
    pub give_up_at: Instant,
    /// Whether the interval is capped at T2 (2xx) or keeps doubling (reliable provisional).
    pub capped: bool,
}

impl Retransmit {
    /// Starts the schedule for a message sent at `now`.
    pub fn start(
        now: Instant,
        timers: &TimerConfig,
        data: Bytes,
        destination: Destination,
        capped: bool,
    ) -> Self {
        Retransmit {
            data,
            destination,
            next_at: now + timers.t1,
            interval: timers.t1,
            give_up_at: now + timers.timeout(),
            capped,
        }
    }

    /// Advances to the next interval after a retransmission at `now`.
    pub fn advance(&mut self, now: Instant, timers: &TimerConfig) {
        self.interval = if self.capped {
            timers.backoff(self.interval)
        } else {
            self.interval * 2
        };
        self.next_at = now + self.interval;
    }

    fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }
}

/// The parts of an outbound INVITE that CANCEL and a non-2xx ACK repeat (RFC 3261 §9.1,
/// §17.1.1.3).
#[derive(Debug, Clone)]
pub struct UacInvite {
    /// Request-URI.
    pub request_uri: String,
    /// The top Via, branch included.
    pub via: String,
    /// Route headers.
    pub routes: Vec<String>,
    /// CSeq number.
    pub seq: u32,
    /// Destination of the INVITE.
    pub destination: Destination,
    /// The INVITE's client transaction.
    pub tx: TxId,
}

/// A REFER we sent and whose outcome we still wait for.
#[derive(Debug, Clone)]
pub struct PendingRefer {
    /// The caller's identifier.
    pub request: u64,
    /// CSeq of the REFER; NOTIFYs carry it in `Event: refer;id=`.
    pub cseq: u32,
}

/// The state of one call.
#[derive(Debug)]
pub struct Call {
    /// Handle.
    pub id: CallRef,
    /// Our side of the INVITE.
    pub role: Role,
    /// Stage of the call.
    pub phase: Phase,
    /// The dialog (early until the 2xx and its ACK).
    pub dialog: Dialog,
    /// Inbound: the INVITE, kept until the final response to build responses from.
    pub invite: Option<Request>,
    /// The transaction of the initial INVITE.
    pub invite_tx: Option<TxId>,
    /// Our SDP state.
    pub media: Option<LocalSession>,
    /// Inbound: the peer's offer, until answered.
    pub remote_offer: Option<SessionDescription>,
    /// Our 200 carried an offer, so the answer comes in the ACK.
    pub offer_in_ok: bool,
    /// Media agreed so far.
    pub negotiated: Option<NegotiatedMedia>,
    /// A 2xx waiting for its ACK, and the CSeq of the INVITE it answers.
    pub ok_retransmit: Option<(Retransmit, u32)>,
    /// Inbound: a reliable provisional waiting for its PRACK, with its RSeq.
    pub reliable: Option<(Retransmit, u32)>,
    /// Last RSeq used.
    pub rseq: u32,
    /// The INVITE required 100rel, so provisionals must be reliable.
    pub require_100rel: bool,
    /// Inbound: the SDP of our 200, prepared when the application answered, kept while the
    /// 200 waits for the answer delay or a PRACK.
    pub prepared_answer: Option<String>,
    /// Inbound: when to send 100 Trying if no other response went out first.
    pub trying_at: Option<Instant>,
    /// The application hung up before the ACK; BYE follows the ACK (RFC 3261 §15).
    pub bye_pending: Option<String>,
    /// The peer listed UPDATE in Allow, so session refreshes use UPDATE (RFC 4028 §7.1).
    pub peer_allows_update: bool,
    /// Outbound: what CANCEL and the ACK to an error need from the INVITE.
    pub uac_invite: Option<UacInvite>,
    /// Inbound: the 200 is not sent before this instant (`[sip] answer_delay_ms`).
    pub answer_not_before: Instant,
    /// 180 was sent.
    pub ringing: bool,
    /// RFC 4028 state.
    pub session_timer: Option<SessionTimer>,
    /// Our own re-INVITE or UPDATE in progress (for 491 on glare).
    pub our_offer_tx: Option<TxId>,
    /// The trunk whose call limit counts this call.
    pub trunk: Option<TrunkId>,
    /// Outbound: our ACK to the 2xx, resent when the 2xx is retransmitted.
    pub ack: Option<Bytes>,
    /// Outbound: CANCEL requested before any provisional arrived (RFC 3261 §9.1).
    pub cancel_wanted: bool,
    /// REFERs waiting for their outcome.
    pub refers: Vec<PendingRefer>,
    /// The application was sent the Ended event.
    pub end_reported: bool,
    /// The call is counted in the live calls gauge.
    pub counted: bool,
}

impl Call {
    /// Creates a call in `phase`.
    pub fn new(id: CallRef, role: Role, phase: Phase, dialog: Dialog, now: Instant) -> Call {
        Call {
            id,
            role,
            phase,
            dialog,
            invite: None,
            invite_tx: None,
            media: None,
            remote_offer: None,
            offer_in_ok: false,
            negotiated: None,
            ok_retransmit: None,
            reliable: None,
            rseq: 0,
            require_100rel: false,
            prepared_answer: None,
            trying_at: None,
            bye_pending: None,
            peer_allows_update: false,
            uac_invite: None,
            answer_not_before: now,
            ringing: false,
            session_timer: None,
            our_offer_tx: None,
            trunk: None,
            ack: None,
            cancel_wanted: false,
            refers: Vec::new(),
            end_reported: false,
            counted: false,
        }
    }

    /// Returns the soonest of the call's own deadlines.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ok = self.ok_retransmit.as_ref().map(|(r, _)| r.deadline());
        let reliable = self.reliable.as_ref().map(|(r, _)| r.deadline());
        let answer = (self.phase == Phase::AnswerQueued && self.reliable.is_none())
            .then_some(self.answer_not_before);
        let trying = self.trying_at;
        let session = match (&self.session_timer, self.phase) {
            (Some(timer), Phase::Confirmed) => {
                let expiry = Some(timer.expires_at());
                [
                    timer.refresh_at().filter(|_| self.our_offer_tx.is_none()),
                    expiry,
                ]
                .into_iter()
                .flatten()
                .min()
            }
            _ => None,
        };
        [ok, reliable, answer, session, trying]
            .into_iter()
            .flatten()
            .min()
    }

    /// Returns whether the call is still up from the application's point of view.
    pub fn is_live(&self) -> bool {
        self.phase != Phase::Ended
    }
}
