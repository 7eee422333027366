//! The built-in test caller behind `voicegate call` and `voicegate loadtest`: it dials with
//! voicegate's own SIP and RTP code, plays a WAV as the caller's voice, records what it hears
//! and reports what a caller experiences.
//!
//! [`Dialer`] owns one SIP stack (on an ephemeral port) and one media engine (RTP ports
//! 40000-49999) and places calls; [`script`] decides when each call talks and hangs up;
//! [`analysis`] turns the heard audio into the figures of [`CallReport`]; [`load`] runs many
//! calls at once and summarises them in a [`LoadSummary`]. With [`echo`] settings the caller
//! also sends what it hears back, like a telephone line with echo.

pub mod analysis;
pub mod dialer;
pub mod echo;
mod listen;
pub mod load;
pub mod report;
pub mod script;
pub mod target;

pub use dialer::{CallSettings, Dialer, DialerError};
pub use load::{LoadSettings, Progress};
pub use report::{CallReport, LoadSummary, RtpFigures};
pub use script::ScriptSettings;
pub use target::{Target, TargetError};
