//! The adaptive jitter buffer: reorders packets, drops late and duplicate ones, signals losses
//! for concealment, and hands out what is due at each 20 ms tick.

mod buffer;
mod delay;
mod item;
#[cfg(test)]
mod tests;

pub use buffer::{JitterBuffer, JitterConfig, JitterStats};
pub use delay::DelayEstimator;
pub use item::{FecSource, Incoming, PayloadKind, PlayoutItem, PlayoutPacket};
