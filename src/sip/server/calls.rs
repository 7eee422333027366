//! The call objects the call layer and the test caller hold: an offered call to ring,
//! reject or answer, an established call's events and controls, and an outbound call.

use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot, watch};

use super::command::Command;
use crate::sip::access::TrunkInfo;
use crate::sip::endpoint::{AnswerError, CallEvent, CallRef, Transport};
use crate::sip::error::SipError;
use crate::sip::sdp::{LocalMedia, NegotiatedMedia, SessionDescription};

/// One new INVITE that passed the access list, authentication and limits.
#[derive(Debug)]
pub struct IncomingCall {
    /// SIP Call-ID.
    pub call_id: String,
    /// Source address of the INVITE.
    pub source: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// The matched `[[trunk]]`.
    pub trunk: Option<TrunkInfo>,
    /// Request-URI as sent.
    pub request_uri: String,
    /// To URI as sent.
    pub to: String,
    /// From URI as sent.
    pub from: String,
    /// P-Called-Party-ID URI, if present.
    pub p_called_party_id: Option<String>,
    /// Diversion header values, in order.
    pub diversion: Vec<String>,
    /// The SDP offer; `None` for a late offer.
    pub offer: Option<SessionDescription>,
    /// Handle for ringing, rejecting or answering the call.
    pub server: ServerCall,
}

/// The server side of an offered call. Dropping it without [`ServerCall::answer`] or
/// [`ServerCall::reject`] answers the INVITE with 500, so no transaction is left hanging.
#[derive(Debug)]
pub struct ServerCall {
    pub(super) call: CallRef,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) cancelled: watch::Receiver<bool>,
    pub(super) settled: bool,
}

impl ServerCall {
    /// Sends 180 Ringing (reliably when the caller required 100rel).
    pub fn ring(&self) {
        let _ = self.commands.send(Command::Ring(self.call));
    }

    /// Rejects the call with a 3xx-6xx `status`, `reason` phrase and extra headers, such as
    /// `Retry-After` on a 503.
    pub fn reject(mut self, status: u16, reason: &str, headers: Vec<(String, String)>) {
        self.settled = true;
        let _ = self.commands.send(Command::Reject {
            call: self.call,
            status,
            reason: reason.to_string(),
            headers,
        });
    }

    /// Resolves when the caller sent CANCEL (or BYE) before the answer; never otherwise.
    pub async fn cancelled(&self) {
        let mut receiver = self.cancelled.clone();
        if receiver.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Sends 200 with our SDP (the answer, or our offer for a late offer), retransmits it
    /// until the ACK, and resolves with the established call once the ACK arrived.
    ///
    /// Errors: 488 sent (no common codec or address family), the caller cancelled, no ACK
    /// (BYE sent), an ACK without the answer to our offer (BYE sent), or shutdown.
    pub async fn answer(mut self, local: LocalMedia) -> Result<ActiveCall, AnswerError> {
        self.settled = true;
        let (reply, result) = oneshot::channel();
        let command = Command::Answer {
            call: self.call,
            local,
            reply,
        };
        if self.commands.send(command).is_err() {
            return Err(AnswerError::Shutdown);
        }
        result.await.unwrap_or(Err(AnswerError::Shutdown))
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.commands.send(Command::Reject {
                call: self.call,
                status: 500,
                reason: "Server Internal Error".into(),
                headers: Vec::new(),
            });
        }
    }
}

/// An established call.
#[derive(Debug)]
pub struct ActiveCall {
    /// SIP Call-ID.
    pub call_id: String,
    /// Media agreed at setup.
    pub negotiated: NegotiatedMedia,
    /// Media changes, DTMF by INFO, transfer results and the end of the call.
    pub events: mpsc::UnboundedReceiver<CallEvent>,
    /// Hangup, transfer and DTMF.
    pub control: CallControl,
}

/// Controls of an established call; cheap to clone.
#[derive(Debug, Clone)]
pub struct CallControl {
    pub(super) call: CallRef,
    pub(super) commands: mpsc::UnboundedSender<Command>,
}

impl CallControl {
    /// Ends the call with BYE carrying a Reason header: `reason` is a whole Reason value such
    /// as `Q.850;cause=102;text="RTP timeout"`, or free text sent as normal clearing.
    /// Idempotent.
    pub fn hangup(&self, reason: &str) {
        let _ = self.commands.send(Command::Hangup {
            call: self.call,
            reason: reason.to_string(),
        });
    }

    /// Transfers the peer to `target` with REFER and resolves when the transfer finished:
    /// `Ok` when the target answered, [`SipError::Rejected`] with the final status otherwise.
    pub async fn refer(&self, target: &str) -> Result<(), SipError> {
        let (reply, result) = oneshot::channel();
        let command = Command::Refer {
            call: self.call,
            target: target.to_string(),
            reply,
        };
        self.commands.send(command).map_err(|_| SipError::Stopped)?;
        let outcome = result.await.map_err(|_| SipError::Stopped)?;
        if outcome.succeeded() {
            Ok(())
        } else {
            Err(SipError::Rejected {
                status: outcome.status,
                reason: outcome.reason,
            })
        }
    }

    /// Sends one DTMF digit as INFO (`application/dtmf-relay`).
    pub fn send_info_dtmf(&self, digit: char, duration_ms: u32) {
        let _ = self.commands.send(Command::Dtmf {
            call: self.call,
            digit,
            duration_ms,
        });
    }
}

/// Progress of an outbound call.
#[derive(Debug)]
pub enum OutgoingEvent {
    /// A provisional response (180, 183, ...).
    Progress {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The callee answered; the ACK was sent.
    Answered(ActiveCall),
    /// The call failed with a final status (408 when nothing answered).
    Failed {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// An outbound call in progress.
#[derive(Debug)]
pub struct OutgoingCall {
    pub(super) call: CallRef,
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) events: mpsc::UnboundedReceiver<OutgoingEvent>,
}

impl OutgoingCall {
    /// Returns the next progress event, the answer or the failure; `None` after the last.
    pub async fn next(&mut self) -> Option<OutgoingEvent> {
        self.events.recv().await
    }

    /// Waits past provisional responses for the answer.
    pub async fn answered(mut self) -> Result<ActiveCall, SipError> {
        loop {
            match self.events.recv().await {
                Some(OutgoingEvent::Progress { .. }) => continue,
                Some(OutgoingEvent::Answered(call)) => return Ok(call),
                Some(OutgoingEvent::Failed { status, reason }) => {
                    return Err(SipError::Rejected { status, reason });
                }
                None => return Err(SipError::Stopped),
            }
        }
    }

    /// Cancels the call if it is not answered yet (CANCEL, RFC 3261 §9.1).
    pub fn cancel(&self) {
        let _ = self.commands.send(Command::Cancel(self.call));
    }
}
