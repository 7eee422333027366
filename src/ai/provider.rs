//! Provider traits for speech-to-text, language models and text-to-speech.
//!
//! Every provider runs in its own tasks and talks to the conversation loop through bounded
//! channels or streams, so a slow provider can delay a reply but never the media path.
//! Dropping a stream or a session cancels the work at the provider (the connection closes).

use std::fmt;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// Could not connect or the connection dropped.
    #[error("{provider}: connection failed: {message}")]
    Connect {
        /// Provider name.
        provider: &'static str,
        /// Transport error text.
        message: String,
    },
    /// The provider answered with an error status or message.
    #[error("{provider}: request rejected with {status}: {message}")]
    Rejected {
        /// Provider name.
        provider: &'static str,
        /// HTTP status or WebSocket close code.
        status: u16,
        /// Error body, shortened.
        message: String,
    },
    /// A deadline passed.
    #[error("{provider}: timed out after {after:?}")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The provider sent something we could not parse.
    #[error("{provider}: invalid response: {message}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Missing key or invalid settings.
    #[error("{provider}: not configured: {message}")]
    Config {
        /// Provider name.
        provider: &'static str,
        /// What is missing.
        message: String,
    },
}

/// Settings for one speech-to-text session.
#[derive(Debug, Clone, Default)]
pub struct SttOptions {
    /// BCP 47 language, for example `en-US`.
    pub language: String,
    /// Words that help recognition (names, products).
    pub keywords: Vec<String>,
    /// Call id for logs.
    pub call_id: String,
}

/// Audio and control sent to a speech-to-text session.
#[derive(Debug)]
pub enum SttInput {
    /// 16 kHz mono PCM.
    Audio(Vec<i16>),
    /// The caller stopped talking: produce a final for what was heard so far.
    Finalize,
    /// The call is on hold or muted: keep the session open without audio.
    Pause,
    /// Audio resumes after [`SttInput::Pause`].
    Resume,
}

/// Results from a speech-to-text session.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// Interim hypothesis; may change.
    Partial(String),
    /// Stable text for a stretch of speech.
    Final(String),
    /// The session lost its connection and is reconnecting; audio is buffered meanwhile.
    Reconnecting,
    /// The session gave up; no more events follow.
    Failed(ProviderError),
}

/// A running speech-to-text session: send audio in, read events out. Dropping `input` closes
/// the session.
pub struct SttSession {
    /// Audio and control toward the provider.
    pub input: mpsc::Sender<SttInput>,
    /// Transcripts from the provider.
    pub events: mpsc::Receiver<SttEvent>,
}

/// A speech-to-text provider.
pub trait SttProvider: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Starts a session for one call. Connection happens in the session's task; failures
    /// arrive as events.
    fn start(&self, options: SttOptions) -> SttSession;
}

/// Who said a message in the conversation history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The caller.
    User,
    /// The AI.
    Assistant,
    /// A tool result.
    Tool,
}

/// One message of the conversation history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: Role,
    /// Text (for the assistant, only what the caller heard).
    pub content: String,
    /// Tool calls the assistant made in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`, the call this answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
}

impl ChatMessage {
    /// A plain text message.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: String::new(),
        }
    }
}

/// A tool the agent may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// A tool call requested by the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Provider's id for the call.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments as parsed JSON.
    pub arguments: serde_json::Value,
}

/// One chat completion request.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// System prompt.
    pub system: String,
    /// History, oldest first, ending with the caller's latest turn.
    pub messages: Vec<ChatMessage>,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// Call id for logs.
    pub call_id: String,
}

/// Pieces of a streamed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// Text to speak, in order.
    Token(String),
    /// A complete tool call.
    ToolCall(ToolCall),
    /// The reply is complete.
    Done,
}

/// A language model or scripted agent.
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Starts a streamed reply. Returns once the request is accepted; tokens follow on the
    /// stream. Dropping the stream cancels the request.
    async fn stream(
        &self,
        request: ChatRequest,
    ) -> Result<BoxStream<'static, Result<LlmEvent, ProviderError>>, ProviderError>;
}

/// Settings for one synthesis.
#[derive(Debug, Clone, Default)]
pub struct VoiceOptions {
    /// Provider-specific voice name or id; empty uses the provider default.
    pub voice: String,
    /// BCP 47 language.
    pub language: String,
}

/// A text-to-speech provider.
#[async_trait::async_trait]
pub trait TtsProvider: Send + Sync {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;
    /// Synthesises one sentence. Returns once the request is accepted; 16 kHz mono PCM chunks
    /// follow as they arrive. Dropping the stream cancels the synthesis.
    async fn synthesize(
        &self,
        text: &str,
        voice: &VoiceOptions,
    ) -> Result<BoxStream<'static, Result<Vec<i16>, ProviderError>>, ProviderError>;
}

impl fmt::Debug for SttSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SttSession").finish_non_exhaustive()
    }
}
