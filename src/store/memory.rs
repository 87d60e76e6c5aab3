//! An in-memory `Store`, for unit tests of logic only; it never stands in for the keyring in integration tests.

use super::{ready, Call, SecretKey, Store, StoreError};
use crate::protocol::BackendKind;
use crate::secret::Secret;
use std::collections::HashMap;
use std::sync::Mutex;

/// Secrets in a map, lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<SecretKey, Secret<Vec<u8>>>>,
    /// When set, every call fails as an unreachable backend would.
    unavailable: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Makes every later call fail with `Unavailable` (or succeed again).
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.unavailable.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                backend: BackendKind::Memory.name(),
                reason: "switched off by the test".into(),
            });
        }
        Ok(())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Secret<Vec<u8>>>> {
        // A panic while holding this lock can only come from a bug in a test; the map stays usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The calls, answered at once: for tests, which call them directly.
impl MemoryStore {
    /// Reads a secret.
    pub fn get(&self, key: &SecretKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        self.check()?;
        Ok(self.map().get(key).cloned())
    }

    /// Writes a secret.
    pub fn set(&self, key: &SecretKey, secret: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        self.map().insert(key.clone(), Secret::new(secret.to_vec()));
        Ok(())
    }

    /// Removes a secret.
    pub fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.check()?;
        self.map().remove(key);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Memory
    }

    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>> {
        ready(MemoryStore::get(self, key))
    }

    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()> {
        ready(MemoryStore::set(self, key, secret))
    }

    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()> {
        ready(MemoryStore::delete(self, key))
    }
}
