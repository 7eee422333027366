//! `voicegate migrate`.

use super::CliError;
use super::tenancy_support::{block_on, open_store, print_json};
use crate::config::Config;

/// Applies pending migrations (and creates the default tenant when it is set and missing).
pub fn run(config: &Config, json: bool) -> Result<(), CliError> {
    block_on(async {
        let store = open_store(config).await?;
        if json {
            return print_json(&serde_json::json!({
                "migrated": true,
                "backend": store.backend_name(),
            }));
        }
        println!("{} database is up to date", store.backend_name());
        Ok(())
    })
}
