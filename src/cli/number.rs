//! `voicegate number add|remove|list`.

use clap::{Args, Subcommand};

use super::CliError;
use super::tenancy_support::{block_on, cli_error, open_store, print_json, print_table};
use crate::config::Config;
use crate::tenancy::PhoneNumber;

/// `voicegate number`.
#[derive(Debug, Args)]
pub struct NumberArgs {
    /// Subcommand to run.
    #[command(subcommand)]
    pub command: NumberCommand,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `voicegate number`.
#[derive(Debug, Subcommand)]
pub enum NumberCommand {
    /// Assign a number to a tenant; a number another tenant owns is rejected.
    Add {
        /// Tenant name.
        tenant: String,
        /// The number: E.164 (`+12025550100`), a `tel:` URI, or a national number with
        /// `--country`.
        number: String,
        /// Country calling code that completes a national number (`1`, `44`).
        #[arg(long, default_value = "")]
        country: String,
    },
    /// Remove a number from its tenant.
    Remove {
        /// The number in E.164.
        number: String,
        /// Remove it only if this tenant owns it.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List numbers.
    List {
        /// Only this tenant's numbers.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Runs `voicegate number ...`.
pub fn run(config: &Config, args: NumberArgs) -> Result<(), CliError> {
    block_on(async {
        let store = open_store(config).await?;
        match args.command {
            NumberCommand::Add {
                tenant,
                number,
                country,
            } => {
                let number = store
                    .add_number(&tenant, &number, &country)
                    .await
                    .map_err(cli_error)?;
                print_one(&number, args.json, "assigned to")
            }
            NumberCommand::Remove { number, tenant } => {
                let number = store
                    .remove_number(tenant.as_deref(), &number)
                    .await
                    .map_err(cli_error)?;
                print_one(&number, args.json, "removed from")
            }
            NumberCommand::List { tenant } => {
                let tenant_id = match tenant {
                    None => None,
                    Some(name) => {
                        let found = store.tenant_by_name(&name).await.map_err(cli_error)?;
                        let found = found
                            .ok_or_else(|| CliError::Usage(format!("tenant `{name}` not found")))?;
                        Some(found.id)
                    }
                };
                let numbers = store.list_numbers(tenant_id).await.map_err(cli_error)?;
                print_list(&numbers, args.json)
            }
        }
    })
}

fn print_one(number: &PhoneNumber, json: bool, action: &str) -> Result<(), CliError> {
    if json {
        return print_json(number);
    }
    println!("{} {action} tenant {}", number.number, number.tenant);
    Ok(())
}

fn print_list(numbers: &[PhoneNumber], json: bool) -> Result<(), CliError> {
    if json {
        return print_json(&numbers);
    }
    let rows: Vec<Vec<String>> = numbers
        .iter()
        .map(|n| {
            vec![
                n.number.clone(),
                n.tenant.clone(),
                n.created_at.to_rfc3339(),
            ]
        })
        .collect();
    print_table(&["NUMBER", "TENANT", "ADDED"], &rows);
    Ok(())
}
