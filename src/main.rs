//! The `composer-keyd` binary: parses the command line and runs a subcommand.

mod cli;

use clap::Parser;
use std::process::ExitCode;

// Every heap block is wiped when freed, so the copies of secrets in buffers we do not own
// (hyper's, zbus's, serde's) do not outlive their use.
#[global_allocator]
static ALLOC: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

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
