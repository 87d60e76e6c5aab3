//! The grant listeners: one socket per grant in the registry, each served as a [`GrantDoor`] by the one connection path; `reload` makes them follow the registry, `stop_all` drains them at exit.

use super::door::grant::GrantDoor;
use super::door::{Door, Grants};
use super::listeners::{self, Running};
use super::Shared;
use crate::error::Error;
use crate::grant::{Grant, Registry};
use std::path::PathBuf;
use std::sync::Arc;

/// The running grant listeners, following the registry.
pub struct Manager {
    shared: Shared,
    main_socket: PathBuf,
    registry: PathBuf,
    running: Running<Grant>,
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
        running: Running::default(),
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
        let mut running = self.running.lock();
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
            let door: Arc<dyn Door> = Arc::new(GrantDoor::new(g.clone()));
            let task = self.running.spawn(listener, door, self.shared.clone());
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
        listeners::bind(&path, 0o666, "grant socket")
    }

    /// Every grant stops taking connections and starts draining its open ones.
    pub fn stopping(&self) {
        self.running.stopping();
    }

    /// Stops every grant as the main socket stops and removes its socket (at daemon exit).
    pub async fn stop_all(&self) {
        let main = &self.main_socket;
        self.running
            .stop_all(|name| crate::grant::socket_path(main, name))
            .await;
    }
}
