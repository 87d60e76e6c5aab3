//! The grant listeners: one socket per grant in the registry, each served as a [`GrantDoor`] by the one connection path; `reload` makes them follow the registry, `stop_all` drains them at exit.

use super::door::grant::GrantDoor;
use super::door::{Door, Grants};
use super::{serve, Shared};
use crate::error::Error;
use crate::grant::{Grant, Registry};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running grant listeners, following the registry.
pub struct Manager {
    shared: Shared,
    main_socket: PathBuf,
    registry: PathBuf,
    running: Mutex<HashMap<String, (Grant, JoinHandle<()>)>>,
    /// Set at exit: every listener stops accepting and drains as the main socket does.
    stop: watch::Sender<bool>,
}

/// Starts the grants of the registry; later changes arrive through [`Grants::reload`].
pub fn start(shared: Shared, main_socket: PathBuf) -> Option<Arc<Manager>> {
    let registry = match crate::grant::registry_path() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("grants are off: {e}");
            return None;
        }
    };
    let m = Arc::new(Manager {
        shared,
        main_socket,
        registry,
        running: Mutex::default(),
        stop: watch::Sender::new(false),
    });
    if let Err(e) = m.reload() {
        tracing::warn!("grants: {e}");
    }
    Some(m)
}

impl Grants for Manager {
    /// Stops revoked or changed grants, their open connections at once (the listener's
    /// task owns them), and starts new ones.
    fn reload(&self) -> Result<usize, Error> {
        let reg = Registry::load(&self.registry).map_err(|e| Error::Internal(e.to_string()))?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|name, (g, task)| {
            let keep = reg.grants.contains(g);
            if !keep {
                task.abort();
                let _ = std::fs::remove_file(crate::grant::socket_path(&self.main_socket, name));
                tracing::info!(grant = %name, "grant stopped");
            }
            keep
        });
        for g in reg.grants {
            if running.contains_key(&g.name) {
                continue;
            }
            let listener = self.bind(&g)?;
            let mut stop = self.stop.subscribe();
            let door: Arc<dyn Door> = Arc::new(GrantDoor::new(g.clone()));
            let task = tokio::spawn(serve(listener, door, self.shared.clone(), async move {
                // A dropped sender stops it too.
                let _ = stop.wait_for(|s| *s).await;
            }));
            tracing::info!(grant = %g.name, uid = g.uid, project = %g.project.display(), "grant serving");
            running.insert(g.name.clone(), (g, task));
        }
        Ok(running.len())
    }
}

impl Manager {
    /// The grant's socket, reachable by anyone who can reach the file: the 0700 directory
    /// keeps host processes out of the path, a bind mount lets the container in, and the
    /// door admits only the granted uid from another mount namespace.
    fn bind(&self, g: &Grant) -> Result<tokio::net::UnixListener, Error> {
        let path = crate::grant::socket_path(&self.main_socket, &g.name);
        let fail =
            |e: std::io::Error| Error::Internal(format!("grant socket {}: {e}", path.display()));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
            _ => {}
        }
        let std_listener = std::os::unix::net::UnixListener::bind(&path).map_err(fail)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
        std_listener.set_nonblocking(true).map_err(fail)?;
        tokio::net::UnixListener::from_std(std_listener).map_err(fail)
    }

    /// Every grant stops taking connections and starts draining its open ones.
    pub fn stopping(&self) {
        self.stop.send_replace(true);
    }

    /// Stops every grant as the main socket stops (no new connections, open ones drained
    /// within the drain time-out) and removes its socket (at daemon exit).
    pub async fn stop_all(&self) {
        self.stop.send_replace(true);
        let all: Vec<_> = {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            running.drain().collect()
        };
        for (name, (_, task)) in all {
            let _ = task.await; // a listener that panicked has stopped too
            let _ = std::fs::remove_file(crate::grant::socket_path(&self.main_socket, &name));
        }
    }
}
