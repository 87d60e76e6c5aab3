//! What the grant and forward listeners share: binding a door's own socket beside the main one, and the set of running listeners that follows a registry, stops taking connections at exit and drains.

use super::door::Door;
use super::{serve, Shared};
use crate::error::Error;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Binds a door's socket at `path` with `mode`, replacing a socket a previous daemon left
/// there; `what` names it in errors ("grant socket").
pub fn bind(path: &Path, mode: u32, what: &str) -> Result<tokio::net::UnixListener, Error> {
    let fail = |e: std::io::Error| Error::Internal(format!("{what} {}: {e}", path.display()));
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
    std_listener.set_nonblocking(true).map_err(fail)?;
    tokio::net::UnixListener::from_std(std_listener).map_err(fail)
}

/// The running listeners of one kind of door, by name, each with the registry entry it
/// serves; one stop signal for all of them.
pub struct Running<T> {
    tasks: Mutex<HashMap<String, (T, JoinHandle<()>)>>,
    /// Set at exit: every listener stops accepting and drains as the main socket does.
    stop: watch::Sender<bool>,
}

impl<T> Default for Running<T> {
    fn default() -> Self {
        Running {
            tasks: Mutex::default(),
            stop: watch::Sender::new(false),
        }
    }
}

impl<T> Running<T> {
    /// The listeners, to follow a registry.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, (T, JoinHandle<()>)>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `listener` as `door` on the one connection path until the stop signal.
    pub fn spawn(
        &self,
        listener: tokio::net::UnixListener,
        door: Arc<dyn Door>,
        shared: Shared,
    ) -> JoinHandle<()> {
        let mut stop = self.stop.subscribe();
        tokio::spawn(serve(listener, door, shared, async move {
            // A dropped sender stops it too.
            let _ = stop.wait_for(|s| *s).await;
        }))
    }

    /// A receiver of the stop signal, for a task beside the listeners.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Every listener stops taking connections and starts draining its open ones.
    pub fn stopping(&self) {
        self.stop.send_replace(true);
    }

    /// Stops every listener as the main socket stops (no new connections, open ones drained
    /// within the drain time-out) and removes its socket, named by `socket` (at daemon exit).
    pub async fn stop_all(&self, socket: impl Fn(&str) -> PathBuf) {
        self.stop.send_replace(true);
        let all: Vec<_> = self.lock().drain().collect();
        for (name, (_, task)) in all {
            let _ = task.await; // a listener that panicked has stopped too
            let _ = std::fs::remove_file(socket(&name));
        }
    }
}
