//! The forward listeners: one socket per door in the forward registry, each served as a [`ForwardDoor`] by the one connection path; `reload` makes them follow the registry (a revoked door's connections end at once), a tick ends doors that expired or whose `ssh` exited.

use super::door::forward::ForwardDoor;
use super::door::{Door, Grants};
use super::listeners::{self, Running};
use super::Shared;
use crate::error::Error;
use crate::forward::{Forward, Registry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often doors are checked for their end (expiry, their `ssh` gone).
const TICK: Duration = Duration::from_secs(1);

/// The running forward listeners, following the registry.
pub struct Manager {
    shared: Shared,
    main_socket: PathBuf,
    registry: PathBuf,
    running: Running<Forward>,
}

/// Starts the doors of the registry and the tick that ends them.
pub fn start(shared: Shared, main_socket: PathBuf) -> Option<Arc<Manager>> {
    let registry = match crate::forward::registry_path() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("forward doors are off: {e}");
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
        tracing::warn!("forward doors: {e}");
    }
    let weak = Arc::downgrade(&m);
    let mut stop = m.running.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Some(m) = weak.upgrade() else { return };
            m.end_the_ended();
        }
    });
    Some(m)
}

impl Grants for Manager {
    /// Stops revoked, changed or ended doors (their connections at once) and starts new ones.
    fn reload(&self) -> Result<usize, Error> {
        let reg = Registry::load(&self.registry).map_err(|e| Error::Internal(e.to_string()))?;
        let now = crate::forward::now();
        let mut running = self.running.lock();
        running.retain(|name, (f, task)| {
            let keep = reg.forwards.contains(f) && f.live(now);
            if !keep {
                task.abort();
                let _ = std::fs::remove_file(crate::forward::socket_path(&self.main_socket, name));
                tracing::info!(forward = %name, "forward door closed");
            }
            keep
        });
        for f in reg.forwards.into_iter().filter(|f| f.live(now)) {
            if running.contains_key(&f.name) {
                continue;
            }
            let listener = self.bind(&f)?;
            let door: Arc<dyn Door> = Arc::new(ForwardDoor::new(f.clone()));
            let task = self.running.spawn(listener, door, self.shared.clone());
            tracing::info!(forward = %f.name, origins = ?f.origins, project = ?f.project, "forward door open");
            running.insert(f.name.clone(), (f, task));
        }
        Ok(running.len())
    }
}

impl Manager {
    /// The door's socket, 0600: only this user's `ssh` connects, and the directory is 0700.
    fn bind(&self, f: &Forward) -> Result<tokio::net::UnixListener, Error> {
        let path = crate::forward::socket_path(&self.main_socket, &f.name);
        listeners::bind(&path, 0o600, "forward socket")
    }

    /// Closes doors that expired or whose owner exited, and drops them from the registry.
    fn end_the_ended(&self) {
        let now = crate::forward::now();
        let ended = {
            let running = self.running.lock();
            running.values().any(|(f, _)| !f.live(now))
        };
        if !ended {
            return;
        }
        if let Err(e) = Registry::update(&self.registry, |reg| Ok(reg.prune(now))) {
            tracing::warn!("forward registry: {e}");
        }
        if let Err(e) = self.reload() {
            tracing::warn!("forward doors: {e}");
        }
    }

    /// Every door stops taking connections and starts draining its open ones.
    pub fn stopping(&self) {
        self.running.stopping();
    }

    /// Stops every door as the main socket stops and removes its socket (at daemon exit).
    pub async fn stop_all(&self) {
        let main = &self.main_socket;
        self.running
            .stop_all(|name| crate::forward::socket_path(main, name))
            .await;
    }
}
