//! Commands from handles to the driver task.

use tokio::sync::oneshot;

use super::calls::{ActiveCall, OutgoingEvent};
use crate::sip::endpoint::{AnswerError, CallRef, OutgoingInvite, TransferResult};
use crate::sip::error::SipError;
use crate::sip::sdp::LocalMedia;

/// Counts of live state, for tests and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SipStats {
    /// Calls the endpoint holds.
    pub calls: usize,
    /// Transactions alive.
    pub transactions: usize,
    /// Open stream connections.
    pub connections: usize,
    /// Calls the driver tracks for handles.
    pub call_slots: usize,
}

/// One request to the driver.
#[derive(Debug)]
pub enum Command {
    /// 180 for an offered call.
    Ring(CallRef),
    /// Reject an offered call.
    Reject {
        /// The call.
        call: CallRef,
        /// Status.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Answer an offered call.
    Answer {
        /// The call.
        call: CallRef,
        /// Our media.
        local: LocalMedia,
        /// Resolved after the ACK or a failure.
        reply: oneshot::Sender<Result<ActiveCall, AnswerError>>,
    },
    /// Hang up.
    Hangup {
        /// The call.
        call: CallRef,
        /// Reason text or value.
        reason: String,
    },
    /// Transfer with REFER.
    Refer {
        /// The call.
        call: CallRef,
        /// Transfer target.
        target: String,
        /// Resolved with the outcome.
        reply: oneshot::Sender<TransferResult>,
    },
    /// DTMF by INFO.
    Dtmf {
        /// The call.
        call: CallRef,
        /// Digit.
        digit: char,
        /// Duration in milliseconds.
        duration_ms: u32,
    },
    /// Place an outbound call.
    Invite {
        /// The call to place.
        request: OutgoingInvite,
        /// Resolved with the call's events once the INVITE is sent.
        reply: oneshot::Sender<
            Result<(CallRef, tokio::sync::mpsc::UnboundedReceiver<OutgoingEvent>), SipError>,
        >,
    },
    /// Cancel an outbound call.
    Cancel(CallRef),
    /// Turn draining on or off.
    SetDraining(bool),
    /// Report live counts.
    Stats(oneshot::Sender<SipStats>),
    /// End every call and stop.
    Shutdown(oneshot::Sender<()>),
}
