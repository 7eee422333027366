use std::process::ExitCode;

use clap::Parser;
use voicegate::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("voicegate: {err}");
            err.exit_code()
        }
    }
}
