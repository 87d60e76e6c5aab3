//! The `composer-keyd` binary: parses the command line and runs a subcommand.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // One line that says what failed and, through the error's own text, what to do.
            eprintln!("composer-keyd: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
