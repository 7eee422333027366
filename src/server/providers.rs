//! The node's AI providers, as the call layer sees them.

use crate::ai::Registry;
use crate::ai::conversation::ProviderChains;
use crate::ai::provider::ProviderError;
use crate::call::{CallSettings, ProviderSource};
use crate::config::Config;
use crate::tenancy::ProviderKeys;

/// Provider clients shared by every call of the node.
pub struct Providers {
    registry: Registry,
}

impl Providers {
    /// Builds the clients named in the configuration.
    pub fn new(config: &Config) -> Result<Providers, ProviderError> {
        let registry = Registry::new(&config.ai, &config.providers, &config.agent)?;
        Ok(Providers { registry })
    }

    /// Loads the Whisper model before the first call.
    pub async fn warm_up(&self) {
        self.registry.warm_up().await;
    }

    /// Stops the Whisper helper.
    pub async fn shutdown(&self) {
        self.registry.shutdown().await;
    }
}

impl ProviderSource for Providers {
    fn chains(
        &self,
        settings: &CallSettings,
        keys: &ProviderKeys,
    ) -> Result<ProviderChains, ProviderError> {
        self.registry.chains(
            &settings.stt,
            &settings.llm,
            &settings.tts,
            &settings.agent,
            keys,
        )
    }
}
