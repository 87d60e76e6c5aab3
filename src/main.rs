//! The `composer-keyd` binary: parses the command line and runs a subcommand.

mod cli;

use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

// Every heap block is wiped when freed, so the copies of secrets in buffers we do not own
// (hyper's, zbus's, serde's) do not outlive their use. The cached secrets go to the small
// locked arena instead of the heap (secret::in_locked_arena).
#[global_allocator]
static ALLOC: composer_keyd::secret::LockedAlloc<zeroizing_alloc::ZeroAlloc<std::alloc::System>> =
    composer_keyd::secret::LockedAlloc(zeroizing_alloc::ZeroAlloc(std::alloc::System));

/// Set when `print!` found stdout closed by its reader (`composer-keyd list | head -1`).
static READER_GONE: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    quiet_when_reader_goes();
    let args = cli::Cli::parse();
    // Unwinding (rather than exiting on the spot) drops, and so wipes, what the command held.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli::run(args))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            // One line that says what failed and, through the error's own text, what to do.
            eprintln!("composer-keyd: error: {e:#}");
            ExitCode::from(1)
        }
        // Nobody reads the rest of the output: end quietly and successfully, as `head`'s
        // writer should (coreutils die of SIGPIPE; Rust ignores it and `print!` panics).
        Err(_) if READER_GONE.load(Ordering::SeqCst) => ExitCode::SUCCESS,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Keeps the panic that `print!` raises on a closed stdout from printing a message; every
/// other panic reports as usual.
fn quiet_when_reader_goes() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_stdout(info.payload()) {
            READER_GONE.store(true, Ordering::SeqCst);
        } else {
            report(info);
        }
    }));
}

/// Whether a panic is std's "failed printing to stdout" for EPIPE.
fn is_closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let msg = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
    msg.starts_with("failed printing to stdout") && msg.ends_with(&epipe)
}
