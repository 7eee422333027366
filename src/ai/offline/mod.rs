//! Embedded offline providers, so that voicegate handles calls with no cloud account:
//! Whisper speech-to-text through a supervised Python helper process, espeak-ng
//! text-to-speech and a keyword-matching scripted agent. See `docs/ai.md`.

pub mod espeak;
pub mod helper;
pub mod scripted;
pub mod whisper;

pub use espeak::{EspeakSettings, EspeakTts};
pub use helper::{HelperSettings, HelperStatus, WhisperHelper};
pub use scripted::ScriptedAgent;
pub use whisper::WhisperStt;
