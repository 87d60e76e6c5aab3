//! The daemon's life: open the listener and the store, serve until a signal, then flush and clean up.

use super::agent::{Agent, AgentConfig};
use super::idle::Activity;
use super::intake::{self, IntakeError};
use super::notify::Notifier;
use super::{run_with, Limits};
use crate::index::Index;
use crate::paths;
use crate::store::keyring::KeyringStore;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error(transparent)]
    Path(#[from] paths::PathError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `serve` was asked for.
#[derive(Clone, Debug)]
pub struct Options {
    pub socket: PathBuf,
    pub backend_timeout: Duration,
    pub limits: Limits,
    /// Exit after this long without connections, when a service manager holds the socket.
    pub idle_exit: Option<Duration>,
}

/// Runs the daemon until SIGTERM or SIGINT (or, when socket-activated with `idle_exit`,
/// until it has been idle that long).
pub async fn serve(opts: Options) -> Result<(), StartError> {
    // First, while no other thread exists: both read and clear environment variables.
    let notifier = Notifier::from_env();
    let listener = intake::open(&opts.socket)?;
    let (store, reason) = open_store();
    let index_path = paths::index_path()?;
    let index = Index::load(&index_path)?;
    let cfg = AgentConfig {
        index_path,
        backend_timeout: opts.backend_timeout,
        backend_reason: reason,
    };
    let agent = Arc::new(Agent::new(store, index, cfg));
    let shown = listener.path.as_deref().unwrap_or(&opts.socket).display();
    tracing::info!(
        socket = %shown,
        pid = std::process::id(),
        source = ?listener.source,
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
                    // A locked daemon stays: a fresh one would start unlocked.
                    () = activity.idle(period, || !agent.status().locked) => {
                        tracing::info!("idle for {}; exiting until the next connection", humantime::format_duration(period));
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
    let flusher = spawn_flusher(Arc::clone(&agent));
    notifier.ready(&format!("serving on {shown}"));
    run_with(
        listener.listener,
        Arc::clone(&agent),
        opts.limits,
        activity,
        shutdown,
    )
    .await;
    flusher.abort();
    agent.lock();
    if let Err(e) = agent.flush().await {
        tracing::warn!("could not write last-used times: {e}");
    }
    intake::remove_bound(listener.bound);
    tracing::info!("stopped");
    Ok(())
}

/// Picks the backend and says why.
fn open_store() -> (Arc<dyn Store>, String) {
    (Arc::new(KeyringStore::new()), "the OS keyring".into())
}

/// Writes `last_used` times once a minute.
fn spawn_flusher(agent: Arc<Agent>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
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
