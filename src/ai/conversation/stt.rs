//! The speech-to-text chain of one call: the current session, failover to the next provider,
//! and the caller audio kept so that a new provider hears the whole current utterance.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;

use crate::ai::metrics;
use crate::ai::provider::{SttEvent, SttInput, SttOptions, SttProvider, SttSession};
use crate::audio::SAMPLE_RATE;

/// Audio kept from before the caller's speech was confirmed, in samples (0.5 s), because the
/// VAD confirms speech only after its first voiced frames.
const PREROLL_SAMPLES: usize = SAMPLE_RATE as usize / 2;
/// Maximum utterance audio kept for replay, in samples (60 s).
const MAX_REPLAY_SAMPLES: usize = SAMPLE_RATE as usize * 60;

/// Speech-to-text sessions with failover.
pub(super) struct SttChain {
    providers: Vec<Arc<dyn SttProvider>>,
    options: SttOptions,
    index: usize,
    session: Option<SttSession>,
    /// Caller audio of the current utterance plus the preroll before it.
    replay: VecDeque<i16>,
    in_utterance: bool,
    paused: bool,
    finalize_pending: bool,
}

/// Result of a failover.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Failover {
    /// The next provider runs and got the utterance's audio.
    Next,
    /// Every provider failed; the chain restarts on the caller's next utterance.
    Exhausted,
}

impl SttChain {
    pub fn new(providers: Vec<Arc<dyn SttProvider>>, options: SttOptions) -> Self {
        let mut chain = Self {
            providers,
            options,
            index: 0,
            session: None,
            replay: VecDeque::new(),
            in_utterance: false,
            paused: false,
            finalize_pending: false,
        };
        chain.start_session();
        chain
    }

    /// Name of the provider in use, for logs.
    pub fn provider_name(&self) -> &'static str {
        self.providers.get(self.index).map_or("none", |p| p.name())
    }

    fn start_session(&mut self) {
        self.session = self
            .providers
            .get(self.index)
            .map(|provider| provider.start(self.options.clone()));
        if self.session.is_some() {
            tracing::debug!(
                provider = self.provider_name(),
                "speech-to-text session started"
            );
        }
    }

    /// Sends caller audio to the session and keeps it for a replay.
    pub fn push_audio(&mut self, pcm: &[i16]) {
        self.replay.extend(pcm.iter().copied());
        let limit = if self.in_utterance {
            MAX_REPLAY_SAMPLES
        } else {
            PREROLL_SAMPLES
        };
        let excess = self.replay.len().saturating_sub(limit);
        self.replay.drain(..excess);
        if !self.paused {
            self.send(SttInput::Audio(pcm.to_vec()));
        }
    }

    /// Marks the start of caller speech; restarts an exhausted chain.
    pub fn utterance_started(&mut self) {
        self.in_utterance = true;
        if self.session.is_none() && !self.providers.is_empty() {
            self.index = 0;
            self.start_session();
            self.replay_audio();
        }
    }

    /// Forgets the utterance once its final transcript has been used.
    pub fn utterance_done(&mut self) {
        self.in_utterance = false;
        self.finalize_pending = false;
        let excess = self.replay.len().saturating_sub(PREROLL_SAMPLES);
        self.replay.drain(..excess);
    }

    /// Asks the session for the final transcript of what it heard.
    pub fn finalize(&mut self) {
        self.finalize_pending = true;
        self.send(SttInput::Finalize);
    }

    /// Stops or restarts audio while the call is on hold.
    pub fn set_paused(&mut self, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        self.send(if paused {
            SttInput::Pause
        } else {
            SttInput::Resume
        });
    }

    /// Moves to the next provider and replays the utterance's audio (and the finalize request,
    /// if one was pending) to it.
    pub fn fail_over(&mut self) -> Failover {
        let failed = self.provider_name();
        metrics::count_failure("stt", failed);
        self.session = None;
        self.index += 1;
        if self.index >= self.providers.len() {
            metrics::CHAIN_EXHAUSTED.with_label_values(&["stt"]).inc();
            tracing::warn!(provider = failed, "every speech-to-text provider failed");
            self.index = 0;
            self.finalize_pending = false;
            return Failover::Exhausted;
        }
        metrics::count_fallback("stt", failed);
        tracing::info!(
            provider = failed,
            next = self.providers[self.index].name(),
            replay_ms = self.replay.len() as u64 * 1000 / u64::from(SAMPLE_RATE),
            "speech-to-text failed, trying the next provider"
        );
        self.start_session();
        self.replay_audio();
        Failover::Next
    }

    fn replay_audio(&mut self) {
        if self.paused {
            self.send(SttInput::Pause);
            return;
        }
        let audio: Vec<i16> = self.replay.iter().copied().collect();
        for chunk in audio.chunks(SAMPLE_RATE as usize) {
            self.send(SttInput::Audio(chunk.to_vec()));
        }
        if self.finalize_pending {
            self.send(SttInput::Finalize);
        }
    }

    fn send(&mut self, input: SttInput) {
        let Some(session) = &self.session else {
            return;
        };
        match session.input.try_send(input) {
            Ok(()) => {}
            // The replay buffer still holds the audio, and a session that stays behind is
            // caught by the stall deadline.
            Err(TrySendError::Full(_)) => {
                tracing::trace!(provider = self.provider_name(), "speech-to-text input full")
            }
            Err(TrySendError::Closed(_)) => {
                tracing::debug!(
                    provider = self.provider_name(),
                    "speech-to-text input closed"
                )
            }
        }
    }

    /// Waits for the next event of the current session; a closed session reads as failed.
    /// Pending forever while no session runs.
    pub async fn next_event(&mut self) -> SttEvent {
        let Some(session) = &mut self.session else {
            return std::future::pending().await;
        };
        match session.events.recv().await {
            Some(event) => event,
            None => SttEvent::Failed(crate::ai::provider::ProviderError::Connect {
                provider: self.providers[self.index].name(),
                message: "session closed".to_owned(),
            }),
        }
    }
}
