//! Migration between the keyring and the vault, over the daemon's switchable store.
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

use super::keyring::KeyringStore;
use super::switchable::Switchable;
use super::vault::VaultStore;
use super::{SlotKey, Store, StoreError};
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
    /// The vault is the target or must be opened, and no passphrase was given.
    #[error("the vault's passphrase is needed to migrate")]
    NoPassphrase,
    /// The daemon has no vault path, so it cannot swap its store (a test's memory store).
    #[error("this daemon's store cannot be migrated")]
    NotSwitchable,
}

/// One migration of every listed secret to `to`, over the daemon's switchable store.
pub struct Migration<'a> {
    /// The daemon's store, swapped for the target once every secret is copied.
    pub active: &'a Switchable,
    /// The backend to move every secret to.
    pub to: BackendKind,
    /// What config.toml records as the backend after the switch.
    pub choice: BackendChoice,
    /// The vault's passphrase, when the vault is the target or must be opened to clean up.
    pub passphrase: Option<Secret<String>>,
    /// config.toml, where the switch is recorded.
    pub config_path: PathBuf,
    /// Every secret the index lists.
    pub slots: Vec<SlotKey>,
}

impl Migration<'_> {
    /// Runs the three steps; a rerun after a crash at any point completes the move.
    pub fn run(self) -> Result<MigrateReply, MigrateError> {
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
            config::set_backend(&self.config_path, self.choice)?;
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

    fn vault(&self) -> Result<VaultStore, MigrateError> {
        let path = self
            .active
            .vault_path()
            .ok_or(MigrateError::NotSwitchable)?;
        Ok(VaultStore::new(path.to_path_buf()))
    }

    fn passphrase(&self) -> Result<&Secret<String>, MigrateError> {
        self.passphrase.as_ref().ok_or(MigrateError::NoPassphrase)
    }

    /// The target, unlocked; a vault that does not exist yet is created with the passphrase.
    fn open_target(&self) -> Result<Arc<dyn Store>, MigrateError> {
        match self.to {
            BackendKind::Vault => {
                let v = self.vault()?;
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
    fn open_leftover(
        &self,
        reply: &mut MigrateReply,
    ) -> Result<Option<Arc<dyn Store>>, MigrateError> {
        match self.to {
            BackendKind::Keyring => {
                let v = self.vault()?;
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
    fn copy(
        &self,
        source: &dyn Store,
        target: &dyn Store,
        reply: &mut MigrateReply,
    ) -> Result<(), MigrateError> {
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
            fresh = self.vault()?;
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
    ) -> Result<(), MigrateError> {
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
