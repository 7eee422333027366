//! Measures what a caller experiences from the levels of the audio it sent and heard.
//!
//! The test caller stores one level per 20 ms frame of what it heard (the server's audio after
//! its own jitter buffer) and records when its own utterances played. From those it derives when
//! the AI first became audible, how long each reply took, and how fast the AI fell silent when
//! the caller talked over it. Times are milliseconds from the answer.

use serde::Serialize;

use crate::audio::FRAME_MS;

/// Frames at or above this level count as audible speech, in dBFS. G.711 silence decodes to
/// exact zeros and comfort noise sits near -60 dBFS, while speech frames from TTS are well above.
pub const AUDIBLE_DBFS: f32 = -45.0;

/// A pause at least this long ends a talkspurt, in milliseconds. Gaps between words of one
/// sentence are shorter; gaps between sentences of one reply are often longer.
pub const TALKSPURT_GAP_MS: f64 = 250.0;

/// Silence that must follow the last audible frame for the AI to count as cut off, in
/// milliseconds. Longer than a pause between words, so a pause is not taken for the cut.
pub const CUT_SILENCE_MS: f64 = 400.0;

/// Returns the level of a block of samples in dBFS (RMS against full scale); silence is
/// `f32::NEG_INFINITY`.
pub fn level_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    let rms = (energy / samples.len() as f64).sqrt();
    if rms == 0.0 {
        return f32::NEG_INFINITY;
    }
    (20.0 * (rms / 32_768.0).log10()) as f32
}

/// One stretch of speech, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    /// First audible frame's start.
    pub start_ms: f64,
    /// Last audible frame's end.
    pub end_ms: f64,
}

/// Finds talkspurts in a sequence of frame levels that starts at `offset_ms`.
pub fn talkspurts(levels: &[f32], offset_ms: f64, gap_ms: f64) -> Vec<Span> {
    let frame = f64::from(FRAME_MS);
    let mut spans: Vec<Span> = Vec::new();
    for (i, &level) in levels.iter().enumerate() {
        if level < AUDIBLE_DBFS {
            continue;
        }
        let start = offset_ms + i as f64 * frame;
        let end = start + frame;
        match spans.last_mut() {
            Some(last) if start - last.end_ms < gap_ms => last.end_ms = end,
            _ => spans.push(Span {
                start_ms: start,
                end_ms: end,
            }),
        }
    }
    spans
}

/// One caller turn: the end of an utterance and the first audible reply after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Turn {
    /// End of the caller's utterance.
    pub speech_end_ms: f64,
    /// Start of the first talkspurt heard after it, if any.
    pub reply_start_ms: Option<f64>,
    /// `reply_start_ms - speech_end_ms`.
    pub reply_ms: Option<f64>,
}

/// Barge-in timing as the caller heard it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BargeInFigures {
    /// Start of the caller's speech.
    pub onset_ms: f64,
    /// End of the last AI audio before it fell silent.
    pub silence_ms: f64,
    /// `silence_ms - onset_ms`.
    pub cut_ms: f64,
}

/// Levels of everything the caller heard, one per 20 ms frame, starting at the answer.
#[derive(Debug, Default, Clone)]
pub struct Hearing {
    levels: Vec<f32>,
}

impl Hearing {
    /// Adds the level of the frame heard at `at_ms`. Frames missing in between count as silent.
    pub fn push(&mut self, at_ms: f64, samples: &[i16]) {
        let index = (at_ms / f64::from(FRAME_MS)).round().max(0.0) as usize;
        if index >= self.levels.len() {
            self.levels.resize(index + 1, f32::NEG_INFINITY);
        }
        self.levels[index] = level_dbfs(samples);
    }

    /// End of the last audible frame heard so far.
    pub fn last_audible_end_ms(&self) -> Option<f64> {
        let last = self
            .levels
            .iter()
            .rposition(|&level| level >= AUDIBLE_DBFS)?;
        Some((last + 1) as f64 * f64::from(FRAME_MS))
    }

    /// Frames heard so far, counting silent gaps.
    pub fn frames(&self) -> usize {
        self.levels.len()
    }

    /// Talkspurts heard, in order.
    pub fn spurts(&self) -> Vec<Span> {
        talkspurts(&self.levels, 0.0, TALKSPURT_GAP_MS)
    }

    /// Start of the first audible frame.
    pub fn first_audio_ms(&self) -> Option<f64> {
        self.spurts().first().map(|s| s.start_ms)
    }

    /// Returns whether AI audio was audible in the `window_ms` before `at_ms`.
    pub fn audible_before(&self, at_ms: f64, window_ms: f64) -> bool {
        self.spurts()
            .iter()
            .any(|s| s.end_ms > at_ms - window_ms && s.start_ms <= at_ms)
    }

    /// Pairs each caller utterance end with the first talkspurt that starts after it.
    pub fn turns(&self, caller: &[Span]) -> Vec<Turn> {
        let spurts = self.spurts();
        caller
            .iter()
            .map(|utterance| {
                let reply = spurts.iter().find(|s| s.start_ms >= utterance.end_ms);
                let reply_start_ms = reply.map(|s| s.start_ms);
                Turn {
                    speech_end_ms: utterance.end_ms,
                    reply_start_ms,
                    reply_ms: reply_start_ms.map(|start| start - utterance.end_ms),
                }
            })
            .collect()
    }

    /// Measures how fast the AI fell silent after the caller started talking at `onset_ms`.
    /// Returns `None` when no AI audio was playing at the onset.
    pub fn barge_in(&self, onset_ms: f64) -> Option<BargeInFigures> {
        let frame = f64::from(FRAME_MS);
        // Pauses shorter than CUT_SILENCE_MS, such as between two sentences, belong to the
        // speech. So the AI was speaking at the onset when such a stretch covers it, and it
        // fell silent at the end of that stretch.
        let spurts = talkspurts(&self.levels, 0.0, CUT_SILENCE_MS);
        let speaking = spurts
            .iter()
            .find(|s| s.start_ms <= onset_ms && s.end_ms > onset_ms - 2.0 * frame)?;
        Some(BargeInFigures {
            onset_ms,
            silence_ms: speaking.end_ms,
            cut_ms: speaking.end_ms - onset_ms,
        })
    }
}

/// Finds utterances in 16 kHz audio the caller is about to play, relative to its start.
pub fn utterances(pcm: &[i16]) -> Vec<Span> {
    let frame = crate::audio::FRAME_SAMPLES;
    let levels: Vec<f32> = pcm.chunks(frame).map(level_dbfs).collect();
    // Pauses inside one spoken question stay well under this; separate questions do not.
    talkspurts(&levels, 0.0, 600.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    fn tone(amplitude: i16) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|i| if i % 2 == 0 { amplitude } else { -amplitude })
            .collect()
    }

    fn hearing(pattern: &str) -> Hearing {
        // One character per frame: '#' speech, '.' silence.
        let mut hearing = Hearing::default();
        for (i, c) in pattern.chars().enumerate() {
            let amplitude = if c == '#' { 8_000 } else { 0 };
            hearing.push(i as f64 * 20.0, &tone(amplitude));
        }
        hearing
    }

    #[test]
    fn level_of_full_scale_square_is_zero_db() {
        assert!((level_dbfs(&tone(i16::MAX)) - 0.0).abs() < 0.01);
        assert_eq!(level_dbfs(&tone(0)), f32::NEG_INFINITY);
        assert_eq!(level_dbfs(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn talkspurts_merge_short_gaps() {
        // 5 frames of speech, 100 ms gap, 5 frames, 400 ms gap, 2 frames.
        let h = hearing("#####.....#####....................##");
        let spurts = h.spurts();
        assert_eq!(spurts.len(), 2);
        assert_eq!(spurts[0].start_ms, 0.0);
        assert_eq!(spurts[0].end_ms, 300.0);
        assert_eq!(spurts[1].start_ms, 700.0);
    }

    #[test]
    fn last_audible_end_ignores_trailing_silence() {
        assert_eq!(hearing("..###.....").last_audible_end_ms(), Some(100.0));
        assert_eq!(hearing(".....").last_audible_end_ms(), None);
    }

    #[test]
    fn first_audio_skips_leading_silence() {
        let h = hearing("..........###");
        assert_eq!(h.first_audio_ms(), Some(200.0));
        assert_eq!(hearing("....").first_audio_ms(), None);
    }

    #[test]
    fn turn_reply_is_first_spurt_after_speech_end() {
        let h = hearing("####................................####");
        let turns = h.turns(&[Span {
            start_ms: 200.0,
            end_ms: 500.0,
        }]);
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].reply_start_ms, Some(720.0));
        assert_eq!(turns[0].reply_ms, Some(220.0));
    }

    #[test]
    fn turn_without_reply_has_none() {
        let h = hearing("####");
        let turns = h.turns(&[Span {
            start_ms: 200.0,
            end_ms: 500.0,
        }]);
        assert_eq!(turns[0].reply_start_ms, None);
        assert_eq!(turns[0].reply_ms, None);
    }

    #[test]
    fn barge_in_measures_cut() {
        // AI speaks from 0 to 1000 ms; the caller starts at 600 ms; silence follows.
        let h = hearing(&format!("{}{}", "#".repeat(50), ".".repeat(50)));
        let figures = h.barge_in(600.0).expect("AI was speaking");
        assert_eq!(figures.onset_ms, 600.0);
        assert_eq!(figures.silence_ms, 1000.0);
        assert_eq!(figures.cut_ms, 400.0);
    }

    #[test]
    fn barge_in_ignores_pause_between_words() {
        // A 100 ms pause after the onset is not the cut; the real silence comes later.
        let h = hearing(&format!(
            "{}.....{}{}",
            "#".repeat(35),
            "#".repeat(10),
            ".".repeat(40)
        ));
        let figures = h.barge_in(600.0).expect("AI was speaking");
        assert_eq!(figures.silence_ms, 1000.0);
    }

    #[test]
    fn barge_in_during_sentence_pause() {
        // The onset at 600 ms falls in a 300 ms pause between two sentences.
        let h = hearing(&format!(
            "{}{}{}{}",
            "#".repeat(25),
            ".".repeat(15),
            "#".repeat(5),
            ".".repeat(40)
        ));
        let figures = h.barge_in(600.0).expect("AI was speaking");
        assert_eq!(figures.silence_ms, 900.0);
        assert_eq!(figures.cut_ms, 300.0);
    }

    #[test]
    fn barge_in_none_when_ai_quiet() {
        let h = hearing(&format!("{}{}", "#".repeat(10), ".".repeat(50)));
        assert_eq!(h.barge_in(800.0), None);
    }

    #[test]
    fn utterances_split_on_long_pause() {
        let mut pcm = vec![0i16; FRAME_SAMPLES * 10];
        pcm.extend(std::iter::repeat_n(6_000i16, FRAME_SAMPLES * 20));
        pcm.extend(vec![0i16; FRAME_SAMPLES * 40]);
        pcm.extend(std::iter::repeat_n(6_000i16, FRAME_SAMPLES * 5));
        let spans = utterances(&pcm);
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].start_ms, 200.0);
        assert_eq!(spans[0].end_ms, 600.0);
        assert_eq!(spans[1].start_ms, 1400.0);
    }
}
