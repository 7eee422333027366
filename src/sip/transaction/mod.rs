//! RFC 3261 §17 transactions as sans-IO state machines.
//!
//! Each transaction is driven by its owner: the owner transmits what the transaction returns,
//! asks [`poll_timeout`](ServerInviteTx::poll_timeout) for the next deadline and calls
//! `handle_timeout(now)` when it has passed, repeating until it returns `None`. Nothing here
//! reads a clock, so tests step time by hand.

mod client_invite;
mod client_non_invite;
mod key;
mod server_invite;
mod server_non_invite;
mod timer;

use bytes::Bytes;

pub use client_invite::{ClientInviteState, ClientInviteTx, InviteResponseAction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTx, ResponseAction};
pub use key::{ClientKey, ServerKey};
pub use server_invite::{ServerInviteState, ServerInviteTx};
pub use server_non_invite::ServerNonInviteTx;
pub use timer::{Timer, TimerConfig};

/// What a fired timer asks the owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerEvent {
    /// Send these bytes again to the transaction's peer.
    Retransmit(Bytes),
    /// The transaction gave up: Timer B or F (no response) or H (no ACK).
    TimedOut(Timer),
    /// The transaction ended normally and can be removed.
    Terminated,
}
