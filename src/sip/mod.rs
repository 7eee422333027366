//! SIP stack: transports, message parsing, RFC 3261 transactions and dialogs, SDP
//! offer/answer, digest authentication and trunk access lists.
//!
//! Protocol cores are sans-IO: they are fed `(now, input)` and polled for output and their
//! next deadline. Only the driver modules touch sockets and tokio.

pub mod access;
mod config;
pub mod endpoint;
mod error;
pub mod message;
pub mod metrics;
pub mod sdp;
mod server;
pub mod transaction;

pub use access::TrunkInfo;
pub use config::{SipConfig, TrunkConfig};
pub use endpoint::{
    AnswerError, CallEvent, CallRef, EndReason, Event, OutgoingInvite, TransferResult, Transport,
};
pub use error::SipError;
pub use server::{
    ActiveCall, CallControl, IncomingCall, OutgoingCall, OutgoingEvent, ServerCall, SipHandle,
    SipServer, SipStats,
};
