//! Command-line interface: argument definitions and the entry point of each subcommand.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration.

mod call;
mod key;
mod migrate;
mod number;
mod tenancy_support;
mod tenant;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

pub use call::{CallArgs, CallerArgs, CodecArg, LoadtestArgs, TransportArg};
pub use key::{KeyArgs, KeyCommand};
pub use number::{NumberArgs, NumberCommand};
pub use tenant::{TenantAddArgs, TenantArgs, TenantCommand};

/// A failure that ends a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid arguments or configuration; exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Something failed while running; exit code 1.
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl CliError {
    /// Process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl From<crate::config::ConfigError> for CliError {
    fn from(err: crate::config::ConfigError) -> Self {
        CliError::Usage(err.to_string())
    }
}

/// voicegate: a SIP/RTP media server with a built-in AI voice loop.
#[derive(Debug, Parser)]
#[command(name = "voicegate", version, about)]
pub struct Cli {
    /// Configuration file (TOML); settings not in it keep their defaults, and
    /// VOICEGATE_<SECTION>_<KEY> variables override both.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: SIP, media, AI loop and HTTP API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage tenants.
    Tenant(TenantArgs),
    /// Manage tenants' phone numbers.
    Number(NumberArgs),
    /// Manage tenants' API keys.
    Key(KeyArgs),
    /// Place one test call: play a WAV as the caller, record what it hears, report timings.
    Call(CallArgs),
    /// Place many test calls at once and summarise setup times, failures, loss and jitter.
    Loadtest(LoadtestArgs),
}

impl Cli {
    /// Loads the configuration named by `--config`, or the defaults.
    pub fn load_config(&self) -> Result<Config, CliError> {
        Ok(Config::load(self.config.as_deref())?)
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let mut config = cli.load_config()?;
    if matches!(cli.command, Command::Call(_) | Command::Loadtest(_)) {
        // The test caller prints a report; lifecycle logs of its own SIP stack would bury it.
        config.log.level = "warn".into();
    }
    crate::observability::init_logging(&config.log);
    match cli.command {
        Command::Serve => serve(config),
        Command::Migrate { json } => migrate::run(&config, json),
        Command::Tenant(args) => tenant::run(&config, args),
        Command::Number(args) => number::run(&config, args),
        Command::Key(args) => key::run(&config, args),
        Command::Call(args) => call::run_call(args),
        Command::Loadtest(args) => call::run_loadtest(args),
    }
}

/// Runs the server on a multi-threaded runtime until SIGTERM or SIGINT.
fn serve(config: Config) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("voicegate")
        .build()
        .map_err(|error| CliError::Runtime(anyhow::anyhow!("starting the runtime: {error}")))?;
    runtime.block_on(crate::server::run(config))?;
    Ok(())
}
