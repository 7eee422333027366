//! The provider registry: builds each call's provider chains by name.
//!
//! One [`Registry`] per node owns the shared offline providers (the Whisper helper process
//! and espeak-ng's process limit) and the cloud client factory. [`Registry::chains`] builds
//! the chains a call uses, in order, with the tenant's own API keys where it has them. Keys
//! never appear in `Debug` output or logs.

use std::sync::Arc;

use crate::ai::cloud::CloudProviders;
use crate::ai::conversation::ProviderChains;
use crate::ai::offline::{
    EspeakSettings, EspeakTts, HelperSettings, ScriptedAgent, WhisperHelper, WhisperStt,
};
use crate::ai::provider::{LlmProvider, ProviderError, SttProvider, TtsProvider};
use crate::ai::{AgentConfig, AiConfig, ProvidersConfig};
use crate::tenancy::ProviderKeys;

/// Shared providers of one node.
pub struct Registry {
    whisper: WhisperHelper,
    whisper_beam: u32,
    warm_whisper: bool,
    espeak: EspeakTts,
    cloud: CloudProviders,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("whisper", &self.whisper)
            .field("espeak", &self.espeak)
            .field("cloud", &self.cloud)
            .finish()
    }
}

impl Registry {
    /// Creates the registry from `[ai]`, `[providers]` and `[agent]`. Starts no process: the
    /// Whisper helper starts in [`Registry::warm_up`] or on the first utterance.
    pub fn new(
        ai: &AiConfig,
        providers: &ProvidersConfig,
        agent: &AgentConfig,
    ) -> Result<Registry, ProviderError> {
        let config_error = |message: String| ProviderError::Config {
            provider: "registry",
            message,
        };
        ai.validate().map_err(|err| config_error(err.to_string()))?;
        agent
            .validate()
            .map_err(|err| config_error(err.to_string()))?;
        let whisper = WhisperHelper::new(HelperSettings {
            python: ai.whisper_python.clone(),
            model: ai.whisper_model.clone(),
        });
        Ok(Registry {
            whisper,
            whisper_beam: ai.whisper_beam,
            warm_whisper: ai.stt.iter().any(|name| name == "whisper"),
            espeak: EspeakTts::new(EspeakSettings::new(&ai.espeak_voice, ai.espeak_rate)),
            cloud: CloudProviders::new(providers)?,
        })
    }

    /// Starts the Whisper helper when the server's default chain uses it, and waits until its
    /// model is loaded, so the first caller does not wait for it. A failure is logged; the
    /// helper keeps restarting in the background.
    pub async fn warm_up(&self) {
        if !self.warm_whisper {
            return;
        }
        match self.whisper.warm_up().await {
            Ok(()) => tracing::info!("Whisper model loaded"),
            Err(err) => tracing::warn!(error = %err, "Whisper helper failed to start"),
        }
    }

    /// The shared Whisper helper.
    pub fn whisper(&self) -> &WhisperHelper {
        &self.whisper
    }

    /// Builds a call's chains from provider names, first choice first. Cloud providers use
    /// the tenant's key from `keys` when it has one; the scripted agent uses `agent`.
    pub fn chains(
        &self,
        stt: &[String],
        llm: &[String],
        tts: &[String],
        agent: &AgentConfig,
        keys: &ProviderKeys,
    ) -> Result<ProviderChains, ProviderError> {
        let key = |name: &str| keys.get(name).unwrap_or_default().to_owned();
        let mut chains = ProviderChains::default();
        // A provider that cannot be built (a tenant without its key, say) is left out so the
        // rest of its chain still serves the call; only an empty chain is an error.
        let mut last_error = None;
        for name in non_empty("stt", stt)? {
            if let Some(provider) = keep(self.stt(name, &key(name)), "stt", name, &mut last_error) {
                chains.stt.push(provider);
            }
        }
        for name in non_empty("llm", llm)? {
            let built = self.llm(name, agent, &key(name));
            if let Some(provider) = keep(built, "llm", name, &mut last_error) {
                chains.llm.push(provider);
            }
        }
        for name in non_empty("tts", tts)? {
            if let Some(provider) = keep(self.tts(name, &key(name)), "tts", name, &mut last_error) {
                chains.tts.push(provider);
            }
        }
        if chains.stt.is_empty() || chains.llm.is_empty() || chains.tts.is_empty() {
            return Err(last_error.unwrap_or_else(|| ProviderError::Config {
                provider: "registry",
                message: "a provider chain is empty".into(),
            }));
        }
        Ok(chains)
    }

    /// Stops the Whisper helper; in-flight transcriptions fail.
    pub async fn shutdown(&self) {
        self.whisper.shutdown().await;
    }

    fn stt(&self, name: &str, key: &str) -> Result<Arc<dyn SttProvider>, ProviderError> {
        match name {
            "whisper" => Ok(Arc::new(WhisperStt::new(
                self.whisper.clone(),
                self.whisper_beam,
            ))),
            _ => self.cloud.stt(name, key),
        }
    }

    fn llm(
        &self,
        name: &str,
        agent: &AgentConfig,
        key: &str,
    ) -> Result<Arc<dyn LlmProvider>, ProviderError> {
        match name {
            "scripted" => Ok(Arc::new(ScriptedAgent::new(agent))),
            _ => self.cloud.llm(name, key),
        }
    }

    fn tts(&self, name: &str, key: &str) -> Result<Arc<dyn TtsProvider>, ProviderError> {
        match name {
            "espeak" => Ok(Arc::new(self.espeak.clone())),
            _ => self.cloud.tts(name, key),
        }
    }
}

fn non_empty<'a>(kind: &str, names: &'a [String]) -> Result<&'a [String], ProviderError> {
    if names.is_empty() {
        return Err(ProviderError::Config {
            provider: "registry",
            message: format!("the {kind} chain lists no provider"),
        });
    }
    Ok(names)
}

/// Keeps a built provider, or logs why it could not be built and remembers the error.
fn keep<T>(
    built: Result<T, ProviderError>,
    kind: &str,
    name: &str,
    last_error: &mut Option<ProviderError>,
) -> Option<T> {
    match built {
        Ok(provider) => Some(provider),
        Err(error) => {
            tracing::warn!(kind, provider = name, %error, "provider left out of the chain");
            *last_error = Some(error);
            None
        }
    }
}
