//! The media path of a call: codecs, resampling, VAD, the paced playout queue, barge-in
//! detection and recording. Caller audio leaves here as 16 kHz frames for the AI loop; AI
//! audio enters as [`crate::audio::PlayoutCommand`]s.

pub mod codec;
mod config;
pub mod echo;
pub mod engine;
mod error;
pub mod metrics;
pub mod playout;
pub mod recorder;
pub mod resample;
pub mod session;
pub mod speech;
pub mod turn;
pub mod vad;
pub mod wav;

pub use config::{BARGE_IN_MODES, CODEC_NAMES, MediaConfig};
pub use error::MediaError;
