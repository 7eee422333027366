//! The conversation loop of one call: greeting, turn taking, streaming replies, barge-in and
//! the latency trace of every turn.
//!
//! The loop reads [`MediaEvent`]s from the call's media session, writes
//! [`PlayoutCommand`]s to its playout queue and reports what happens as
//! [`ConversationEvent`]s. It never touches SIP: hanging up and transfers come back to the
//! call layer as [`ConversationEnd`].

mod engine;
mod heard;
mod reply;
mod stt;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ai::provider::{LlmProvider, SttProvider, TtsProvider, VoiceOptions};
use crate::ai::{AgentConfig, AiConfig};
use crate::audio::{MediaEvent, PlayoutCommand};
use crate::tenancy::{TurnRecord, TurnRole};

/// The providers one call uses, first choice first. The loop moves to the next provider of a
/// chain when one fails.
#[derive(Clone, Default)]
pub struct ProviderChains {
    /// Speech-to-text providers.
    pub stt: Vec<Arc<dyn SttProvider>>,
    /// Language models or the scripted agent.
    pub llm: Vec<Arc<dyn LlmProvider>>,
    /// Text-to-speech providers.
    pub tts: Vec<Arc<dyn TtsProvider>>,
}

impl std::fmt::Debug for ProviderChains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: Vec<&'static str>| list.join(",");
        f.debug_struct("ProviderChains")
            .field("stt", &names(self.stt.iter().map(|p| p.name()).collect()))
            .field("llm", &names(self.llm.iter().map(|p| p.name()).collect()))
            .field("tts", &names(self.tts.iter().map(|p| p.name()).collect()))
            .finish()
    }
}

/// Behaviour of one call's conversation, resolved from `[ai]`, `[agent]` and the tenant.
#[derive(Debug, Clone, Default)]
pub struct ConversationSettings {
    /// SIP Call-ID, for logs.
    pub call_id: String,
    /// Text spoken when the call connects; empty for none.
    pub greeting: String,
    /// The greeting plays to its end even when the caller talks over it.
    pub non_interruptible_greeting: bool,
    /// System prompt for language models.
    pub system_prompt: String,
    /// BCP 47 language.
    pub language: String,
    /// Voice for text-to-speech.
    pub voice: VoiceOptions,
    /// Words that help recognition.
    pub keywords: Vec<String>,
    /// Caller silence that ends a turn.
    pub end_of_turn: Duration,
    /// Deadline for a language model's first token before the holding phrase plays.
    pub first_token_timeout: Duration,
    /// Deadline for any further progress of a provider stream.
    pub stall_timeout: Duration,
    /// Deadline for the speech-to-text final after the end of a turn.
    pub stt_final_timeout: Duration,
    /// Longest reply spoken.
    pub max_reply: Duration,
    /// Caller speech needed before it interrupts the AI.
    pub min_interruption: Duration,
    /// Short words that do not interrupt the AI.
    pub backchannels: Vec<String>,
    /// Spoken when the language model is slow.
    pub holding_phrase: String,
    /// Spoken when every provider of a chain failed; the call stays up.
    pub apology: String,
    /// Target of the transfer tool; `None` disables the tool.
    pub transfer_target: Option<String>,
    /// DTMF digits are never logged or stored.
    pub sensitive_dtmf: bool,
}

impl ConversationSettings {
    /// Settings from the server configuration alone.
    pub fn from_config(ai: &AiConfig, agent: &AgentConfig, call_id: &str) -> Self {
        Self {
            call_id: call_id.to_owned(),
            greeting: agent.greeting.clone(),
            non_interruptible_greeting: false,
            system_prompt: agent.prompt.clone(),
            language: "en-US".to_owned(),
            voice: VoiceOptions {
                voice: ai.espeak_voice.clone(),
                language: "en-US".to_owned(),
            },
            keywords: agent.keywords.clone(),
            end_of_turn: Duration::from_millis(ai.end_of_turn_ms),
            first_token_timeout: Duration::from_millis(ai.first_token_timeout_ms),
            stall_timeout: Duration::from_millis(ai.stall_timeout_ms),
            stt_final_timeout: Duration::from_millis(ai.stt_final_timeout_ms),
            max_reply: Duration::from_secs(ai.max_reply_secs),
            min_interruption: Duration::from_millis(ai.min_interruption_ms),
            backchannels: ai.backchannels.clone(),
            holding_phrase: ai.holding_phrase.clone(),
            apology: ai.apology.clone(),
            transfer_target: (!agent.transfer_target.is_empty())
                .then(|| agent.transfer_target.clone()),
            sensitive_dtmf: false,
        }
    }
}

/// Input from the call layer besides media.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlInput {
    /// A digit that arrived by SIP INFO.
    Dtmf(char),
    /// The call went on hold (`true`) or came back (`false`).
    Hold(bool),
}

/// Event the loop reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEvent {
    /// A partial or final transcript.
    Transcript {
        /// Who spoke.
        role: TurnRole,
        /// The words so far.
        text: String,
        /// Final transcript of the utterance.
        is_final: bool,
    },
    /// The caller talked over the AI, which stopped.
    BargeIn {
        /// The part of the reply the caller heard.
        heard_text: String,
        /// Caller speech onset to the last AI packet.
        cut: Duration,
    },
    /// A turn finished (caller or agent), with its latency trace.
    Turn(TurnRecord),
}

/// Reason the loop returned.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEnd {
    /// The media session stopped sending events (the call ended elsewhere).
    MediaClosed,
    /// No RTP arrived for the media timeout.
    MediaTimeout,
    /// The agent spoke its goodbye and requests the end of the call.
    Hangup,
    /// The agent wants the call transferred here (a SIP URI or number).
    Transfer {
        /// Transfer target.
        target: String,
    },
}

/// The result of one call's conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationOutcome {
    /// Every turn, in order.
    pub turns: Vec<TurnRecord>,
    /// Reason it ended.
    pub end: ConversationEnd,
}

/// Runs one call's conversation until the media closes or the agent ends it.
///
/// Speaks the greeting, streams caller audio to speech-to-text, ends turns on VAD silence plus
/// `end_of_turn`, streams replies sentence by sentence into the playout queue, handles barge-in,
/// DTMF and the agent's tools, and falls back along each provider chain. Events go out with
/// `try_send`, so a slow reader loses events but never stalls the call.
pub async fn run(
    settings: ConversationSettings,
    chains: ProviderChains,
    media: mpsc::Receiver<MediaEvent>,
    playout: mpsc::Sender<PlayoutCommand>,
    control: mpsc::Receiver<ControlInput>,
    events: mpsc::Sender<ConversationEvent>,
) -> ConversationOutcome {
    engine::Conversation::new(settings, chains, playout, events)
        .run(media, control)
        .await
}
