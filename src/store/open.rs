//! Building the daemon's backend: the keyring or the vault, chosen by `COMPOSER_KEYD_BACKEND`, config.toml or a probe, wrapped as the switchable store `migrate` changes.

use super::keyring::KeyringStore;
use super::switchable::Switchable;
use super::vault::{self, VaultStore};
use super::Store;
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
    let (store, reason): (Arc<dyn Store>, String) = match choice {
        BackendChoice::Keyring => (Arc::new(KeyringStore::new()), set),
        BackendChoice::Vault => (Arc::new(VaultStore::new(vault_path.clone())), set),
        BackendChoice::Auto => match probe_keyring(probe_timeout).await {
            Ok(k) => (Arc::new(k), format!("{set}: the OS keyring answered")),
            Err(why) => (
                Arc::new(VaultStore::new(vault_path.clone())),
                format!("{set}: no OS keyring answered ({why}), so the encrypted vault"),
            ),
        },
    };
    Ok(Arc::new(Switchable::new(store, reason, Some(vault_path))))
}

/// Connects to the platform store off the async thread, bounded by `limit`.
async fn probe_keyring(limit: Duration) -> Result<KeyringStore, String> {
    let task = tokio::task::spawn_blocking(|| {
        let k = KeyringStore::new();
        k.probe().map(|()| k)
    });
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(Ok(k))) => Ok(k),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(e)) => Err(format!("the probe failed: {e}")),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}
