//! Errors of the SIP stack's public API.

use std::net::SocketAddr;

use crate::sip::endpoint::Transport;

/// Why a SIP operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listener could not be bound.
    #[error("cannot bind SIP {transport} listener on {addr}: {source}")]
    Bind {
        /// Transport of the listener.
        transport: Transport,
        /// Address from `[sip]`.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A setting in `[sip]` is unusable.
    #[error("invalid SIP setting {key}: {message}")]
    Config {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The target of an outbound call cannot be dialled.
    #[error("invalid call target `{target}`: {reason}")]
    InvalidTarget {
        /// The target as given.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No listener exists for the transport a request needs.
    #[error("no SIP {0} listener is enabled to send from")]
    NoTransport(Transport),
    /// The call no longer exists or is not in a state that allows the operation.
    #[error("call has ended or is not established")]
    CallGone,
    /// The peer rejected the request, or a transfer failed.
    #[error("peer answered {status} {reason}")]
    Rejected {
        /// Final status.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The SIP server stopped.
    #[error("SIP server has stopped")]
    Stopped,
}
