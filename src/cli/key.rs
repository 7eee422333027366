//! `voicegate key create|revoke`.

use clap::{Args, Subcommand};

use super::CliError;
use super::tenancy_support::{block_on, cli_error, open_store, print_json};
use crate::config::Config;

/// `voicegate key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Subcommand to run.
    #[command(subcommand)]
    pub command: KeyCommand,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `voicegate key`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a tenant; the key is printed once and cannot be shown again.
    Create {
        /// Tenant name.
        tenant: String,
        /// A label for the key.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke an API key.
    Revoke {
        /// Key id or prefix (`vg_1a2b3c4d5e6f`).
        key: String,
        /// Revoke it only if this tenant owns it.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Runs `voicegate key ...`.
pub fn run(config: &Config, args: KeyArgs) -> Result<(), CliError> {
    block_on(async {
        let store = open_store(config).await?;
        match args.command {
            KeyCommand::Create { tenant, name } => {
                let created = store.create_key(&tenant, &name).await.map_err(cli_error)?;
                if args.json {
                    return print_json(&created);
                }
                println!("{}", created.key);
                eprintln!(
                    "created key {} (id {}) for tenant {tenant}; store it now, it cannot be shown again",
                    created.info.prefix, created.info.id
                );
                Ok(())
            }
            KeyCommand::Revoke { key, tenant } => {
                let info = store
                    .revoke_key(tenant.as_deref(), &key)
                    .await
                    .map_err(cli_error)?;
                if args.json {
                    return print_json(&info);
                }
                println!("key {} (id {}) revoked", info.prefix, info.id);
                Ok(())
            }
        }
    })
}
