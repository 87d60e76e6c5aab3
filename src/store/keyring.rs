//! The OS keyring backend: one keyring entry per secret, through `keyring-core` and the platform's store.

use super::{SlotKey, Store, StoreError};
use crate::protocol::BackendKind;
use crate::secret::Secret;
use keyring_core::{CredentialStore, Entry, Error as KError};
use std::sync::Arc;
use zeroize::Zeroize;

const NAME: &str = "keyring";

/// Secrets in the platform keyring (Secret Service, Keychain, Credential Manager).
pub struct KeyringStore {
    inner: Arc<CredentialStore>,
}

impl KeyringStore {
    /// Connects to the platform store. Fails when there is none (no session bus on Linux).
    pub fn open() -> Result<KeyringStore, StoreError> {
        let inner = platform_store().map_err(map_err)?;
        Ok(KeyringStore { inner })
    }

    fn entry(&self, key: &SlotKey) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.inner, key.service(), &key.account()).map_err(map_err)
    }
}

#[cfg(target_os = "linux")]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    let s: Arc<CredentialStore> = zbus_secret_service_keyring_store::Store::new()?;
    Ok(s)
}

#[cfg(target_os = "macos")]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    let s: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()?;
    Ok(s)
}

#[cfg(target_os = "windows")]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    let s: Arc<CredentialStore> = windows_native_keyring_store::Store::new()?;
    Ok(s)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn platform_store() -> keyring_core::Result<Arc<CredentialStore>> {
    Err(KError::NotSupportedByStore(
        "no OS keyring on this platform; use the vault backend".into(),
    ))
}

/// Maps keyring errors to ours. Variants that carry secret bytes are wiped, never printed.
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
        KError::TooLong(name, limit) => {
            StoreError::Invalid(format!("{name} is longer than the keyring's limit of {limit}"))
        }
        KError::Invalid(name, why) => StoreError::Invalid(format!("{name}: {why}")),
        KError::NoEntry => StoreError::Invalid("no entry".into()),
        // keyring-core may add variants; say what we can without guessing at their content.
        _ => StoreError::Unavailable {
            backend: NAME,
            reason: "unexpected keyring error".into(),
        },
    }
}

impl Store for KeyringStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        match self.entry(key)?.get_secret() {
            Ok(bytes) => Ok(Some(Secret::new(bytes))),
            Err(KError::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError> {
        self.entry(key)?.set_secret(secret).map_err(map_err)
    }

    fn delete(&self, key: &SlotKey) -> Result<(), StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(KError::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}
