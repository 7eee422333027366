//! Values that cross the boundary of the sans-IO [`super::Endpoint`]: what it transmits, the
//! events it reports and the identifiers that tie commands to calls.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::sip::access::TrunkInfo;
use crate::sip::sdp::{NegotiatedMedia, SessionDescription};

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP (RFC 3261 §18).
    Tcp,
}

impl Transport {
    /// Returns whether the transport retransmits by itself, which turns off Timers A, E and G.
    pub fn is_reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }

    /// Returns the Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Parses a Via or URI transport token; `None` for transports we do not speak.
    pub fn from_token(token: &str) -> Option<Transport> {
        if token.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if token.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one stream connection of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Destination of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// Transport to use.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
    /// The stream connection to prefer, when the message answers one (RFC 3261 §18.2.2).
    pub connection: Option<ConnectionId>,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub destination: Destination,
    /// The serialized message.
    pub data: Bytes,
}

/// Identifies a call inside the endpoint and its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallRef(pub u64);

/// A new INVITE that passed access checks, authentication and limits.
#[derive(Debug, Clone)]
pub struct IncomingCallInfo {
    /// Handle for ring, reject and answer.
    pub call: CallRef,
    /// SIP Call-ID.
    pub call_id: String,
    /// Source address of the INVITE.
    pub source: SocketAddr,
    /// Transport the INVITE came over.
    pub transport: Transport,
    /// The trunk matched by source address.
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
    /// The SDP offer; `None` for a late offer (INVITE without a body).
    pub offer: Option<SessionDescription>,
}

/// Why answering a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The offer has no codec or address family we accept; 488 was sent.
    #[error("offer not acceptable ({code}: {text}); 488 sent")]
    NotAcceptable {
        /// Warning code (RFC 3261 §20.43).
        code: u16,
        /// Warning text.
        text: String,
    },
    /// The caller sent CANCEL first; 487 was sent.
    #[error("caller cancelled before the answer")]
    Cancelled,
    /// No ACK within 64*T1; BYE was sent (RFC 3261 §13.3.1.4).
    #[error("no ACK for the 200 within 64*T1; BYE sent")]
    NoAck,
    /// The ACK to our late-offer 200 carried no usable answer; BYE was sent.
    #[error("ACK carried no usable SDP answer; BYE sent")]
    NoAnswerInAck,
    /// No PRACK for our reliable provisional within 64*T1; 504 was sent (RFC 3262 §3).
    #[error("no PRACK for the reliable provisional response; 504 sent")]
    NoPrack,
    /// The call is unknown or no longer waiting for an answer.
    #[error("call is not waiting for an answer")]
    NotPending,
    /// The endpoint shut down.
    #[error("SIP endpoint shut down")]
    Shutdown,
}

/// Reason a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peer sent BYE, with its Reason header if any.
    RemoteHangup(Option<String>),
    /// We sent BYE for the given Reason text.
    LocalHangup(String),
    /// No session refresh arrived in time (RFC 4028 §10).
    SessionExpired,
    /// No ACK for our 2xx (RFC 3261 §13.3.1.4).
    NoAck,
    /// The ACK carried no usable answer to our offer.
    BadAnswer,
    /// A request in the dialog timed out or got 408/481 (RFC 3261 §12.2.1.2).
    DialogLost,
    /// The endpoint shut down and ended the call.
    Shutdown,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::RemoteHangup(Some(reason)) => write!(f, "remote hangup ({reason})"),
            EndReason::RemoteHangup(None) => f.write_str("remote hangup"),
            EndReason::LocalHangup(reason) => write!(f, "local hangup ({reason})"),
            EndReason::SessionExpired => f.write_str("session timer expired"),
            EndReason::NoAck => f.write_str("no ACK for 200"),
            EndReason::BadAnswer => f.write_str("unusable SDP answer"),
            EndReason::DialogLost => f.write_str("dialog lost"),
            EndReason::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// The outcome of a transfer we asked for with REFER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferResult {
    /// Final status: the REFER's own when it failed, else the one NOTIFY reported.
    pub status: u16,
    /// Its reason phrase.
    pub reason: String,
}

impl TransferResult {
    /// Returns whether the transfer target answered.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Something that happened in an established call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A re-INVITE or UPDATE changed the media (hold, unhold, new address or codec).
    MediaChanged(NegotiatedMedia),
    /// A DTMF digit arrived by SIP INFO.
    Dtmf {
        /// `0-9`, `*`, `#` or `A-D`.
        digit: char,
        /// Duration the peer gave, in milliseconds.
        duration_ms: u32,
    },
    /// A transfer we asked for finished.
    Transfer(TransferResult),
    /// The call ended; no further events follow.
    Ended(EndReason),
}

/// Event the endpoint reports to its driver.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new inbound call waits for ring, reject or answer.
    IncomingCall(Box<IncomingCallInfo>),
    /// The caller cancelled before the answer; 487 was sent.
    Cancelled(CallRef),
    /// The call is established: the ACK arrived (inbound) or was sent (outbound).
    Established {
        /// The call.
        call: CallRef,
        /// Media agreed in the offer/answer exchange.
        negotiated: NegotiatedMedia,
    },
    /// Answering an inbound call failed.
    AnswerFailed {
        /// The call.
        call: CallRef,
        /// Why.
        error: AnswerError,
    },
    /// An outbound call got a provisional response (100 Trying included).
    Progress {
        /// The call.
        call: CallRef,
        /// 100 to 199.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// An outbound call failed with a final status (408 for a timeout).
    Failed {
        /// The call.
        call: CallRef,
        /// Final status.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// An event in an established call.
    Call {
        /// The call.
        call: CallRef,
        /// What happened.
        event: CallEvent,
    },
    /// A REFER we sent finished (also reported as [`CallEvent::Transfer`]).
    ReferDone {
        /// The call.
        call: CallRef,
        /// The identifier passed to [`super::Endpoint::refer`].
        request: u64,
        /// The outcome.
        result: TransferResult,
    },
}

/// An outbound call to place.
#[derive(Debug, Clone)]
pub struct OutgoingInvite {
    /// `sip:user@host[:port]`, or `user@host[:port]`; the host must be an IP literal.
    pub target: String,
    /// Our identity: a SIP URI, or a user part placed at our address; empty uses `voicegate`.
    pub from: String,
    /// Transport to use.
    pub transport: Transport,
    /// Our media for the offer.
    pub local: crate::sip::sdp::LocalMedia,
    /// Extra headers, such as X-headers for the callee.
    pub headers: Vec<(String, String)>,
}
