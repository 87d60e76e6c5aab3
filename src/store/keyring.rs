//! The OS keyring backend: one keyring entry per secret; the Secret Service on the daemon's runtime on Linux (`secret_service.rs`), `keyring-core`'s platform store elsewhere.

use super::{SlotKey, Store, StoreError};
use crate::protocol::BackendKind;
use crate::secret::Secret;
#[cfg(not(target_os = "linux"))]
use keyring_core::{CredentialStore, Entry, Error as KError};
use std::sync::{Arc, Mutex};
#[cfg(not(target_os = "linux"))]
use zeroize::Zeroize;

#[cfg(not(target_os = "linux"))]
const NAME: &str = "keyring";

#[cfg(target_os = "linux")]
type Backend = super::secret_service::Service;
#[cfg(not(target_os = "linux"))]
type Backend = CredentialStore;

/// Secrets in the platform keyring (Secret Service, Keychain).
///
/// The connection is made on first use and again after a failure, so a daemon that
/// started before the keyring (or outlived a keyring restart) recovers by itself.
#[derive(Default)]
pub struct KeyringStore {
    inner: Mutex<Option<Arc<Backend>>>,
}

impl KeyringStore {
    /// A store that connects when first used.
    pub fn new() -> KeyringStore {
        KeyringStore::default()
    }

    /// Connects now, to tell whether the platform store answers. Blocks; on Linux, call it
    /// from a blocking thread of the daemon's runtime (`spawn_blocking`).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.connection().map(drop)
    }

    fn connection(&self) -> Result<Arc<Backend>, StoreError> {
        // Only this file takes the lock, and nothing in it panics while holding it.
        let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(Arc::clone(s));
        }
        let s = connect()?;
        *slot = Some(Arc::clone(&s));
        Ok(s)
    }

    /// Forgets the connection, so the next call reconnects.
    fn disconnect(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(target_os = "linux")]
fn connect() -> Result<Arc<Backend>, StoreError> {
    super::secret_service::Service::connect().map(Arc::new)
}

/// Calls on the Linux Secret Service; a failure drops the connection, so the next call
/// reconnects (the keyring daemon may have restarted).
#[cfg(target_os = "linux")]
impl Store for KeyringStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        let got = self.connection()?.get(key.service(), &key.account());
        got.map(|s| s.map(Secret::new))
            .inspect_err(|_| self.disconnect())
    }

    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError> {
        let set = self
            .connection()?
            .set(key.service(), &key.account(), secret);
        set.inspect_err(|_| self.disconnect())
    }

    fn delete(&self, key: &SlotKey) -> Result<(), StoreError> {
        let gone = self.connection()?.delete(key.service(), &key.account());
        gone.inspect_err(|_| self.disconnect())
    }
}

#[cfg(not(target_os = "linux"))]
fn connect() -> Result<Arc<Backend>, StoreError> {
    platform_store().map_err(map_err)
}

#[cfg(not(target_os = "linux"))]
impl KeyringStore {
    fn entry(&self, key: &SlotKey) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.connection()?, key.service(), &key.account()).map_err(map_err)
    }

    /// Drops the connection after a platform failure, so the next call reconnects.
    fn on_err(&self, e: KError) -> StoreError {
        if matches!(e, KError::PlatformFailure(_)) {
            self.disconnect();
        }
        map_err(e)
    }
}

#[cfg(target_os = "macos")]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    let s: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
    Ok(s)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Err(KError::NotSupportedByStore(
        "no OS keyring on this platform; use the vault backend".into(),
    ))
}

/// Maps keyring errors to ours. Variants that carry secret bytes are wiped, never printed.
#[cfg(not(target_os = "linux"))]
fn map_err(e: KError) -> StoreError {
    match e {
        KError::NoStorageAccess(p) => StoreError::Unavailable {
            backend: NAME,
            reason: format!("access refused (is the keyring locked?): {p}"),
        },
        KError::PlatformFailure(p) => StoreError::Unavailable {
            backend: NAME,
            reason: p.to_string(),
        },
        KError::NoDefaultStore => StoreError::Unavailable {
            backend: NAME,
            reason: "no platform store".into(),
        },
        KError::NotSupportedByStore(why) => StoreError::Unavailable {
            backend: NAME,
            reason: why,
        },
        KError::BadEncoding(mut bytes) => {
            bytes.zeroize();
            StoreError::Corrupt("a keyring entry is not valid UTF-8".into())
        }
        KError::BadDataFormat(mut bytes, _) => {
            bytes.zeroize();
            StoreError::Corrupt("a keyring entry is malformed".into())
        }
        KError::BadStoreFormat(why) => StoreError::Corrupt(why),
        KError::Ambiguous(items) => StoreError::Corrupt(format!(
            "{} keyring entries match one credential; remove the duplicates with your keyring tool",
            items.len()
        )),
        KError::TooLong(name, limit) => StoreError::Invalid(format!(
            "{name} is longer than the keyring's limit of {limit}"
        )),
        KError::Invalid(name, why) => StoreError::Invalid(format!("{name}: {why}")),
        KError::NoEntry => StoreError::Invalid("no entry".into()),
        // keyring-core may add variants; say what we can without guessing at their content.
        _ => StoreError::Unavailable {
            backend: NAME,
            reason: "unexpected keyring error".into(),
        },
    }
}

#[cfg(not(target_os = "linux"))]
impl Store for KeyringStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        match self.entry(key)?.get_secret() {
            Ok(bytes) => Ok(Some(Secret::new(bytes))),
            Err(KError::NoEntry) => Ok(None),
            Err(e) => Err(self.on_err(e)),
        }
    }

    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError> {
        self.entry(key)?
            .set_secret(secret)
            .map_err(|e| self.on_err(e))
    }

    fn delete(&self, key: &SlotKey) -> Result<(), StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(KError::NoEntry) => Ok(()),
            Err(e) => Err(self.on_err(e)),
        }
    }
}
