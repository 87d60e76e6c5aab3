//! `migrate`: moving every secret from the backend in use to another, over the daemon's switchable store. Backends are opened and found through the seam (`backend.rs`); nothing here names one.
//!
//! It runs inside the daemon, the store's only writer, holding the write lock
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

use super::backend::{self, Leftover, Places, Unlock};
use super::switchable::Switchable;
use super::{SecretKey, Store, StoreError};
use crate::config::{self, BackendChoice};
use crate::protocol::{BackendKind, MigrateReply};
use crate::secret::Secret;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a migration stopped. Nothing was removed from the source unless the target held it.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The source or the target backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// config.toml could not be written: the daemon's fault, not the backend's.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A backend to open needs a passphrase, and none was given.
    #[error("the {0}'s passphrase is needed to migrate")]
    NoPassphrase(&'static str),
    /// The daemon has no places for backends, so it cannot swap its store (a test's memory store).
    #[error("this daemon's store cannot be migrated")]
    NotSwitchable,
    /// The target is not a backend the daemon can run on.
    #[error("migrate goes to {}", names())]
    NotATarget,
}

fn names() -> String {
    let names: Vec<String> = BackendKind::daemon_kinds()
        .map(|k| format!("\"{k}\""))
        .collect();
    names.join(" or ")
}

/// One migration of every listed secret to `to`, over the daemon's switchable store.
pub struct Migration {
    /// The daemon's store, swapped for the target once every secret is copied.
    pub active: Arc<Switchable>,
    /// The backend to move every secret to.
    pub to: BackendKind,
    /// The passphrase of a backend that needs one, when it is the target or must be opened to
    /// clean up.
    pub passphrase: Option<Secret<String>>,
    /// config.toml, where the switch is recorded.
    pub config_path: PathBuf,
    /// Every secret the index lists.
    pub keys: Vec<SecretKey>,
}

impl Migration {
    /// Runs the three steps; a rerun after a crash at any point completes the move.
    pub async fn run(self) -> Result<MigrateReply, MigrateError> {
        if !self.to.facts().daemon {
            return Err(MigrateError::NotATarget);
        }
        let places = self
            .active
            .places()
            .cloned()
            .ok_or(MigrateError::NotSwitchable)?;
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
        if from != self.to {
            let source = self.active.current();
            let target = self.open(self.to, &places).await?;
            self.copy(source.as_ref(), target.as_ref(), &places, &mut reply)
                .await?;
            config::set_backend(&self.config_path, BackendChoice::Backend(self.to))?;
            self.active.replace(
                Arc::clone(&target),
                format!(
                    "migrated: backend = \"{}\" in {}",
                    self.to,
                    self.config_path.display()
                ),
            );
            tracing::info!(to = %self.to, "switched backend");
            self.clean(source.as_ref(), target.as_ref(), &mut reply)
                .await?;
            // The old store's decrypted copy is no longer needed.
            source.lock();
            return Ok(reply);
        }
        // Already there: clean what an earlier, interrupted run left in every other backend.
        let target = self.active.current();
        let mut notes = Vec::new();
        for kind in BackendKind::daemon_kinds().filter(|&k| k != self.to) {
            match backend::leftover(kind, &places).await? {
                Leftover::None(why) => {
                    notes.push(format!("already on the {}; {why}", self.to.name()))
                }
                Leftover::Open(source) => {
                    self.unlock(kind, source.as_ref()).await?;
                    reply.from = kind;
                    self.clean(source.as_ref(), target.as_ref(), &mut reply)
                        .await?;
                    source.lock();
                }
            }
        }
        if !notes.is_empty() {
            reply.note = Some(notes.join("; "));
        }
        Ok(reply)
    }

    /// Unlocks a store of `kind` with what its facts say it needs.
    async fn unlock(&self, kind: BackendKind, store: &dyn Store) -> Result<(), MigrateError> {
        match kind.facts().unlock {
            Unlock::Nothing => store.probe().await?,
            Unlock::Passphrase => {
                let pass = self
                    .passphrase
                    .as_ref()
                    .ok_or(MigrateError::NoPassphrase(kind.name()))?;
                store.unlock(Some(pass)).await?;
            }
        }
        Ok(())
    }

    /// A store of `kind`, newly opened and unlocked (one that does not exist yet is created
    /// with the passphrase).
    async fn open(
        &self,
        kind: BackendKind,
        places: &Places,
    ) -> Result<Arc<dyn Store>, MigrateError> {
        let store = backend::open(kind, places)?;
        self.unlock(kind, store.as_ref()).await?;
        Ok(store)
    }

    /// Step 1: copies every listed secret and reads each back through a store of the target
    /// opened afresh (for the age file: from disk, not from the memory that wrote it).
    async fn copy(
        &self,
        source: &dyn Store,
        target: &dyn Store,
        places: &Places,
        reply: &mut MigrateReply,
    ) -> Result<(), MigrateError> {
        let mut items = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            match source.get(k).await? {
                Some(v) => items.push((k.clone(), v)),
                None => reply.missing += 1,
            }
        }
        target.set_many(&items).await?;
        let reader = self.open(self.to, places).await?;
        for (k, v) in &items {
            if reader.get(k).await?.as_ref() != Some(v) {
                return Err(StoreError::Corrupt(format!(
                    "{} did not read back the same from the {}; nothing was switched or removed",
                    k.account(),
                    self.to.name()
                ))
                .into());
            }
        }
        reader.lock();
        reply.copied = items.len();
        Ok(())
    }

    /// Step 3: removes from the source what the target holds identically.
    async fn clean(
        &self,
        source: &dyn Store,
        target: &dyn Store,
        reply: &mut MigrateReply,
    ) -> Result<(), MigrateError> {
        let mut gone = Vec::new();
        for k in &self.keys {
            let Some(s) = source.get(k).await? else {
                continue;
            };
            if target.get(k).await?.as_ref() == Some(&s) {
                gone.push(k.clone());
            } else {
                reply.kept += 1;
            }
        }
        source.delete_many(&gone).await?;
        reply.removed += gone.len();
        Ok(())
    }
}
