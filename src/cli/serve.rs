//! `serve`: runs the daemon in the foreground on the socket.

use anyhow::Context;
use clap::Args;
use composer_keyd::server::daemon::{self, Options};
use composer_keyd::server::timers::Ttl;
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
    /// Lock after this long without a credential release (e.g. 15m, 1h; 0 = never).
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    idle_ttl: Option<Duration>,
    /// Lock this long after unlock, however much it is used (e.g. 8h; 0 = never).
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    max_ttl: Option<Duration>,
}

/// A duration as humantime writes it (`90s`, `15m`, `2h 30m`), or plain seconds.
fn parse_ttl(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .or_else(|_| humantime::parse_duration(s))
        .map_err(|e| format!("{e} (write e.g. 90s, 15m or 2h)"))
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
        ttl: Ttl {
            idle: args.idle_ttl.filter(|d| !d.is_zero()),
            max: args.max_ttl.filter(|d| !d.is_zero()),
        },
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
