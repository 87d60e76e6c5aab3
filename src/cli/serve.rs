//! `serve`: runs the daemon in the foreground on the socket.

use anyhow::Context;
use clap::Args;
use composer_keyd::agent::timers::Ttl;
use composer_keyd::server::daemon::{self, Options};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    limits: super::limits::LimitArgs,
    /// Exit after SECS without connections, when systemd or launchd holds the socket
    /// (it starts the daemon again on the next connection). Ignored otherwise.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_exit: Option<u64>,
    /// Lock after this long without a credential release (e.g. 15m, 1h; 0 = never).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse)]
    idle_ttl: Option<Duration>,
    /// Lock this long after unlock, however much it is used (e.g. 8h; 0 = never).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse)]
    max_ttl: Option<Duration>,
}

/// Hardens the process, binds the socket, opens the store and serves until SIGTERM or SIGINT.
pub fn run(args: ServeArgs, socket: PathBuf) -> anyhow::Result<()> {
    init_logging();
    refuse_unsafe_dirs()?;
    // First, before any secret is read and before the runtime's threads exist.
    let hardened = composer_keyd::harden::harden_process();
    let mut limits = args.limits.limits();
    limits.fit_open_files(hardened.open_files);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Keyring calls run here; a few threads serve them all, and a hung backend cannot
        // pile up hundreds of thread stacks.
        .max_blocking_threads(16)
        // They come in short runs (an unlock, a store); an idle daemon keeps no thread
        // waiting for the next one.
        .thread_keep_alive(Duration::from_secs(2))
        .build()
        .context("starting the async runtime")?;
    let opts = Options {
        socket,
        limits,
        askpass: args.limits.askpass(),
        audit: args.limits.audit(composer_keyd::paths::state_dir()?),
        idle_exit: args.idle_exit.map(Duration::from_secs),
        ttl: Ttl {
            idle: args.idle_ttl.filter(|d| !d.is_zero()),
            max: args.max_ttl.filter(|d| !d.is_zero()),
        },
    };
    rt.block_on(async {
        tokio::spawn(composer_keyd::harden::trim_after_bursts());
        daemon::serve(opts).await
    })?;
    Ok(())
}

/// The daemon reads the index, the vault and its config from these directories and writes
/// the audit log there: one another user could write to would let them change what it
/// serves or read, so it does not start.
fn refuse_unsafe_dirs() -> anyhow::Result<()> {
    let bad = composer_keyd::paths::unsafe_private_dirs()?;
    if let Some((_, first)) = bad.first() {
        for (_, e) in &bad[1..] {
            tracing::error!("{e}");
        }
        anyhow::bail!("{first} (`composer-keyd doctor` lists every directory it checks)");
    }
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd, journald stamps each line itself. Colours only on a terminal (and
    // never with NO_COLOR), so log files and the journal hold plain text.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour && !journal);
    let _ = if journal {
        fmt.without_time().try_init()
    } else {
        fmt.try_init()
    }; // a second init (tests) keeps the first subscriber
}
