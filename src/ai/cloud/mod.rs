//! Clients of cloud speech-to-text, language-model and text-to-speech providers, each
//! implementing the traits of [`crate::ai::provider`] over the provider's documented wire
//! protocol (cited in each module's header).
//!
//! [`CloudProviders`] builds them from `[providers]`, sharing one HTTP connection pool. Keys
//! come from a per-tenant override, else the configuration, else the provider's usual
//! environment variable; they never appear in `Debug` output, errors or logs.
//!
//! Language-model and synthesis clients do their network work in the caller's task, and
//! speech-to-text sessions in a task of their own. They talk to the conversation loop through
//! bounded queues or pulled streams. Dropping a stream or a session stops the work at the
//! provider. See `docs/providers.md`.

pub mod anthropic;
pub mod azure_tts;
pub mod deepgram;
pub mod elevenlabs;
pub mod http;
pub mod key;
pub mod llm_stream;
pub mod metrics;
pub mod openai_chat;
pub mod openai_stt;
pub mod openai_tts;
pub mod pcm;
pub mod sse;
mod tts_stream;

use std::sync::Arc;
use std::time::Duration;

pub use anthropic::AnthropicChat;
pub use azure_tts::AzureTts;
pub use deepgram::{DeepgramSettings, DeepgramStt};
pub use elevenlabs::{ElevenLabsSettings, ElevenLabsTts};
pub use http::{HttpClient, HttpSettings};
pub use key::{ApiKey, resolve_key};
pub use llm_stream::TokenTiming;
pub use openai_chat::OpenAiChat;
pub use openai_stt::OpenAiTranscription;
pub use openai_tts::OpenAiTts;

use super::ProvidersConfig;
use super::provider::{LlmProvider, ProviderError, SttProvider, TtsProvider};

/// Environment variable of the Deepgram key.
pub const DEEPGRAM_KEY_ENV: &str = "DEEPGRAM_API_KEY";
/// Environment variable of the OpenAI-compatible API key.
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";
/// Environment variable of the Anthropic key.
pub const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// Environment variable of the ElevenLabs key.
pub const ELEVENLABS_KEY_ENV: &str = "ELEVENLABS_API_KEY";
/// Environment variable of the Azure Speech key.
pub const AZURE_KEY_ENV: &str = "AZURE_SPEECH_KEY";

type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Builds cloud provider clients from `[providers]`. Cheap to clone.
#[derive(Clone)]
pub struct CloudProviders {
    config: Arc<ProvidersConfig>,
    http: HttpClient,
    env: EnvLookup,
}

impl std::fmt::Debug for CloudProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudProviders")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CloudProviders {
    /// Creates the factory; keys missing from the configuration are read from the process
    /// environment when a client is built.
    pub fn new(config: &ProvidersConfig) -> Result<Self, ProviderError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// Like [`CloudProviders::new`], reading environment variables through `lookup`.
    pub fn with_env(
        config: &ProvidersConfig,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, ProviderError> {
        config.validate().map_err(|err| ProviderError::Config {
            provider: "cloud",
            message: err.to_string(),
        })?;
        let http = HttpClient::new(HttpSettings::from_config(config))?;
        Ok(Self {
            config: Arc::new(config.clone()),
            http,
            env: Arc::new(lookup),
        })
    }

    fn key(&self, tenant_key: &str, configured: &str, env_name: &str) -> ApiKey {
        resolve_key(tenant_key, configured, env_name, |name| (self.env)(name))
    }

    /// Builds the speech-to-text client `name` (`deepgram` or `openai`). `tenant_key`, when
    /// not empty, replaces the configured key.
    pub fn stt(&self, name: &str, tenant_key: &str) -> Result<Arc<dyn SttProvider>, ProviderError> {
        let c = &*self.config;
        match name {
            "deepgram" => {
                let key = self.key(tenant_key, &c.deepgram_api_key, DEEPGRAM_KEY_ENV);
                Ok(Arc::new(DeepgramStt::new(deepgram_settings(c), key)?))
            }
            "openai" => {
                let key = self.key(tenant_key, &c.openai_api_key, OPENAI_KEY_ENV);
                Ok(Arc::new(OpenAiTranscription::new(
                    self.http.clone(),
                    &c.openai_base_url,
                    key,
                    &c.openai_stt_model,
                    c.openai_stt_max_secs,
                )))
            }
            other => Err(not_cloud("speech-to-text", other)),
        }
    }

    /// Builds the language-model client `name` (`openai` or `anthropic`).
    pub fn llm(&self, name: &str, tenant_key: &str) -> Result<Arc<dyn LlmProvider>, ProviderError> {
        let c = &*self.config;
        match name {
            "openai" => {
                let key = self.key(tenant_key, &c.openai_api_key, OPENAI_KEY_ENV);
                Ok(Arc::new(OpenAiChat::new(
                    self.http.clone(),
                    &c.openai_base_url,
                    key,
                    &c.openai_llm_model,
                    c.openai_llm_max_tokens,
                )))
            }
            "anthropic" => {
                let key = self.key(tenant_key, &c.anthropic_api_key, ANTHROPIC_KEY_ENV);
                if key.is_empty() {
                    return Err(missing_key(
                        "anthropic",
                        "anthropic_api_key",
                        ANTHROPIC_KEY_ENV,
                    ));
                }
                Ok(Arc::new(AnthropicChat::new(
                    self.http.clone(),
                    &c.anthropic_base_url,
                    key,
                    &c.anthropic_model,
                    c.anthropic_max_tokens,
                )))
            }
            other => Err(not_cloud("language-model", other)),
        }
    }

    /// Builds the text-to-speech client `name` (`elevenlabs`, `openai` or `azure`).
    pub fn tts(&self, name: &str, tenant_key: &str) -> Result<Arc<dyn TtsProvider>, ProviderError> {
        let c = &*self.config;
        match name {
            "elevenlabs" => {
                let key = self.key(tenant_key, &c.elevenlabs_api_key, ELEVENLABS_KEY_ENV);
                let settings = ElevenLabsSettings {
                    base_url: c.elevenlabs_base_url.clone(),
                    voice: c.elevenlabs_voice.clone(),
                    model: c.elevenlabs_model.clone(),
                    output_format: c.elevenlabs_output_format.clone(),
                    stability: c.elevenlabs_stability,
                    similarity_boost: c.elevenlabs_similarity_boost,
                };
                Ok(Arc::new(ElevenLabsTts::new(
                    self.http.clone(),
                    key,
                    settings,
                )?))
            }
            "openai" => {
                let key = self.key(tenant_key, &c.openai_api_key, OPENAI_KEY_ENV);
                Ok(Arc::new(OpenAiTts::new(
                    self.http.clone(),
                    &c.openai_base_url,
                    key,
                    &c.openai_tts_model,
                    &c.openai_tts_voice,
                )))
            }
            "azure" => {
                let key = self.key(tenant_key, &c.azure_api_key, AZURE_KEY_ENV);
                Ok(Arc::new(AzureTts::new(
                    self.http.clone(),
                    &c.azure_endpoint,
                    key,
                    &c.azure_voice,
                    &c.azure_output_format,
                )?))
            }
            other => Err(not_cloud("text-to-speech", other)),
        }
    }
}

/// Reads the Deepgram settings from `[providers]`.
pub fn deepgram_settings(c: &ProvidersConfig) -> DeepgramSettings {
    DeepgramSettings {
        url: c.deepgram_url.clone(),
        model: c.deepgram_model.clone(),
        encoding: c.deepgram_encoding.clone(),
        sample_rate: c.deepgram_sample_rate,
        interim_results: c.deepgram_interim_results,
        endpointing_ms: c.deepgram_endpointing_ms,
        utterance_end_ms: c.deepgram_utterance_end_ms,
        smart_format: c.deepgram_smart_format,
        keepalive: Duration::from_millis(c.deepgram_keepalive_ms),
        replay: Duration::from_millis(c.deepgram_replay_ms),
        max_failures: c.deepgram_max_failures,
        backoff: Duration::from_millis(c.deepgram_backoff_ms),
        connect_timeout: Duration::from_secs(c.connect_timeout_secs)
            + Duration::from_millis(c.first_byte_timeout_ms),
    }
}

fn not_cloud(kind: &str, name: &str) -> ProviderError {
    ProviderError::Config {
        provider: "cloud",
        message: format!("`{name}` is not a cloud {kind} provider"),
    }
}

fn missing_key(provider: &'static str, setting: &str, env_name: &str) -> ProviderError {
    ProviderError::Config {
        provider,
        message: format!("missing API key; set providers.{setting} or {env_name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers(env: &'static [(&'static str, &'static str)]) -> CloudProviders {
        CloudProviders::with_env(&ProvidersConfig::default(), move |name| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn builds_every_cloud_provider_with_keys() {
        let providers = providers(&[
            (DEEPGRAM_KEY_ENV, "dg"),
            (ANTHROPIC_KEY_ENV, "an"),
            (ELEVENLABS_KEY_ENV, "el"),
        ]);
        assert_eq!(providers.stt("deepgram", "").unwrap().name(), "deepgram");
        assert_eq!(providers.stt("openai", "").unwrap().name(), "openai-stt");
        assert_eq!(providers.llm("openai", "").unwrap().name(), "openai");
        assert_eq!(providers.llm("anthropic", "").unwrap().name(), "anthropic");
        assert_eq!(
            providers.tts("elevenlabs", "").unwrap().name(),
            "elevenlabs"
        );
        assert_eq!(providers.tts("openai", "").unwrap().name(), "openai-tts");
    }

    #[test]
    fn missing_keys_name_setting_and_variable() {
        let providers = providers(&[]);
        let cases = [
            (providers.stt("deepgram", "").err(), DEEPGRAM_KEY_ENV),
            (providers.llm("anthropic", "").err(), ANTHROPIC_KEY_ENV),
            (providers.tts("elevenlabs", "").err(), ELEVENLABS_KEY_ENV),
        ];
        for (error, env_name) in cases {
            let message = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(env_name), "{message}");
        }
    }

    #[test]
    fn tenant_key_satisfies_a_missing_key() {
        let providers = providers(&[]);
        assert!(providers.llm("anthropic", "tenant-key").is_ok());
    }

    #[test]
    fn azure_needs_an_endpoint() {
        let providers = providers(&[(AZURE_KEY_ENV, "az")]);
        let message = providers.tts("azure", "").err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .unwrap_or_default()
                .contains("azure_endpoint"),
            "{message:?}"
        );
    }

    #[test]
    fn embedded_names_are_not_cloud_providers() {
        let providers = providers(&[]);
        assert!(providers.stt("whisper", "").is_err());
        assert!(providers.llm("scripted", "").is_err());
        assert!(providers.tts("espeak", "").is_err());
    }
}
