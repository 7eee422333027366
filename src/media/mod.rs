//! The media path of a call: codecs, resampling, VAD, the paced playout queue, barge-in
//! detection and recording. Caller audio leaves here as 16 kHz frames for the AI loop; AI
//! audio enters as [`crate::audio::PlayoutCommand`]s.

pub mod codec;
mod config;
pub mod recorder;
pub mod resample;
pub mod wav;

pub use config::{CODEC_NAMES, MediaConfig};
