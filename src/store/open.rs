//! Building the daemon's backend: the keyring or the vault, chosen by `COMPOSER_KEYD_BACKEND`, config.toml or a probe, wrapped as the switchable store `migrate` changes.

use super::keyring::KeyringStore;
use super::switchable::Switchable;
use super::vault::{self, VaultStore};
use super::{Store, StoreError};
use crate::config::{self, BackendChoice, Source};
use std::sync::Arc;
use std::time::Duration;

/// Why no backend could be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend choice could not be read (a bad `COMPOSER_KEYD_BACKEND` or config.toml).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The data directory for the vault could not be worked out.
    #[error(transparent)]
    Path(#[from] crate::paths::PathError),
}

/// Picks the backend and says why: `COMPOSER_KEYD_BACKEND`, else config.toml, else auto.
/// Auto takes the OS keyring when it answers within `probe_timeout`, else the vault.
pub async fn open(probe_timeout: Duration) -> Result<Arc<Switchable>, OpenError> {
    let (choice, source) = config::backend()?;
    let vault_path = vault::default_path()?;
    let set = match &source {
        Source::Env => format!("{}={choice}", config::ENV_BACKEND),
        Source::File(p) => format!("backend = \"{choice}\" in {}", p.display()),
        Source::Default => "auto, the default".into(),
    };
    let (store, reason, detail): (Arc<dyn Store>, String, Option<String>) = match choice {
        BackendChoice::Keyring => (Arc::new(KeyringStore::new()), set, None),
        BackendChoice::Vault => (Arc::new(VaultStore::new(vault_path.clone())), set, None),
        BackendChoice::Auto => match probe_keyring(probe_timeout).await {
            Ok(k) => (Arc::new(k), format!("{set}: the OS keyring answered"), None),
            Err((short, detail)) => (
                Arc::new(VaultStore::new(vault_path.clone())),
                format!("{set}: no OS keyring answered ({short}), so the encrypted vault"),
                Some(detail),
            ),
        },
    };
    Ok(Arc::new(
        Switchable::new(store, reason, Some(vault_path)).with_detail(detail),
    ))
}

/// A few words for why the keyring did not answer; the error itself (a D-Bus address, a
/// zbus message) is the detail, for `doctor -v` and the log.
fn short_reason(e: &StoreError) -> &'static str {
    let StoreError::Unavailable { reason, .. } = e else {
        return match e {
            StoreError::Timeout(_) => "it did not answer in time",
            _ => "it refused",
        };
    };
    let r = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&[
        "org.freedesktop.secrets",
        "serviceunknown",
        "was not provided",
    ]) {
        "no Secret Service on the session bus"
    } else if has(&[
        "failed to connect",
        "no such file",
        "dbus_session_bus_address",
        "address",
    ]) {
        "no D-Bus session bus"
    } else if has(&["locked", "access refused"]) {
        "the keyring is locked or refused access"
    } else if has(&["no platform store"]) {
        "no platform keyring"
    } else {
        "the keyring is unavailable"
    }
}

/// Connects to the platform store off the async thread, bounded by `limit`.
async fn probe_keyring(limit: Duration) -> Result<KeyringStore, (&'static str, String)> {
    let task = tokio::task::spawn_blocking(|| {
        let k = KeyringStore::new();
        k.probe().map(|()| k)
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(k))) => Ok(k),
        Ok(Ok(Err(e))) => Err((short_reason(&e), e.to_string())),
        Ok(Err(e)) => Err(("the probe failed", format!("the probe failed: {e}"))),
        Err(_) => Err(("no answer in time", format!("no answer within {limit:?}"))),
    }
}
