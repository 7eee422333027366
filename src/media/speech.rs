//! Confirms the start and end of the caller's speech from per-frame voice decisions.
//!
//! A single voiced frame (a click, a breath) is not speech: a start is confirmed once the
//! voiced frames of one run cover the onset window, and an end once the unvoiced frames after
//! it cover the end window. One unvoiced frame inside a starting run is tolerated, because
//! webrtc-vad often misses one frame between syllables; a second one restarts the run.

use std::time::Instant;

use crate::audio::FRAME_MS;

/// A confirmed change of the caller's speaking state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechChange {
    /// Speech was confirmed; `onset` is the first voiced frame of the run.
    Started {
        /// Time of the first voiced frame.
        onset: Instant,
    },
    /// Silence was confirmed; `end` is the last voiced frame.
    Ended {
        /// Time of the last voiced frame.
        end: Instant,
    },
}

/// Speech state of one caller.
#[derive(Debug, Clone)]
pub struct SpeechTracker {
    onset_frames: u32,
    end_frames: u32,
    speaking: bool,
    run_onset: Option<Instant>,
    run_voiced: u32,
    run_gap: u32,
    last_voiced: Option<Instant>,
    silent_frames: u32,
    voiced_since_onset: u32,
}

/// Converts a window in milliseconds to whole frames, at least one.
pub fn frames_for_ms(ms: u32) -> u32 {
    ms.div_ceil(FRAME_MS).max(1)
}

impl SpeechTracker {
    /// Creates a tracker that confirms speech after `onset_ms` of voiced frames and silence
    /// after `end_ms` of unvoiced frames.
    pub fn new(onset_ms: u32, end_ms: u32) -> Self {
        Self {
            onset_frames: frames_for_ms(onset_ms),
            end_frames: frames_for_ms(end_ms),
            speaking: false,
            run_onset: None,
            run_voiced: 0,
            run_gap: 0,
            last_voiced: None,
            silent_frames: 0,
            voiced_since_onset: 0,
        }
    }

    /// Changes the windows; the current state is kept.
    pub fn set_windows(&mut self, onset_ms: u32, end_ms: u32) {
        self.onset_frames = frames_for_ms(onset_ms);
        self.end_frames = frames_for_ms(end_ms);
    }

    /// True between a confirmed start and a confirmed end.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Voiced frames counted since the onset of the current speech (0 when silent).
    pub fn voiced_frames(&self) -> u32 {
        if self.speaking {
            self.voiced_since_onset
        } else {
            0
        }
    }

    /// Onset of the current confirmed speech.
    pub fn onset(&self) -> Option<Instant> {
        if self.speaking { self.run_onset } else { None }
    }

    /// Onset and voiced frames of the run in progress, confirmed as speech or not yet.
    pub fn current_run(&self) -> Option<(Instant, u32)> {
        let onset = self.run_onset?;
        let voiced = if self.speaking {
            self.voiced_since_onset
        } else {
            self.run_voiced
        };
        Some((onset, voiced))
    }

    /// Feeds the decision for the frame that left the jitter buffer at `at`.
    pub fn push(&mut self, at: Instant, voiced: bool) -> Option<SpeechChange> {
        if self.speaking {
            self.push_speaking(at, voiced)
        } else {
            self.push_silent(at, voiced)
        }
    }

    /// Drops any speech in progress without reporting its end, for example when the call is
    /// put on hold.
    pub fn reset(&mut self) {
        self.speaking = false;
        self.run_onset = None;
        self.run_voiced = 0;
        self.run_gap = 0;
        self.silent_frames = 0;
        self.voiced_since_onset = 0;
    }

    fn push_silent(&mut self, at: Instant, voiced: bool) -> Option<SpeechChange> {
        if !voiced {
            if self.run_onset.is_some() {
                // One gap per starting run is tolerated, not one between every two frames.
                self.run_gap += 1;
                if self.run_gap > 1 {
                    self.run_onset = None;
                    self.run_voiced = 0;
                    self.run_gap = 0;
                }
            }
            return None;
        }

        let onset = *self.run_onset.get_or_insert(at);
        self.run_voiced += 1;
        self.last_voiced = Some(at);
        if self.run_voiced < self.onset_frames {
            return None;
        }
        self.speaking = true;
        self.silent_frames = 0;
        self.voiced_since_onset = self.run_voiced;
        Some(SpeechChange::Started { onset })
    }

    fn push_speaking(&mut self, at: Instant, voiced: bool) -> Option<SpeechChange> {
        if voiced {
            self.silent_frames = 0;
            self.voiced_since_onset += 1;
            self.last_voiced = Some(at);
            return None;
        }

        self.silent_frames += 1;
        if self.silent_frames < self.end_frames {
            return None;
        }
        let end = self.last_voiced.unwrap_or(at);
        self.reset();
        Some(SpeechChange::Ended { end })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn feed(
        tracker: &mut SpeechTracker,
        start: Instant,
        pattern: &str,
    ) -> Vec<(usize, SpeechChange)> {
        let mut changes = Vec::new();
        for (i, c) in pattern.chars().enumerate() {
            let at = start + Duration::from_millis(20 * i as u64);
            if let Some(change) = tracker.push(at, c == 'v') {
                changes.push((i, change));
            }
        }
        changes
    }

    #[test]
    fn onset_confirmed_after_window() {
        let start = Instant::now();
        let mut tracker = SpeechTracker::new(80, 300);
        let changes = feed(&mut tracker, start, "..vvvv..");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, 5);
        assert_eq!(
            changes[0].1,
            SpeechChange::Started {
                onset: start + Duration::from_millis(40)
            }
        );
    }

    #[test]
    fn single_gap_tolerated_in_onset() {
        let mut tracker = SpeechTracker::new(80, 300);
        let changes = feed(&mut tracker, Instant::now(), "vv.vv");
        assert_eq!(changes.len(), 1);
    }

    #[test]
    fn double_gap_restarts_onset() {
        let mut tracker = SpeechTracker::new(80, 300);
        let changes = feed(&mut tracker, Instant::now(), "vvv..vvv..v.v.v.v");
        assert!(changes.is_empty(), "{changes:?}");
    }

    #[test]
    fn end_confirmed_after_silence() {
        let start = Instant::now();
        let mut tracker = SpeechTracker::new(40, 100);
        let changes = feed(&mut tracker, start, "vvvv.....");
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[1],
            (
                8,
                SpeechChange::Ended {
                    end: start + Duration::from_millis(60)
                }
            )
        );
        assert!(!tracker.is_speaking());
    }

    #[test]
    fn current_run_before_and_after_confirmation() {
        let start = Instant::now();
        let mut tracker = SpeechTracker::new(80, 100);
        assert_eq!(tracker.current_run(), None);
        feed(&mut tracker, start, ".vv");
        let onset = start + Duration::from_millis(20);
        assert_eq!(tracker.current_run(), Some((onset, 2)));
        feed(&mut tracker, start, "vvv");
        assert!(tracker.is_speaking());
        assert_eq!(tracker.current_run(), Some((onset, 5)));
    }

    #[test]
    fn current_run_ends_with_broken_run() {
        let mut tracker = SpeechTracker::new(80, 100);
        feed(&mut tracker, Instant::now(), "vv..");
        assert_eq!(tracker.current_run(), None);
    }

    #[test]
    fn voiced_frames_counted_since_onset() {
        let mut tracker = SpeechTracker::new(40, 100);
        feed(&mut tracker, Instant::now(), "vvv.vv");
        assert_eq!(tracker.voiced_frames(), 5);
    }
}
