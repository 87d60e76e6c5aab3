//! The daemon's backend as one `Store`: the keyring or the vault, chosen at start and switched by `migrate`.

use super::{SlotKey, Store, StoreError};
use crate::protocol::BackendKind;
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The store in use, why it was chosen, and where the vault lives (for `status` and `migrate`).
pub struct Switchable {
    current: RwLock<(Arc<dyn Store>, String)>,
    /// `None` for a store that is never switched (tests, tools): `migrate` refuses.
    vault_path: Option<PathBuf>,
    /// The whole story behind the reason (e.g. the D-Bus error of the keyring probe), for
    /// `doctor -v` and the log; the reason itself stays one short sentence.
    detail: RwLock<Option<String>>,
}

impl Switchable {
    /// Wraps the chosen store.
    pub fn new(store: Arc<dyn Store>, reason: String, vault_path: Option<PathBuf>) -> Switchable {
        Switchable {
            current: RwLock::new((store, reason)),
            vault_path,
            detail: RwLock::new(None),
        }
    }

    /// Records the detail behind the reason.
    pub fn with_detail(self, detail: Option<String>) -> Switchable {
        *self.detail.write().unwrap_or_else(|e| e.into_inner()) = detail;
        self
    }

    /// The detail behind the reason, when there is more to say than the reason does.
    pub fn detail(&self) -> Option<String> {
        self.detail
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store in use now.
    pub fn current(&self) -> Arc<dyn Store> {
        // Writers only swap the pair; a poisoned lock still holds a whole one.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()).0)
    }

    /// Why the store in use was chosen, in a sentence.
    pub fn reason(&self) -> String {
        // As in `current`.
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// The vault file, whether or not the vault is in use.
    pub fn vault_path(&self) -> Option<&Path> {
        self.vault_path.as_deref()
    }

    /// Whether the vault file exists, when there is one to ask about.
    pub fn vault_exists(&self) -> Option<bool> {
        self.vault_path.as_deref().map(Path::exists)
    }

    /// Makes `store` the one in use.
    pub fn replace(&self, store: Arc<dyn Store>, reason: String) {
        // As in `current`.
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (store, reason);
        *self.detail.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Store for Switchable {
    fn kind(&self) -> BackendKind {
        self.current().kind()
    }

    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        self.current().get(key)
    }

    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError> {
        self.current().set(key, secret)
    }

    fn delete(&self, key: &SlotKey) -> Result<(), StoreError> {
        self.current().delete(key)
    }

    fn set_many(&self, items: &[(SlotKey, Secret<Vec<u8>>)]) -> Result<(), StoreError> {
        self.current().set_many(items)
    }

    fn delete_many(&self, keys: &[SlotKey]) -> Result<(), StoreError> {
        self.current().delete_many(keys)
    }

    fn unlock(&self, passphrase: Option<&Secret<String>>) -> Result<(), StoreError> {
        self.current().unlock(passphrase)
    }

    fn lock(&self) {
        self.current().lock()
    }

    fn needs_passphrase(&self) -> bool {
        self.current().needs_passphrase()
    }

    fn warning(&self) -> Option<String> {
        self.current().warning()
    }

    fn change_passphrase(
        &self,
        old: &Secret<String>,
        new: &Secret<String>,
    ) -> Result<(), StoreError> {
        self.current().change_passphrase(old, new)
    }
}
