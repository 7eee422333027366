//! `[media]` settings.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Codec names accepted in `media.codecs`.
pub const CODEC_NAMES: [&str; 4] = ["pcmu", "pcma", "g722", "opus"];

/// `[media]` section: codecs, VAD, barge-in and recording.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Codecs we accept, most preferred first: `pcmu`, `pcma`, `g722`, `opus`.
    pub codecs: Vec<String>,
    /// Packet time we send, in milliseconds.
    pub ptime_ms: u32,
    /// Media worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// webrtc-vad aggressiveness, 0 (least) to 3 (most).
    pub vad_mode: u8,
    /// Speech needed to confirm that the caller started talking, in milliseconds.
    pub speech_onset_ms: u32,
    /// Silence needed to confirm that the caller stopped talking, in milliseconds.
    pub speech_end_ms: u32,
    /// Write a stereo WAV of every call (caller left, AI right).
    pub record: bool,
    /// Directory for recordings.
    pub record_dir: String,
    /// Opus encoder complexity, 0 to 10.
    pub opus_complexity: u8,
    /// Opus encoder bit rate, in bits per second.
    pub opus_bitrate: u32,
    /// Let caller speech interrupt AI speech (a call may still turn it off).
    pub barge_in: bool,
    /// What a barge-in does to playout: `pause` (the AI loop then sends resume or clear) or
    /// `clear` (queued AI audio is dropped at once).
    pub barge_in_mode: String,
    /// Voiced caller audio after which AI playout pauses while the speech is still being
    /// confirmed, in milliseconds. Playout resumes where it stopped if the speech is not
    /// confirmed. 0 turns the hold off, so playout stops only at the barge-in itself.
    pub barge_in_hold_ms: u32,
    /// Caller audio frames (20 ms each) queued for the AI loop before the newest are dropped.
    pub event_queue_frames: usize,
}

/// Largest accepted `media.barge_in_hold_ms`. A hold is meant to be shorter than the onset
/// window, and a longer one would leave gaps in the AI's speech on every cough.
pub const MAX_BARGE_IN_HOLD_MS: u32 = 200;

/// Values accepted in `media.barge_in_mode`.
pub const BARGE_IN_MODES: [&str; 2] = ["pause", "clear"];

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            codecs: vec!["pcmu".into(), "pcma".into(), "g722".into(), "opus".into()],
            ptime_ms: 20,
            workers: 0,
            vad_mode: 3,
            speech_onset_ms: 80,
            speech_end_ms: 300,
            record: false,
            record_dir: "recordings".into(),
            opus_complexity: 5,
            opus_bitrate: 24_000,
            barge_in: true,
            barge_in_mode: "pause".into(),
            barge_in_hold_ms: 40,
            event_queue_frames: 100,
        }
    }
}

impl MediaConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.codecs.is_empty() {
            return Err(ConfigError::key("media.codecs", "list at least one codec"));
        }
        for codec in &self.codecs {
            if !CODEC_NAMES.contains(&codec.as_str()) {
                return Err(ConfigError::key(
                    "media.codecs",
                    format!("`{codec}` is not one of {}", CODEC_NAMES.join(", ")),
                ));
            }
        }
        if ![10, 20, 30, 40, 60].contains(&self.ptime_ms) {
            return Err(ConfigError::key(
                "media.ptime_ms",
                format!("{} is not one of 10, 20, 30, 40, 60", self.ptime_ms),
            ));
        }
        if self.vad_mode > 3 {
            return Err(ConfigError::key("media.vad_mode", "use 0, 1, 2 or 3"));
        }
        if !BARGE_IN_MODES.contains(&self.barge_in_mode.as_str()) {
            return Err(ConfigError::key(
                "media.barge_in_mode",
                format!("`{}` is not `pause` or `clear`", self.barge_in_mode),
            ));
        }
        if self.event_queue_frames < 10 {
            return Err(ConfigError::key(
                "media.event_queue_frames",
                format!("{} is too small; use at least 10", self.event_queue_frames),
            ));
        }
        if self.speech_onset_ms == 0 || self.speech_end_ms == 0 {
            return Err(ConfigError::key(
                "media.speech_onset_ms",
                "speech_onset_ms and speech_end_ms must be at least 1",
            ));
        }
        if self.barge_in_hold_ms > MAX_BARGE_IN_HOLD_MS {
            return Err(ConfigError::key(
                "media.barge_in_hold_ms",
                format!(
                    "{} is too long; use 0 (off) to {MAX_BARGE_IN_HOLD_MS}",
                    self.barge_in_hold_ms
                ),
            ));
        }
        if self.opus_complexity > 10 {
            return Err(ConfigError::key("media.opus_complexity", "use 0 to 10"));
        }
        Ok(())
    }
}
