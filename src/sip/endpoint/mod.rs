//! The sans-IO SIP endpoint: one state machine for every transaction, dialog and call of a
//! node, fed `(now, input)` and polled for transmissions, events and its next deadline.

mod call;
mod config;
mod core;
mod dialog;
mod dtmf;
mod in_dialog;
mod lifecycle;
mod schedule;
mod session_timer;
mod types;
mod uac;
mod uas;

pub use config::{ACCEPT, ALLOW, EndpointConfig, SUPPORTED};
pub use core::Endpoint;
pub use dialog::{Dialog, LocalContact};
pub use dtmf::{InfoDtmf, info_body, parse_info_dtmf};
pub use lifecycle::reason_header;
pub use session_timer::{SessionTimer, SessionTimerConfig};
pub use types::{
    AnswerError, CallEvent, CallRef, ConnectionId, Destination, EndReason, Event, IncomingCallInfo,
    OutgoingInvite, TransferResult, Transmit, Transport,
};

#[cfg(test)]
mod scenarios;
