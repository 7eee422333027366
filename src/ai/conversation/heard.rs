//! Bookkeeping of a reply in progress: its segments, the words the caller heard, and the
//! latency trace of the turn.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::reply::{ReplyEvent, SegmentKind};
use crate::ai::metrics;
use crate::ai::provider::ToolCall;
use crate::audio::{BargeIn, SAMPLE_RATE, SegmentId};

/// Maximum words in a backchannel ("uh-huh okay" is two).
const BACKCHANNEL_MAX_WORDS: usize = 3;

/// A segment of the active reply as the loop tracks it.
#[derive(Debug)]
pub(super) struct SegmentInfo {
    pub(super) id: SegmentId,
    pub(super) text: String,
    pub(super) kind: SegmentKind,
    pub(super) samples: u64,
    pub(super) started: bool,
    pub(super) played: bool,
}

/// Timestamps of one agent turn, for its latency trace.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) speech_end: Option<Instant>,
    pub(super) stt_final: Option<Instant>,
    pub(super) requested: Option<Instant>,
    pub(super) first_token: Option<Instant>,
    pub(super) first_sentence: Option<Instant>,
    pub(super) tts_request: Option<Instant>,
    pub(super) tts_first_audio: Option<Instant>,
    pub(super) first_rtp: Option<Instant>,
}

impl Trace {
    /// Stage latencies in milliseconds from the caller's speech end; empty without one.
    pub(super) fn latency_ms(&self) -> BTreeMap<String, u64> {
        let mut latency = BTreeMap::new();
        let Some(end) = self.speech_end else {
            return latency;
        };
        let since_end = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(end));
        let stages = [
            ("stt_final", since_end(self.stt_final)),
            ("llm_first_token", since_end(self.first_token)),
            ("first_sentence", since_end(self.first_sentence)),
            ("tts_first_audio", since_end(self.tts_first_audio)),
            ("first_rtp", since_end(self.first_rtp)),
            ("internal", self.internal()),
        ];
        for (stage, span) in stages {
            if let Some(span) = span {
                metrics::TURN_LATENCY
                    .with_label_values(&[stage])
                    .observe(span.as_secs_f64());
                latency.insert(stage.to_owned(), span.as_millis() as u64);
            }
        }
        latency
    }

    /// Speech end to first packet minus the spans spent waiting on the end-of-turn silence and
    /// speech-to-text, on the language model up to its first sentence, and on the first audio.
    fn internal(&self) -> Option<Duration> {
        let end = self.speech_end?;
        let total = self.first_rtp?.saturating_duration_since(end);
        let stt = self.stt_final?.saturating_duration_since(end);
        let llm = self
            .first_sentence?
            .saturating_duration_since(self.requested?);
        let tts = self
            .tts_first_audio?
            .saturating_duration_since(self.tts_request?);
        Some(total.saturating_sub(stt + llm + tts))
    }
}

/// The reply being generated or played.
pub(super) struct ActiveReply {
    pub(super) task: JoinHandle<()>,
    pub(super) reports: mpsc::UnboundedReceiver<ReplyEvent>,
    pub(super) reports_open: bool,
    pub(super) generating: bool,
    pub(super) segments: Vec<SegmentInfo>,
    pub(super) tools: Vec<ToolCall>,
    pub(super) trace: Trace,
    pub(super) started_at: DateTime<Utc>,
}

impl ActiveReply {
    pub(super) fn finished(&self) -> bool {
        !self.generating && self.segments.iter().all(|s| s.played)
    }

    pub(super) fn full_text(&self) -> String {
        join_words(
            self.segments
                .iter()
                .filter(|s| s.kind == SegmentKind::Reply)
                .map(|s| s.text.clone()),
        )
    }

    pub(super) fn unplayed_audio(&self) -> Duration {
        let samples: u64 = self
            .segments
            .iter()
            .filter(|s| !s.played)
            .map(|s| s.samples)
            .sum();
        Duration::from_millis(samples * 1000 / u64::from(SAMPLE_RATE))
    }

    /// The reply text that reached the caller when the call ended mid-reply: the sentences
    /// played, and the one playing.
    pub(super) fn spoken_text(&self) -> String {
        join_words(
            self.segments
                .iter()
                .take_while(|s| s.started)
                .filter(|s| s.kind == SegmentKind::Reply)
                .map(|s| s.text.clone()),
        )
    }

    /// Returns the words the caller heard: whole segments played, plus the share of words of the cut
    /// segment that matches the share of its samples sent.
    pub(super) fn heard_text(&self, barge_in: &BargeIn) -> String {
        let mut parts = Vec::new();
        for segment in &self.segments {
            if Some(segment.id) == barge_in.segment {
                if segment.kind == SegmentKind::Reply {
                    parts.push(heard_words(
                        &segment.text,
                        barge_in.played_samples,
                        segment.samples,
                    ));
                }
                break;
            }
            if !segment.played {
                break;
            }
            if segment.kind == SegmentKind::Reply {
                parts.push(segment.text.clone());
            }
        }
        join_words(parts)
    }
}

pub(super) fn join_words(parts: impl IntoIterator<Item = String>) -> String {
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Returns the first words of `text` in proportion to `played` of `total` samples, rounded down.
pub(super) fn heard_words(text: &str, played: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let share = (played.min(total) as f64) / (total as f64);
    let count = (words.len() as f64 * share).floor() as usize;
    words[..count].join(" ")
}

/// Checks whether a transcript is only backchannel words ("mhm", "okay") and short.
pub(super) fn is_backchannel(text: &str, backchannels: &[String]) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > BACKCHANNEL_MAX_WORDS {
        return false;
    }
    words
        .iter()
        .all(|w| backchannels.iter().any(|b| b.eq_ignore_ascii_case(w)))
}
