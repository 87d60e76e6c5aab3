//! The daemon's life: open the listener and the store, serve until a signal, then flush and clean up.

use super::door::{Grants, Main};
use super::idle::Activity;
use super::intake::{self, IntakeError};
use super::notify::Notifier;
use super::{Limits, Shared};
use crate::agent::policy::Confirm;
use crate::agent::timers::Ttl;
use crate::agent::{Agent, AgentConfig};
use crate::audit::Audit;
use crate::config;
use crate::index::Index;
use crate::paths;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No listening socket could be had.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// No home, or a private directory that is not private.
    #[error(transparent)]
    Path(#[from] paths::PathError),
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// config.toml could not be read.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// No backend could be opened.
    #[error(transparent)]
    Store(#[from] crate::store::open::OpenError),
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What `serve` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to bind when no service manager passes a socket.
    pub socket: PathBuf,
    /// Every bound the daemon enforces.
    pub limits: Limits,
    /// The program that confirms releases of `--confirm` credentials.
    pub askpass: Option<PathBuf>,
    /// Where audit records go and how large the log may grow.
    pub audit: crate::audit::AuditConfig,
    /// The unlock timers (`--idle-ttl`, `--max-ttl`).
    pub ttl: Ttl,
    /// Exit after this long without connections, when a service manager holds the socket.
    pub idle_exit: Option<Duration>,
}

/// Runs the daemon until SIGTERM or SIGINT (or, when socket-activated with `idle_exit`,
/// until it has been idle that long).
pub async fn serve(opts: Options) -> Result<(), StartError> {
    // First, while no other thread exists: both read and clear environment variables.
    let notifier = Notifier::from_env();
    let listener = intake::open(&opts.socket)?;
    let store = crate::store::open::open(opts.limits.backend_timeout).await?;
    let reason = store.reason();
    match store.detail() {
        Some(detail) => tracing::info!(backend = %store.kind(), %detail, "backend: {reason}"),
        None => tracing::info!(backend = %store.kind(), "backend: {reason}"),
    }
    let index_path = paths::index_path()?;
    let index = Index::load(&index_path)?;
    let cfg = AgentConfig {
        index_path,
        // The base bound: each call asks the backend in use then for its own
        // (`BackendKind::call_timeout`), so none is fixed here by the kind at start.
        backend_timeout: opts.limits.backend_timeout,
        backend_reason: reason,
    };
    // Asked at idle time: would a fresh daemon start locked (a vault without its key)?
    let restarts_locked = Arc::clone(&store);
    let confirm = Confirm::new(opts.askpass.clone(), opts.limits.confirm_timeout);
    let (teams, bad) = crate::team::sources::Sources::load();
    for e in bad {
        tracing::warn!("{e}; that team source is left out");
    }
    let agent = Arc::new(
        Agent::over(store, index, cfg)
            .with_audit(open_audit(opts.audit.clone()))
            .with_confirm(confirm)
            .with_teams(teams),
    );
    agent.set_ttl(opts.ttl);
    let timer = spawn_lock_timer(Arc::clone(&agent));
    let shown = listener.path.as_deref().unwrap_or(&opts.socket).display();
    tracing::info!(
        socket = %shown,
        pid = std::process::id(),
        opener = ?listener.opener,
        "composer-keyd {} listening",
        crate::protocol::VERSION
    );
    let idle_exit = match opts.idle_exit {
        Some(d) if listener.activated() => Some(d),
        Some(_) => {
            tracing::info!(
                "--idle-exit applies only when a service manager holds the socket; staying up"
            );
            None
        }
        None => None,
    };
    let activity = Arc::new(Activity::default());
    let shutdown = {
        let agent = Arc::clone(&agent);
        let activity = Arc::clone(&activity);
        let notifier = &notifier;
        async move {
            let why = match idle_exit {
                Some(period) => tokio::select! {
                    () = shutdown_signal() => "stopping on a signal",
                    // A locked daemon stays unless a fresh one would start locked too;
                    // leaving would otherwise undo `lock` (or an unlock timer).
                    () = activity.idle(period, || {
                        !agent.status().locked || restarts_locked.needs_passphrase()
                    }) => {
                        tracing::info!(
                            "idle for {}; exiting until the next connection",
                            humantime::format_duration(period)
                        );
                        "stopping after an idle period"
                    }
                },
                None => {
                    shutdown_signal().await;
                    "stopping on a signal"
                }
            };
            notifier.stopping(why);
        }
    };
    let shared = Shared {
        agent: Arc::clone(&agent),
        limits: Arc::new(opts.limits),
        activity,
    };
    // Another uid reaches credentials only through a grant's own socket: a door of its own.
    let grants = super::grant::start(shared.clone(), opts.socket.clone());
    // A remote machine reaches listed origins only through a forward door's own socket.
    let forwards = super::forward::start(shared.clone(), opts.socket.clone());
    let flusher = spawn_flusher(Arc::clone(&agent));
    notifier.ready(&format!("serving on {shown}"));
    // Start-up is over: its code and read-only data need not stay mapped.
    let unmapped = crate::harden::clean_pages::unmap();
    tracing::debug!(unmapped_kib = unmapped / 1024, "start-up pages unmapped");
    let main = Main::new(grants.clone().map(|g| g as Arc<dyn Grants>))
        .with_forwards(forwards.clone().map(|f| f as Arc<dyn Grants>));
    let stopping = grants.clone();
    let stopping_forwards = forwards.clone();
    let shutdown = async move {
        shutdown.await;
        // Grant and forward doors stop taking connections and drain alongside the main one.
        if let Some(g) = stopping {
            g.stopping();
        }
        if let Some(f) = stopping_forwards {
            f.stopping();
        }
    };
    super::serve(listener.listener, Arc::new(main), shared, shutdown).await;
    flusher.abort();
    timer.abort();
    if let Some(g) = &grants {
        g.stop_all().await;
    }
    if let Some(f) = &forwards {
        f.stop_all().await;
    }
    agent.lock();
    if let Err(e) = agent.flush().await {
        tracing::warn!("could not write last-used times: {e}");
    }
    intake::remove_bound(listener.bound);
    tracing::info!("stopped");
    Ok(())
}

/// Opens the audit log; without it the daemon still serves, and says so.
fn open_audit(cfg: crate::audit::AuditConfig) -> Audit {
    let dir = cfg.dir.clone();
    Audit::open(cfg).unwrap_or_else(|e| {
        tracing::error!("cannot open the audit log in {}: {e}", dir.display());
        Audit::disabled()
    })
}

/// Locks the agent when an unlock timer runs out, until the daemon stops.
fn spawn_lock_timer(agent: Arc<Agent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Take the wake-up before reading the deadline, so an unlock in between is not missed.
            let changed = agent.timer_changed().notified();
            match agent.lock_deadline() {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                            if agent.expire(std::time::Instant::now()) {
                                tracing::info!("an unlock timer ran out: locked, decrypted secrets wiped");
                            }
                        }
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    })
}

/// Writes `last_used` times, and the counts of refusals whose interval ended, once a minute.
fn spawn_flusher(agent: Arc<Agent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            agent.audit().tick();
            if let Err(e) = agent.flush().await {
                tracing::warn!("could not write last-used times: {e}");
            }
        }
    })
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
