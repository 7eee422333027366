//! `voicegate tenant add|list|show|suspend|resume`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use super::tenancy_support::{block_on, cli_error, limit, open_store, print_json, print_table};
use crate::config::Config;
use crate::tenancy::{NewTenant, Tenant, TenantLimits, TenantSettings, TenantStatus};

/// `voicegate tenant`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// Subcommand to run.
    #[command(subcommand)]
    pub command: TenantCommand,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Subcommands of `voicegate tenant`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Add(TenantAddArgs),
    /// List every tenant.
    List,
    /// Show one tenant with its settings.
    Show {
        /// Tenant name.
        name: String,
    },
    /// Reject the tenant's calls with 403 and its API keys with 403.
    Suspend {
        /// Tenant name.
        name: String,
    },
    /// Take the tenant's calls again.
    Resume {
        /// Tenant name.
        name: String,
    },
}

/// Arguments of `voicegate tenant add`.
#[derive(Debug, Args)]
pub struct TenantAddArgs {
    /// Unique name: lowercase letters, digits, `-` or `_`, starting with a letter.
    pub name: String,
    /// Plan name for billing.
    #[arg(long, default_value = "")]
    pub plan: String,
    /// Calls up at the same time across all nodes; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub max_calls: u32,
    /// Calls per calendar month (UTC); 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub monthly_calls: u32,
    /// Billed minutes per calendar month (UTC); 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub monthly_minutes: u32,
    /// JSON file with the tenant's settings (greeting, prompt, voice, providers, ...).
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
}

/// Runs `voicegate tenant ...`.
pub fn run(config: &Config, args: TenantArgs) -> Result<(), CliError> {
    block_on(async {
        let store = open_store(config).await?;
        let json = args.json;
        match args.command {
            TenantCommand::Add(add) => {
                let new = new_tenant(add)?;
                let tenant = store.create_tenant(new).await.map_err(cli_error)?;
                print_tenant(&tenant, json, "created")
            }
            TenantCommand::List => {
                let tenants = store.list_tenants().await.map_err(cli_error)?;
                print_list(&tenants, json)
            }
            TenantCommand::Show { name } => {
                let tenant = store.tenant_by_name(&name).await.map_err(cli_error)?;
                let tenant =
                    tenant.ok_or_else(|| CliError::Usage(format!("tenant `{name}` not found")))?;
                print_tenant(&tenant, json, "")
            }
            TenantCommand::Suspend { name } => {
                let tenant = store
                    .set_tenant_status(&name, TenantStatus::Suspended)
                    .await
                    .map_err(cli_error)?;
                print_tenant(&tenant, json, "suspended")
            }
            TenantCommand::Resume { name } => {
                let tenant = store
                    .set_tenant_status(&name, TenantStatus::Active)
                    .await
                    .map_err(cli_error)?;
                print_tenant(&tenant, json, "resumed")
            }
        }
    })
}

fn new_tenant(add: TenantAddArgs) -> Result<NewTenant, CliError> {
    let settings = match &add.settings {
        None => TenantSettings::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| {
                CliError::Usage(format!(
                    "cannot read settings file {}: {err}",
                    path.display()
                ))
            })?;
            let mut deserializer = serde_json::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                CliError::Usage(format!(
                    "invalid settings file {}: {} at {}",
                    path.display(),
                    err.inner(),
                    err.path()
                ))
            })?
        }
    };
    Ok(NewTenant {
        name: add.name,
        plan: add.plan,
        limits: TenantLimits {
            max_concurrent_calls: add.max_calls,
            monthly_calls: add.monthly_calls,
            monthly_minutes: add.monthly_minutes,
        },
        settings,
        ..NewTenant::default()
    })
}

fn print_tenant(tenant: &Tenant, json: bool, action: &str) -> Result<(), CliError> {
    if json {
        return print_json(&tenant.view());
    }
    if !action.is_empty() {
        println!("tenant {} {action}", tenant.name);
    }
    println!("id:              {}", tenant.id);
    println!("name:            {}", tenant.name);
    println!("plan:            {}", tenant.plan);
    println!("status:          {}", tenant.status.as_str());
    println!(
        "max calls:       {}",
        limit(tenant.limits.max_concurrent_calls)
    );
    println!("monthly calls:   {}", limit(tenant.limits.monthly_calls));
    println!("monthly minutes: {}", limit(tenant.limits.monthly_minutes));
    let settings = serde_json::to_string(&tenant.settings).unwrap_or_default();
    println!("settings:        {settings}");
    println!(
        "provider keys:   {}",
        tenant.provider_keys.providers().join(", ")
    );
    Ok(())
}

fn print_list(tenants: &[Tenant], json: bool) -> Result<(), CliError> {
    if json {
        let views: Vec<_> = tenants.iter().map(Tenant::view).collect();
        return print_json(&views);
    }
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.status.as_str().to_string(),
                t.plan.clone(),
                limit(t.limits.max_concurrent_calls),
                limit(t.limits.monthly_calls),
                limit(t.limits.monthly_minutes),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATUS",
        "PLAN",
        "MAX CALLS",
        "MONTHLY CALLS",
        "MONTHLY MINUTES",
    ];
    print_table(&header, &rows);
    Ok(())
}
