//! The node's AI providers, as the call layer sees them.

use crate::ai::conversation::ProviderChains;
use crate::ai::provider::ProviderError;
use crate::call::{CallSettings, ProviderSource};
use crate::config::Config;
use crate::tenancy::ProviderKeys;

/// Provider clients shared by every call of the node.
pub struct Providers {
    _config: (),
}

impl Providers {
    /// Builds the clients named in the configuration.
    pub fn new(_config: &Config) -> Result<Providers, ProviderError> {
        Ok(Providers { _config: () })
    }

    /// Loads models and starts helper processes before the first call.
    pub async fn warm_up(&self) {}

    /// Stops helper processes.
    pub async fn shutdown(&self) {}
}

impl ProviderSource for Providers {
    fn chains(
        &self,
        _settings: &CallSettings,
        _keys: &ProviderKeys,
    ) -> Result<ProviderChains, ProviderError> {
        Ok(ProviderChains::default())
    }
}
