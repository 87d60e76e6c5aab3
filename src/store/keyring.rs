//! The OS keyring backend: one keyring entry per secret; the Secret Service awaited on the daemon's runtime on Linux (`secret_service.rs`), `keyring-core`'s blocking platform store on a blocking thread elsewhere.

use super::{Call, SecretKey, Store, StoreError};
use crate::protocol::BackendKind;
use crate::secret::Secret;
#[cfg(not(target_os = "linux"))]
use keyring_core::{CredentialStore, Entry, Error as KError};
use std::sync::{Arc, Mutex};
#[cfg(not(target_os = "linux"))]
use zeroize::Zeroize;

#[cfg(not(target_os = "linux"))]
const NAME: &str = BackendKind::Keyring.name();

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

    fn cached(&self) -> Option<Arc<Backend>> {
        // Only this file takes the lock, and nothing in it panics while holding it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn keep(&self, s: &Arc<Backend>) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(s));
    }

    /// Forgets the connection, so the next call reconnects.
    fn disconnect(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Calls on the Linux Secret Service, awaited on the daemon's runtime; a failure drops the
/// connection, so the next call reconnects (the keyring daemon may have restarted).
#[cfg(target_os = "linux")]
impl KeyringStore {
    /// The connection, made now if there is none.
    async fn connection(&self) -> Result<Arc<Backend>, StoreError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        // Two first calls at once may both connect; the later one's connection is kept.
        let s = Arc::new(super::secret_service::Service::connect().await?);
        self.keep(&s);
        Ok(s)
    }
}

#[cfg(target_os = "linux")]
impl Store for KeyringStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn probe(&self) -> Call<'_, ()> {
        Box::pin(async move { self.connection().await.map(drop) })
    }

    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>> {
        Box::pin(async move {
            let got = self
                .connection()
                .await?
                .get(key.service(), &key.account())
                .await;
            got.map(|s| s.map(Secret::new))
                .inspect_err(|_| self.disconnect())
        })
    }

    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()> {
        Box::pin(async move {
            let set = self
                .connection()
                .await?
                .set(key.service(), &key.account(), secret)
                .await;
            set.inspect_err(|_| self.disconnect())
        })
    }

    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()> {
        Box::pin(async move {
            let gone = self
                .connection()
                .await?
                .delete(key.service(), &key.account())
                .await;
            gone.inspect_err(|_| self.disconnect())
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn connect() -> Result<Arc<Backend>, StoreError> {
    platform_store().map_err(map_err)
}

#[cfg(not(target_os = "linux"))]
impl KeyringStore {
    fn connection(&self) -> Result<Arc<Backend>, StoreError> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let s = connect()?;
        self.keep(&s);
        Ok(s)
    }

    /// Runs `f` on the entry for `key` on a blocking thread: `keyring-core`'s stores block.
    async fn call<T: Send + 'static>(
        &self,
        key: &SecretKey,
        f: impl FnOnce(Entry) -> Result<T, KError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.connection()?;
        let (service, account) = (key.service(), key.account());
        let done =
            tokio::task::spawn_blocking(move || f(Entry::new_in_store(&store, service, &account)?))
                .await
                .map_err(|e| StoreError::Unavailable {
                    backend: NAME,
                    reason: format!("the keyring call failed: {e}"),
                })?;
        done.map_err(|e| self.on_err(e))
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

    fn probe(&self) -> Call<'_, ()> {
        Box::pin(async move {
            let s = tokio::task::spawn_blocking(connect).await.map_err(|e| {
                StoreError::Unavailable {
                    backend: NAME,
                    reason: format!("the keyring probe failed: {e}"),
                }
            })??;
            self.keep(&s);
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>> {
        Box::pin(self.call(key, |e| match e.get_secret() {
            Ok(bytes) => Ok(Some(Secret::new(bytes))),
            Err(KError::NoEntry) => Ok(None),
            Err(e) => Err(e),
        }))
    }

    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()> {
        let secret = zeroize::Zeroizing::new(secret.to_vec());
        Box::pin(self.call(key, move |e| e.set_secret(&secret)))
    }

    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()> {
        Box::pin(self.call(key, |e| match e.delete_credential() {
            Ok(()) | Err(KError::NoEntry) => Ok(()),
            Err(e) => Err(e),
        }))
    }
}
