//! The `Store` trait that every secret backend implements, and the key each credential is stored under.
//!
//! Backends are blocking; the daemon calls them from `spawn_blocking` with a time-out.

pub mod keyring;
pub mod memory;
pub mod migrate;
pub mod open;
#[cfg(target_os = "linux")]
pub mod secret_service;
pub mod switchable;
pub mod vault;

use crate::credential::Origin;
use crate::protocol::BackendKind;
use crate::secret::Secret;

/// The keyring service name for current secrets.
pub const SERVICE: &str = "composer-keyd";
/// The keyring service name for the secret a rotation replaced, kept for `rotate --rollback`.
pub const SERVICE_PREVIOUS: &str = "composer-keyd.previous";

/// Which secret of a credential: the one in use, or the one a rotation replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The secret in use.
    Current,
    /// The secret a `rotate` replaced, kept for `rotate --rollback`.
    Previous,
}

/// The address of one secret in a backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    /// The origin the secret is for.
    pub origin: Origin,
    /// Canonical project directory, or `None` for the unscoped credential.
    pub project: Option<String>,
    /// Which of the credential's secrets.
    pub slot: Slot,
}

/// A [`SlotKey`] of borrowed parts, to look one up in a map without copying its strings.
/// Hashes as the `SlotKey` it names does: the same fields, in the same order.
#[derive(Clone, Copy, Debug, Hash)]
pub struct SlotKeyRef<'a> {
    /// The origin, as [`Origin::as_str`] spells it.
    pub origin: &'a str,
    /// Canonical project directory, or `None` for the unscoped credential.
    pub project: Option<&'a str>,
    /// Which of the credential's secrets.
    pub slot: Slot,
}

impl hashbrown::Equivalent<SlotKey> for SlotKeyRef<'_> {
    fn equivalent(&self, key: &SlotKey) -> bool {
        self.origin == key.origin.as_str()
            && self.project == key.project.as_deref()
            && self.slot == key.slot
    }
}

impl SlotKey {
    /// Builds a key.
    pub fn new(origin: &Origin, project: Option<&str>, slot: Slot) -> SlotKey {
        SlotKey {
            origin: origin.clone(),
            project: project.map(str::to_owned),
            slot,
        }
    }

    /// The keyring service for this slot.
    pub fn service(&self) -> &'static str {
        match self.slot {
            Slot::Current => SERVICE,
            Slot::Previous => SERVICE_PREVIOUS,
        }
    }

    /// The keyring account: the origin, plus `@DIR` when scoped. An origin never
    /// holds `@`, so the split is unambiguous.
    pub fn account(&self) -> String {
        match &self.project {
            Some(dir) => format!("{}@{}", self.origin, dir),
            None => self.origin.to_string(),
        }
    }
}

/// What a backend can fail with. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend did not answer, or refused access (locked keyring, no Secret Service).
    #[error("the {backend} is unavailable: {reason}")]
    Unavailable {
        /// Which backend, as the message names it (`keyring`, `vault`).
        backend: &'static str,
        /// Why, in one short phrase; never holds a secret.
        reason: String,
    },
    /// The backend call took longer than the limit.
    #[error("the {0} did not answer in time")]
    Timeout(&'static str),
    /// The backend needs unlocking first (vault).
    #[error("the store is locked: run `composer-keyd unlock`")]
    Locked,
    /// The passphrase was wrong.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The stored data is damaged; it is left untouched.
    #[error("the stored data is damaged: {0}")]
    Corrupt(String),
    /// A bad argument (the backend refused a name or a value).
    #[error("the backend refused the request: {0}")]
    Invalid(String),
}

/// A place that keeps secrets. Every call may block.
pub trait Store: Send + Sync {
    /// Which backend this is, for `status`.
    fn kind(&self) -> BackendKind;

    /// Reads a secret; `Ok(None)` when there is none.
    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError>;

    /// Writes (creates or replaces) a secret.
    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError>;

    /// Removes a secret; removing one that is absent is not an error.
    fn delete(&self, key: &SlotKey) -> Result<(), StoreError>;

    /// Writes several secrets; the vault re-encrypts once for all of them.
    fn set_many(&self, items: &[(SlotKey, Secret<Vec<u8>>)]) -> Result<(), StoreError> {
        items.iter().try_for_each(|(k, s)| self.set(k, s.expose()))
    }

    /// Removes several secrets; the vault re-encrypts once for all of them.
    fn delete_many(&self, keys: &[SlotKey]) -> Result<(), StoreError> {
        keys.iter().try_for_each(|k| self.delete(k))
    }

    /// Changes the passphrase (vault); other backends have none.
    fn change_passphrase(
        &self,
        _old: &Secret<String>,
        _new: &Secret<String>,
    ) -> Result<(), StoreError> {
        Err(StoreError::Invalid(
            "this backend has no passphrase; `passwd` is for the vault".into(),
        ))
    }

    /// Opens the store for use; the vault needs its passphrase, the keyring nothing.
    fn unlock(&self, _passphrase: Option<&Secret<String>>) -> Result<(), StoreError> {
        Ok(())
    }

    /// Forgets everything decrypted in memory.
    fn lock(&self) {}

    /// Whether `unlock` must be given a passphrase.
    fn needs_passphrase(&self) -> bool {
        false
    }

    /// Something about the stored data the user must be told (the vault: an old copy put back).
    fn warning(&self) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_key_is_found_by_its_borrowed_parts() {
        let mut map: hashbrown::HashMap<SlotKey, u8, foldhash::fast::RandomState> =
            hashbrown::HashMap::default();
        let o = Origin::parse("repo.magento.com").unwrap();
        map.insert(SlotKey::new(&o, None, Slot::Current), 1);
        map.insert(SlotKey::new(&o, Some("/srv/a"), Slot::Current), 2);
        map.insert(SlotKey::new(&o, Some("/srv/a"), Slot::Previous), 3);
        let get = |project, slot| {
            map.get(&SlotKeyRef {
                origin: "repo.magento.com",
                project,
                slot,
            })
            .copied()
        };
        assert_eq!(get(None, Slot::Current), Some(1));
        assert_eq!(get(Some("/srv/a"), Slot::Current), Some(2));
        assert_eq!(get(Some("/srv/a"), Slot::Previous), Some(3));
        assert_eq!(get(None, Slot::Previous), None);
        assert_eq!(get(Some("/srv/b"), Slot::Current), None);
        assert_eq!(
            get(Some(""), Slot::Current),
            None,
            "an empty scope is not none"
        );
    }
}
