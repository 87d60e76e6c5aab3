//! `serve`: runs the daemon in the foreground on the socket.

use anyhow::Context;
use clap::Args;
use composer_keyd::server::daemon::{self, Options};
use composer_keyd::server::Limits;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Seconds a single keyring or vault call may take before it answers backend-unavailable.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    backend_timeout: u64,
    /// Exit after SECS without connections, when systemd or launchd holds the socket
    /// (it starts the daemon again on the next connection). Ignored otherwise.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_exit: Option<u64>,
}

/// Binds the socket, opens the store and serves until SIGTERM or SIGINT.
pub fn run(args: ServeArgs, socket: PathBuf) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opts = Options {
        socket,
        backend_timeout: Duration::from_secs(args.backend_timeout.max(1)),
        limits: Limits::default(),
        idle_exit: args.idle_exit.map(Duration::from_secs),
    };
    rt.block_on(daemon::serve(opts))?;
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
