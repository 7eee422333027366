//! One call's media session: the sans-IO core that turns received datagrams and playout
//! commands into caller frames, events and outbound datagrams.

mod core;
mod outbound;
mod params;
mod simulated_echo;
mod stats;
mod tone;
mod transmit;

pub use core::{FRAME, SessionConfig, SessionCore, SessionParts};
pub use outbound::{DTMF_GAP, DTMF_TONE, OutboundCounters, Route};
pub use params::StreamParams;
pub use simulated_echo::{EchoDelayLine, SimulatedEcho, mix_echo};
pub use stats::MediaStats;
pub use transmit::{Channel, Transmit, TransmitQueue};
