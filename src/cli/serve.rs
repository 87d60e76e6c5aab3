//! `serve`: runs the daemon in the foreground on the socket.

use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::index::Index;
use composer_keyd::paths;
use composer_keyd::server::agent::{Agent, AgentConfig};
use composer_keyd::server::{self, Limits};
use composer_keyd::store::keyring::KeyringStore;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Seconds a single keyring or vault call may take before it answers backend-unavailable.
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    backend_timeout: u64,
}

/// Binds the socket, opens the store and serves until SIGTERM or SIGINT.
pub fn run(args: ServeArgs, socket: PathBuf) -> anyhow::Result<()> {
    init_logging();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(args, socket))
}

async fn serve(args: ServeArgs, socket: PathBuf) -> anyhow::Result<()> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .context("the socket path has no directory")?;
    paths::prepare_socket_dir(dir)?;
    let listener = bind(&socket)?;
    let ino = std::fs::metadata(&socket)?.ino();

    let index_path = paths::index_path()?;
    let index = Index::load(&index_path)?;
    let store = Arc::new(KeyringStore::new());
    let cfg = AgentConfig {
        index_path,
        backend_timeout: Duration::from_secs(args.backend_timeout.max(1)),
        backend_reason: "the OS keyring".into(),
    };
    let agent = Arc::new(Agent::new(store, index, cfg));
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "composer-keyd {} listening", composer_keyd::protocol::VERSION);

    let flusher = {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = agent.flush().await {
                    tracing::warn!("could not write last-used times: {e}");
                }
            }
        })
    };
    server::run(
        listener,
        Arc::clone(&agent),
        Limits::default(),
        shutdown_signal(),
    )
    .await;
    flusher.abort();
    agent.lock();
    if let Err(e) = agent.flush().await {
        tracing::warn!("could not write last-used times: {e}");
    }
    // Remove the socket only if it is still ours; a newer daemon may have replaced it.
    if std::fs::metadata(&socket).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(&socket);
    }
    tracing::info!("stopped");
    Ok(())
}

/// Binds the socket, refusing when a live daemon answers and replacing a stale socket.
fn bind(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                bail!("already running: a daemon answers on {}", socket.display());
            }
            std::fs::remove_file(socket)
                .with_context(|| format!("removing the stale socket {}", socket.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a socket; move it away",
            socket.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", socket.display())),
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", socket.display()))?;
    Ok(listener)
}

async fn shutdown_signal() {
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
