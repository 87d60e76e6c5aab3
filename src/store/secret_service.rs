//! The Linux keyring (Secret Service over D-Bus), called asynchronously on the daemon's own tokio runtime: no second executor, no thread of its own, no `block_on`.
//!
//! The `keyring-core` store for the Secret Service drives zbus through its blocking API,
//! which runs either an async-io executor with its own threads or, with zbus's tokio
//! backend, a private multi-thread tokio runtime. This calls the same service
//! asynchronously on the runtime that is current when it connects, so the D-Bus
//! connection's tasks are ordinary tasks of the daemon. Items are found and made the way
//! that store makes them (attributes `service` and `username`, label
//! `keyring:{user}@{service}`, the default collection), so entries written by either are
//! read by the other.
//!
//! This is the shape a network backend takes too: its calls are futures the `Store` trait
//! returns, awaited on the daemon's runtime.

use super::StoreError;
use secret_service::{EncryptionType, Error as SsError, Item, SecretService};
use std::collections::HashMap;

const NAME: &str = crate::protocol::BackendKind::Keyring.name();

/// A connection to the session's Secret Service.
pub struct Service {
    ss: SecretService<'static>,
}

impl Service {
    /// Connects, on the current runtime.
    pub async fn connect() -> Result<Service, StoreError> {
        let ss = SecretService::connect(EncryptionType::Dh)
            .await
            .map_err(map_err)?;
        Ok(Service { ss })
    }

    /// The secret of the item for (`service`, `user`), if there is one.
    pub async fn get(&self, service: &str, user: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match unique(&self.ss, service, user).await? {
            None => Ok(None),
            Some(item) => item.get_secret().await.map(Some).map_err(map_err),
        }
    }

    /// Sets the secret of the item for (`service`, `user`), creating it in the default collection.
    pub async fn set(&self, service: &str, user: &str, secret: &[u8]) -> Result<(), StoreError> {
        const TYPE: &str = "application/octet-stream";
        let ss = &self.ss;
        if let Some(item) = unique(ss, service, user).await? {
            return item.set_secret(secret, TYPE).await.map_err(map_err);
        }
        let collection = ss.get_default_collection().await.map_err(map_err)?;
        if collection.is_locked().await.map_err(map_err)? {
            collection.unlock().await.map_err(map_err)?;
        }
        let label = format!("keyring:{user}@{service}");
        collection
            .create_item(&label, attributes(service, user), secret, true, TYPE)
            .await
            .map(drop)
            .map_err(map_err)
    }

    /// Deletes the item for (`service`, `user`); none is not an error.
    pub async fn delete(&self, service: &str, user: &str) -> Result<(), StoreError> {
        match unique(&self.ss, service, user).await? {
            None => Ok(()),
            Some(item) => item.delete().await.map_err(map_err),
        }
    }
}

fn attributes<'a>(service: &'a str, user: &'a str) -> HashMap<&'a str, &'a str> {
    HashMap::from([("service", service), ("username", user)])
}

/// The one item for (`service`, `user`), unlocked; more than one is refused.
async fn unique<'a>(
    ss: &'a SecretService<'_>,
    service: &str,
    user: &str,
) -> Result<Option<Item<'a>>, StoreError> {
    let found = ss
        .search_items(attributes(service, user))
        .await
        .map_err(map_err)?;
    if !found.locked.is_empty() {
        let locked: Vec<&Item<'_>> = found.locked.iter().collect();
        ss.unlock_all(&locked).await.map_err(map_err)?;
    }
    let mut items = found.unlocked;
    items.extend(found.locked);
    match items.len() {
        0 => Ok(None),
        1 => Ok(items.pop()),
        n => Err(StoreError::Corrupt(format!(
            "{n} keyring entries match one credential; remove the duplicates with your keyring tool"
        ))),
    }
}

/// Secret Service errors carry no secret; a locked or refused keyring is said as such.
fn map_err(e: SsError) -> StoreError {
    let reason = match e {
        SsError::Locked | SsError::NoResult | SsError::Prompt | SsError::PromptDisconnected => {
            format!("access refused (is the keyring locked?): {e}")
        }
        _ => e.to_string(),
    };
    StoreError::Unavailable {
        backend: NAME,
        reason,
    }
}
