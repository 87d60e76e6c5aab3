//! Operations on the backend itself: `passwd` and `migrate`.
//!
//! Migration runs inside the daemon, the store's only writer, holding the write lock
//! throughout, in three steps that each leave a state a rerun completes:
//!
//! 1. copy every secret the index lists to the target and read each back (the source
//!    stays the one in use; a crash here leaves extra copies in the target, which the
//!    rerun overwrites);
//! 2. switch: write `backend = "..."` to config.toml atomically and swap the store in
//!    memory (a crash before the write leaves the source in use, one after it the
//!    target, which already holds everything);
//! 3. delete from the source only what the target holds byte for byte (a crash here
//!    leaves copies in the source; rerunning `migrate --to` the backend already in use
//!    does only this step).

use super::Agent;
use crate::config::{self, BackendChoice};
use crate::error::{Error, Result};
use crate::protocol::{BackendKind, MigrateReply};
use crate::secret::Secret;
use crate::server::peer::Peer;
use crate::store::active::Active;
use crate::store::keyring::KeyringStore;
use crate::store::vault::VaultStore;
use crate::store::{Slot, SlotKey, Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

impl Agent {
    /// Changes the vault's passphrase; the vault need not be unlocked. `peer` must pass the
    /// strictest policy among the credentials, as for a release.
    pub async fn passwd(
        &self,
        old: Secret<String>,
        new: Secret<String>,
        peer: &Peer,
    ) -> Result<()> {
        let _w = self.writer.lock().await;
        self.guard_all(peer, "change the vault's passphrase")
            .await?;
        self.backend(move |s| s.change_passphrase(&old, &new)).await
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
        let choice = match to {
            BackendKind::Keyring => BackendChoice::Keyring,
            BackendKind::Vault => BackendChoice::Vault,
            _ => {
                return Err(Error::BadRequest(
                    "migrate goes to \"keyring\" or \"vault\"".into(),
                ))
            }
        };
        let _w = self.writer.lock().await;
        self.ensure_unlocked()?;
        self.guard_all(peer, &format!("move every credential to the {choice}"))
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
        let slots: Vec<SlotKey> = self
            .inner()
            .index
            .all()
            .into_iter()
            .flat_map(|m| {
                let mut keys = vec![SlotKey::new(&m.origin, m.project.as_deref(), Slot::Current)];
                if m.has_previous {
                    keys.push(SlotKey::new(
                        &m.origin,
                        m.project.as_deref(),
                        Slot::Previous,
                    ));
                }
                keys
            })
            .collect();
        let store = Arc::clone(&self.store);
        // No time-out: the write lock must be held until the copy has really ended.
        tokio::task::spawn_blocking(move || {
            let active = store.as_active().ok_or_else(|| {
                Error::BadRequest("this daemon's store cannot be migrated".into())
            })?;
            Migration {
                active,
                to,
                choice,
                passphrase,
                config_path,
                slots,
            }
            .run()
        })
        .await
        .map_err(|e| {
            tracing::error!("the migration panicked: {e}");
            Error::Internal(
                "the migration failed unexpectedly; nothing was removed, rerun it".into(),
            )
        })?
    }
}

struct Migration<'a> {
    active: &'a Active,
    to: BackendKind,
    choice: BackendChoice,
    passphrase: Option<Secret<String>>,
    config_path: PathBuf,
    slots: Vec<SlotKey>,
}

impl Migration<'_> {
    fn run(self) -> Result<MigrateReply> {
        let from = self.active.kind();
        let mut reply = MigrateReply {
            from,
            to: self.to,
            copied: 0,
            removed: 0,
            kept: 0,
            missing: 0,
            note: None,
        };
        let (source, target) = if from != self.to {
            let source = self.active.current();
            let target = self.open_target()?;
            self.copy(source.as_ref(), target.as_ref(), &mut reply)?;
            config::set_backend(&self.config_path, self.choice).map_err(config_error)?;
            self.active.replace(
                Arc::clone(&target),
                format!(
                    "migrated: backend = \"{}\" in {}",
                    self.choice,
                    self.config_path.display()
                ),
            );
            tracing::info!(to = %self.choice, "switched backend");
            (source, target)
        } else {
            let Some(source) = self.open_leftover(&mut reply)? else {
                return Ok(reply);
            };
            (source, self.active.current())
        };
        self.clean(source.as_ref(), target.as_ref(), &mut reply)?;
        // The old store's decrypted copy is no longer needed.
        source.lock();
        Ok(reply)
    }

    fn vault(&self) -> VaultStore {
        VaultStore::new(self.active.vault_path().to_path_buf())
    }

    fn passphrase(&self) -> Result<&Secret<String>> {
        self.passphrase
            .as_ref()
            .ok_or_else(|| Error::BadRequest("the vault's passphrase is needed to migrate".into()))
    }

    /// The target, unlocked; a vault that does not exist yet is created with the passphrase.
    fn open_target(&self) -> Result<Arc<dyn Store>> {
        match self.to {
            BackendKind::Vault => {
                let v = self.vault();
                v.unlock(Some(self.passphrase()?))?;
                Ok(Arc::new(v))
            }
            _ => {
                let k = KeyringStore::new();
                k.probe()?;
                Ok(Arc::new(k))
            }
        }
    }

    /// The backend a finished or interrupted migration left copies in, if it can be opened.
    fn open_leftover(&self, reply: &mut MigrateReply) -> Result<Option<Arc<dyn Store>>> {
        match self.to {
            BackendKind::Keyring => {
                let v = self.vault();
                if !v.exists() {
                    reply.note =
                        Some("already on the keyring; there is no vault to clean up".into());
                    return Ok(None);
                }
                v.unlock(Some(self.passphrase()?))?;
                reply.from = BackendKind::Vault;
                Ok(Some(Arc::new(v)))
            }
            _ => {
                let k = KeyringStore::new();
                if let Err(e) = k.probe() {
                    reply.note = Some(format!(
                        "already on the vault; the keyring is not reachable ({e}), so copies left there were not cleaned up"
                    ));
                    return Ok(None);
                }
                reply.from = BackendKind::Keyring;
                Ok(Some(Arc::new(k)))
            }
        }
    }

    /// Step 1: copies every listed secret and reads each back from the target.
    fn copy(&self, source: &dyn Store, target: &dyn Store, reply: &mut MigrateReply) -> Result<()> {
        let mut items = Vec::with_capacity(self.slots.len());
        for k in &self.slots {
            match source.get(k)? {
                Some(v) => items.push((k.clone(), v)),
                None => reply.missing += 1,
            }
        }
        target.set_many(&items)?;
        // The vault is read back from disk, not from the memory that wrote it.
        let fresh;
        let reader: &dyn Store = if self.to == BackendKind::Vault {
            fresh = self.vault();
            fresh.unlock(Some(self.passphrase()?))?;
            &fresh
        } else {
            target
        };
        for (k, v) in &items {
            if reader.get(k)?.as_ref() != Some(v) {
                return Err(StoreError::Corrupt(format!(
                    "{} did not read back the same from the {}; nothing was switched or removed",
                    k.account(),
                    self.choice
                ))
                .into());
            }
        }
        reply.copied = items.len();
        Ok(())
    }

    /// Step 3: removes from the source what the target holds identically.
    fn clean(
        &self,
        source: &dyn Store,
        target: &dyn Store,
        reply: &mut MigrateReply,
    ) -> Result<()> {
        let mut gone = Vec::new();
        for k in &self.slots {
            let Some(s) = source.get(k)? else { continue };
            if target.get(k)?.as_ref() == Some(&s) {
                gone.push(k.clone());
            } else {
                reply.kept += 1;
            }
        }
        source.delete_many(&gone)?;
        reply.removed = gone.len();
        Ok(())
    }
}

/// The daemon's own configuration failed (no config dir, a write that failed): not the
/// backend's fault, nor the request's.
fn config_error(e: config::ConfigError) -> Error {
    Error::Internal(e.to_string())
}
