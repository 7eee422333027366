//! The built-in test caller behind `voicegate call` and `voicegate loadtest`: it dials with
//! voicegate's own SIP and RTP code, plays a WAV as the caller's voice, records what it hears
//! and reports what a caller experiences.

pub mod analysis;
pub mod report;

pub use report::{CallReport, LoadSummary, RtpFigures};
