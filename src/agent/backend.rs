//! The agent's operations on the backend itself: `passwd`, and `migrate` (whose steps live in `store::migrate`).

use super::Agent;
use crate::config::{self, BackendChoice};
use crate::error::{Error, Result};
use crate::peer::Peer;
use crate::protocol::{BackendKind, MigrateReply};
use crate::secret::Secret;
use crate::store::migrate::{MigrateError, Migration};
use crate::store::{SecretKey, Store, Which};
use std::sync::Arc;

impl Agent {
    /// Changes the age file's passphrase; it need not be unlocked. `peer` must pass the
    /// strictest policy among the credentials, as for a release.
    pub async fn passwd(
        &self,
        old: Secret<String>,
        new: Secret<String>,
        peer: &Peer,
    ) -> Result<()> {
        let _w = self.writer.lock().await;
        self.guard_all(peer, "change the age file's passphrase")
            .await?;
        self.backend(self.store.change_passphrase(&old, &new)).await
    }

    /// Moves every credential to `to` and makes it the backend in use. `peer` must pass the
    /// strictest policy among the credentials: a vault made with a passphrase of the
    /// caller's choosing releases them all.
    pub async fn migrate(
        &self,
        to: BackendKind,
        passphrase: Option<Secret<String>>,
        peer: &Peer,
    ) -> Result<MigrateReply> {
        if !to.facts().daemon {
            return Err(Error::BadRequest(MigrateError::NotATarget.to_string()));
        }
        let choice = BackendChoice::Backend(to);
        let _w = self.writer.lock().await;
        self.ensure_unlocked()?;
        self.guard_all(peer, &format!("move every credential to the {}", to.name()))
            .await?;
        match config::env_backend() {
            Ok(Some(forced)) if forced != choice => {
                return Err(Error::BadRequest(format!(
                    "the daemon runs with {}={forced}, which would override the migration at its next start; unset it (or set it to {choice}) and restart the daemon first",
                    config::ENV_BACKEND
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(Error::Internal(e.to_string())),
        }
        let config_path = config::path().map_err(config_error)?;
        let keys: Vec<SecretKey> = self
            .inner()
            .index
            .all()
            .into_iter()
            .flat_map(|m| {
                let mut keys = vec![SecretKey::new(
                    &m.origin,
                    m.project.as_deref(),
                    Which::Current,
                )];
                if m.has_previous {
                    keys.push(SecretKey::new(
                        &m.origin,
                        m.project.as_deref(),
                        Which::Previous,
                    ));
                }
                keys
            })
            .collect();
        let migration = Migration {
            active: Arc::clone(&self.store),
            to,
            passphrase,
            config_path,
            keys,
        };
        // A task of its own and no time-out: the copy runs to its end even if the client
        // goes, and every step is rerunnable.
        tokio::spawn(migration.run())
            .await
            .map_err(|e| {
                tracing::error!("the migration panicked: {e}");
                Error::Internal(
                    "the migration failed unexpectedly; nothing was removed, rerun it".into(),
                )
            })?
            .map_err(|e| match e {
                MigrateError::Store(e) => Error::Store(e),
                MigrateError::Config(e) => config_error(e),
                e @ (MigrateError::NoPassphrase(_)
                | MigrateError::NotSwitchable
                | MigrateError::NotATarget) => Error::BadRequest(e.to_string()),
            })
    }
}

/// The daemon's own configuration failed (no config dir, a write that failed): not the
/// backend's fault, nor the request's.
fn config_error(e: config::ConfigError) -> Error {
    Error::Internal(e.to_string())
}
