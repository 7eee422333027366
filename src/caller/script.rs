//! What the test caller does and when, as a state machine fed the time since the answer and
//! what the caller heard so far.
//!
//! The default script waits for the greeting to end (one second of silence after audio, or
//! [`ScriptSettings::greeting_timeout_ms`] without any audio), plays the WAV, waits for the
//! reply and two seconds of silence after it, and hangs up. `barge_in_at_ms` instead starts the
//! play at a fixed time, usually while the AI is still speaking. `hangup_after_ms` ends the
//! call at a fixed time whatever the script is doing.

use super::analysis::Hearing;

/// Silence after the greeting before the caller starts talking, in milliseconds.
pub const GREETING_END_SILENCE_MS: f64 = 1_000.0;
/// Silence after the reply before the caller hangs up, in milliseconds.
pub const REPLY_END_SILENCE_MS: f64 = 2_000.0;

/// Timing settings of one call's script. Times are milliseconds from the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSettings {
    /// Whether there is audio to play.
    pub play: bool,
    /// Start the play at this time instead of after the greeting.
    pub barge_in_at_ms: Option<f64>,
    /// Hang up at this time.
    pub hangup_after_ms: Option<f64>,
    /// Start the play (or hang up without a WAV) when no audio arrived by this time.
    pub greeting_timeout_ms: f64,
    /// Hang up when no reply started this long after the play ended.
    pub reply_timeout_ms: f64,
    /// Hang up at this time whatever happens, so a peer that never falls silent ends too.
    pub max_call_ms: f64,
}

impl Default for ScriptSettings {
    fn default() -> Self {
        Self {
            play: false,
            barge_in_at_ms: None,
            hangup_after_ms: None,
            greeting_timeout_ms: 5_000.0,
            reply_timeout_ms: 10_000.0,
            max_call_ms: 300_000.0,
        }
    }
}

/// Next step of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing yet.
    Wait,
    /// Start playing the WAV.
    Play,
    /// Send BYE.
    Hangup(HangupCause),
}

/// Reason the script hangs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupCause {
    /// The script finished: the reply (or greeting) ended.
    Done,
    /// No reply came within the reply timeout.
    NoReply,
    /// `hangup_after` was reached.
    HangupAfter,
    /// The call reached its maximum length.
    MaxDuration,
}

impl HangupCause {
    /// Text for the BYE's Reason header.
    pub fn reason(self) -> &'static str {
        match self {
            HangupCause::Done => "test caller finished",
            HangupCause::NoReply => "test caller heard no reply",
            HangupCause::HangupAfter => "test caller hangup time reached",
            HangupCause::MaxDuration => "test caller maximum call length reached",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Greeting,
    Playing,
    Reply { play_end_ms: f64 },
    Finished,
}

/// The script of one call.
#[derive(Debug, Clone)]
pub struct Script {
    settings: ScriptSettings,
    phase: Phase,
}

impl Script {
    /// Starts the script at the answer.
    pub fn new(settings: ScriptSettings) -> Self {
        Self {
            settings,
            phase: Phase::Greeting,
        }
    }

    /// Records that the WAV finished playing at `at_ms`.
    pub fn play_ended(&mut self, at_ms: f64) {
        if self.phase == Phase::Playing {
            self.phase = Phase::Reply { play_end_ms: at_ms };
        }
    }

    /// Decides what to do at `now_ms` given everything heard so far. Returns each `Play` and
    /// `Hangup` once.
    pub fn poll(&mut self, now_ms: f64, hearing: &Hearing) -> Action {
        if self.phase == Phase::Finished {
            return Action::Wait;
        }
        if let Some(cause) = self.forced_hangup(now_ms) {
            self.phase = Phase::Finished;
            return Action::Hangup(cause);
        }
        let action = match self.phase {
            Phase::Greeting => self.poll_greeting(now_ms, hearing),
            Phase::Reply { play_end_ms } => {
                poll_reply(&self.settings, now_ms, play_end_ms, hearing)
            }
            Phase::Playing | Phase::Finished => Action::Wait,
        };
        match action {
            Action::Play => self.phase = Phase::Playing,
            Action::Hangup(_) => self.phase = Phase::Finished,
            Action::Wait => {}
        }
        action
    }

    fn forced_hangup(&self, now_ms: f64) -> Option<HangupCause> {
        if let Some(at) = self.settings.hangup_after_ms
            && now_ms >= at
        {
            return Some(HangupCause::HangupAfter);
        }
        (now_ms >= self.settings.max_call_ms).then_some(HangupCause::MaxDuration)
    }

    fn poll_greeting(&self, now_ms: f64, hearing: &Hearing) -> Action {
        let greeting_over = match self.settings.barge_in_at_ms {
            Some(at) => now_ms >= at,
            None => match hearing.last_audible_end_ms() {
                Some(end) => now_ms - end >= GREETING_END_SILENCE_MS,
                None => now_ms >= self.settings.greeting_timeout_ms,
            },
        };
        match (greeting_over, self.settings.play) {
            (false, _) => Action::Wait,
            (true, true) => Action::Play,
            (true, false) if self.settings.hangup_after_ms.is_some() => Action::Wait,
            (true, false) => Action::Hangup(HangupCause::Done),
        }
    }
}

/// After the play: waits for audio that goes on past its end, then for two seconds of silence.
fn poll_reply(
    settings: &ScriptSettings,
    now_ms: f64,
    play_end_ms: f64,
    hearing: &Hearing,
) -> Action {
    let waiting = settings.hangup_after_ms.is_some();
    match hearing.last_audible_end_ms() {
        Some(end) if end > play_end_ms => {
            if now_ms - end >= REPLY_END_SILENCE_MS && !waiting {
                Action::Hangup(HangupCause::Done)
            } else {
                Action::Wait
            }
        }
        _ if now_ms - play_end_ms >= settings.reply_timeout_ms && !waiting => {
            Action::Hangup(HangupCause::NoReply)
        }
        _ => Action::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::FRAME_SAMPLES;

    /// Feeds `pattern` (one character per 20 ms frame: `#` speech, `.` silence) from 0 ms.
    fn hearing(pattern: &str) -> Hearing {
        let mut hearing = Hearing::default();
        for (i, c) in pattern.chars().enumerate() {
            let amplitude = if c == '#' { 8_000 } else { 0 };
            hearing.push(i as f64 * 20.0, &[amplitude; FRAME_SAMPLES]);
        }
        hearing
    }

    fn playing() -> ScriptSettings {
        ScriptSettings {
            play: true,
            ..ScriptSettings::default()
        }
    }

    #[test]
    fn plays_after_greeting_and_silence() {
        // Greeting from 0 to 1000 ms.
        let heard = hearing(&"#".repeat(50));
        let mut script = Script::new(playing());
        assert_eq!(script.poll(1_500.0, &heard), Action::Wait);
        assert_eq!(script.poll(2_000.0, &heard), Action::Play);
        assert_eq!(script.poll(2_020.0, &heard), Action::Wait);
    }

    #[test]
    fn plays_after_greeting_timeout() {
        let mut script = Script::new(playing());
        let silent = Hearing::default();
        assert_eq!(script.poll(4_980.0, &silent), Action::Wait);
        assert_eq!(script.poll(5_000.0, &silent), Action::Play);
    }

    #[test]
    fn barge_in_plays_at_fixed_time() {
        let heard = hearing(&"#".repeat(200));
        let mut script = Script::new(ScriptSettings {
            barge_in_at_ms: Some(1_200.0),
            ..playing()
        });
        assert_eq!(script.poll(1_180.0, &heard), Action::Wait);
        assert_eq!(script.poll(1_200.0, &heard), Action::Play);
    }

    #[test]
    fn hangs_up_two_seconds_after_reply() {
        let mut script = Script::new(playing());
        assert_eq!(script.poll(5_000.0, &Hearing::default()), Action::Play);
        script.play_ended(6_000.0);
        // Reply from 7000 to 8000 ms.
        let heard = hearing(&format!("{}{}", ".".repeat(350), "#".repeat(50)));
        assert_eq!(script.poll(6_500.0, &heard), Action::Wait);
        assert_eq!(script.poll(9_980.0, &heard), Action::Wait);
        assert_eq!(
            script.poll(10_000.0, &heard),
            Action::Hangup(HangupCause::Done)
        );
        assert_eq!(script.poll(10_020.0, &heard), Action::Wait);
    }

    #[test]
    fn hangs_up_without_reply() {
        let mut script = Script::new(playing());
        assert_eq!(script.poll(5_000.0, &Hearing::default()), Action::Play);
        script.play_ended(6_000.0);
        // Only the greeting, before the play ended.
        let heard = hearing(&"#".repeat(50));
        assert_eq!(script.poll(15_980.0, &heard), Action::Wait);
        assert_eq!(
            script.poll(16_000.0, &heard),
            Action::Hangup(HangupCause::NoReply)
        );
    }

    #[test]
    fn hangup_after_overrides_script() {
        let mut script = Script::new(ScriptSettings {
            hangup_after_ms: Some(3_000.0),
            ..ScriptSettings::default()
        });
        let heard = hearing(&"#".repeat(10));
        // Without a WAV the script would end after the greeting, but hangup_after waits.
        assert_eq!(script.poll(2_000.0, &heard), Action::Wait);
        assert_eq!(
            script.poll(3_000.0, &heard),
            Action::Hangup(HangupCause::HangupAfter)
        );
    }

    #[test]
    fn no_wav_hangs_up_after_greeting() {
        let heard = hearing(&"#".repeat(10));
        let mut script = Script::new(ScriptSettings::default());
        assert_eq!(script.poll(1_100.0, &heard), Action::Wait);
        assert_eq!(
            script.poll(1_200.0, &heard),
            Action::Hangup(HangupCause::Done)
        );
    }

    #[test]
    fn max_duration_ends_endless_audio() {
        let mut script = Script::new(ScriptSettings {
            max_call_ms: 1_000.0,
            ..playing()
        });
        let heard = hearing(&"#".repeat(100));
        assert_eq!(script.poll(980.0, &heard), Action::Wait);
        assert_eq!(
            script.poll(1_000.0, &heard),
            Action::Hangup(HangupCause::MaxDuration)
        );
    }
}
