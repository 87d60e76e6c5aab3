//! The daemon's life: open the listener and the store, serve until a signal, then flush and clean up.

use super::agent::{Agent, AgentConfig};
use super::policy::Confirm;
use super::timers::{self, Ttl};
use super::{run, Limits};
use crate::audit::Audit;
use crate::config::{self, BackendChoice, Source};
use crate::index::Index;
use crate::paths;
use crate::store::active::Active;
use crate::store::keyring::KeyringStore;
use crate::store::vault::{self, VaultStore};
use crate::store::Store;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("already running: a daemon answers on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{0} exists and is not a socket; move it away")]
    NotASocket(PathBuf),
    #[error("the socket path {0} has no directory")]
    NoDirectory(PathBuf),
    #[error(transparent)]
    Path(#[from] paths::PathError),
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
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
    pub limits: Limits,
    /// The program that confirms releases of `--confirm` credentials.
    pub askpass: Option<PathBuf>,
    pub audit: crate::audit::AuditConfig,
    /// The unlock timers (`--idle-ttl`, `--max-ttl`).
    pub ttl: Ttl,
}

/// A listener and whether this process created the socket file (and so removes it).
pub struct Listener {
    pub listener: tokio::net::UnixListener,
    /// The socket's inode when we bound it ourselves.
    pub bound: Option<(PathBuf, u64)>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(opts: Options) -> Result<(), StartError> {
    let listener = open_listener(&opts.socket)?;
    let (store, reason) = open_store(opts.limits.backend_timeout).await?;
    // Vault calls are local CPU work (scrypt, plus the pause after a wrong passphrase),
    // not a service that may hang: give them room.
    let backend_timeout = match store.kind() {
        crate::protocol::BackendKind::Vault => opts.limits.backend_timeout.max(VAULT_TIMEOUT),
        _ => opts.limits.backend_timeout,
    };
    tracing::info!(backend = ?store.kind(), "backend: {reason}");
    let index_path = paths::index_path()?;
    let index = Index::load(&index_path)?;
    let cfg = AgentConfig {
        index_path,
        backend_timeout,
        backend_reason: reason,
    };
    let confirm = Confirm::new(opts.askpass.clone(), opts.limits.confirm_timeout);
    let agent = Arc::new(
        Agent::new(store, index, cfg)
            .with_audit(open_audit(opts.audit.clone()))
            .with_confirm(confirm),
    );
    agent.set_ttl(opts.ttl);
    let timer = tokio::spawn(timers::watch(Arc::clone(&agent)));
    tracing::info!(
        socket = %opts.socket.display(),
        pid = std::process::id(),
        "composer-keyd {} listening",
        crate::protocol::VERSION
    );
    let flusher = spawn_flusher(Arc::clone(&agent));
    run(
        listener.listener,
        Arc::clone(&agent),
        opts.limits,
        shutdown_signal(),
    )
    .await;
    flusher.abort();
    timer.abort();
    agent.lock();
    if let Err(e) = agent.flush().await {
        tracing::warn!("could not write last-used times: {e}");
    }
    // Remove the socket only if it is still ours; a newer daemon may have replaced it.
    if let Some((path, ino)) = listener.bound {
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino) {
            let _ = std::fs::remove_file(&path);
        }
    }
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

/// The longest a vault call may take.
const VAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Picks the backend and says why: `COMPOSER_KEYD_BACKEND`, else config.toml, else auto.
/// Auto takes the OS keyring when it answers within `probe_timeout`, else the vault.
async fn open_store(probe_timeout: Duration) -> Result<(Arc<Active>, String), StartError> {
    let (choice, source) = config::backend()?;
    let vault_path = vault::default_path()?;
    let set = match &source {
        Source::Env => format!("{}={choice}", config::ENV_BACKEND),
        Source::File(p) => format!("backend = \"{choice}\" in {}", p.display()),
        Source::Default => "auto, the default".into(),
    };
    let (store, reason): (Arc<dyn Store>, String) = match choice {
        BackendChoice::Keyring => (Arc::new(KeyringStore::new()), set),
        BackendChoice::Vault => (Arc::new(VaultStore::new(vault_path.clone())), set),
        BackendChoice::Auto => match probe_keyring(probe_timeout).await {
            Ok(k) => (Arc::new(k), format!("{set}: the OS keyring answered")),
            Err(why) => (
                Arc::new(VaultStore::new(vault_path.clone())),
                format!("{set}: no OS keyring answered ({why}), so the encrypted vault"),
            ),
        },
    };
    Ok((
        Arc::new(Active::new(store, reason.clone(), vault_path)),
        reason,
    ))
}

/// Connects to the platform store off the async thread, bounded by `limit`.
async fn probe_keyring(limit: Duration) -> Result<KeyringStore, String> {
    let task = tokio::task::spawn_blocking(|| {
        let k = KeyringStore::new();
        k.probe().map(|()| k)
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(k))) => Ok(k),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("the probe failed: {e}")),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

/// Opens the socket: checks its directory, refuses when a live daemon answers,
/// replaces a stale socket, binds it with mode 0600.
pub fn open_listener(socket: &Path) -> Result<Listener, StartError> {
    let io = |what, source| StartError::Io {
        what,
        path: socket.to_path_buf(),
        source,
    };
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| StartError::NoDirectory(socket.to_path_buf()))?;
    paths::prepare_socket_dir(dir)?;
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(StartError::AlreadyRunning(socket.to_path_buf()));
            }
            std::fs::remove_file(socket).map_err(|e| io("removing the stale socket", e))?;
        }
        Ok(_) => return Err(StartError::NotASocket(socket.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("checking", e)),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("setting the mode of", e))?;
    let ino = std::fs::metadata(socket)
        .map_err(|e| io("checking", e))?
        .ino();
    Ok(Listener {
        listener,
        bound: Some((socket.to_path_buf(), ino)),
    })
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
