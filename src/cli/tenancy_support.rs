//! Helpers shared by the tenant, number, key and migrate subcommands: a runtime, a store,
//! error mapping and output.

use std::future::Future;

use serde::Serialize;

use super::CliError;
use crate::config::Config;
use crate::tenancy::{Store, TenancyError};

/// Runs `command` on a fresh single-threaded runtime.
pub(crate) fn block_on<T>(
    command: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Runtime(anyhow::anyhow!("cannot start the runtime: {err}")))?;
    runtime.block_on(command)
}

/// Opens the configured database for administration and applies pending migrations, as
/// `serve` does on start.
pub(crate) async fn open_store(config: &Config) -> Result<Store, CliError> {
    let store = Store::connect_admin(&config.database, &config.tenancy)
        .await
        .map_err(cli_error)?;
    store.migrate().await.map_err(cli_error)?;
    Ok(store)
}

/// Invalid input, unknown names and conflicts are usage errors (exit code 2); everything else
/// is a runtime failure (exit code 1).
pub(crate) fn cli_error(err: TenancyError) -> CliError {
    match err {
        TenancyError::Invalid { .. }
        | TenancyError::NotFound { .. }
        | TenancyError::Conflict(_) => CliError::Usage(err.to_string()),
        err => CliError::Runtime(anyhow::Error::new(err)),
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| CliError::Runtime(anyhow::anyhow!("cannot format JSON: {err}")))?;
    println!("{text}");
    Ok(())
}

/// Prints rows as left-aligned columns under a header.
pub(crate) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Formats a limit where 0 means none.
pub(crate) fn limit(value: u32) -> String {
    if value == 0 {
        "-".into()
    } else {
        value.to_string()
    }
}
