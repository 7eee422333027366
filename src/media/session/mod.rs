//! One call's media session: the sans-IO core that turns received datagrams and playout
//! commands into caller frames, events and outbound datagrams.

mod params;
mod transmit;

pub use params::StreamParams;
pub use transmit::{Channel, Transmit, TransmitQueue};
