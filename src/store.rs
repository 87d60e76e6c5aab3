//! The `Store` trait that every secret backend implements, and the key each credential is stored under.
//!
//! Calls are async, so that a network backend awaits its I/O on the daemon's runtime as the
//! Secret Service does (no thread of its own, no `block_on`). A backend whose work is local
//! and blocking (the age file: file I/O and scrypt) runs it on a blocking thread inside its
//! own call (`spawn_blocking`), so no caller needs to know which kind it holds. The daemon
//! bounds every call with the time-out `backend::Facts` gives for the kind in use then.
//! What each backend is (name, time-out, unlocking, opening, migrating) lives in `backend.rs`.

pub mod age_file;
pub mod backend;
pub mod keyring;
pub mod memory;
pub mod migrate;
pub mod open;
#[cfg(target_os = "linux")]
pub mod secret_service;
pub mod switchable;

use crate::credential::Origin;
use crate::protocol::BackendKind;
use crate::secret::Secret;
use std::future::Future;
use std::pin::Pin;

/// The keyring service name for current secrets.
pub const SERVICE: &str = "composer-keyd";
/// The keyring service name for the secret a rotation replaced, kept for `rotate --rollback`.
pub const SERVICE_PREVIOUS: &str = "composer-keyd.previous";

/// Which secret of a credential: the one in use, or the one a rotation replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Which {
    /// The secret in use.
    Current,
    /// The secret a `rotate` replaced, kept for `rotate --rollback`.
    Previous,
}

/// The address of one secret in a backend.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKey {
    /// The origin the secret is for.
    pub origin: Origin,
    /// Canonical project directory, or `None` for the unscoped credential.
    pub project: Option<String>,
    /// Which of the credential's secrets.
    pub which: Which,
}

/// A [`SecretKey`] of borrowed parts, to look one up in a map without copying its strings.
/// Hashes as the `SecretKey` it names does: the same fields, in the same order.
#[derive(Clone, Copy, Debug, Hash)]
pub struct SecretKeyRef<'a> {
    /// The origin, as [`Origin::as_str`] spells it.
    pub origin: &'a str,
    /// Canonical project directory, or `None` for the unscoped credential.
    pub project: Option<&'a str>,
    /// Which of the credential's secrets.
    pub which: Which,
}

impl hashbrown::Equivalent<SecretKey> for SecretKeyRef<'_> {
    fn equivalent(&self, key: &SecretKey) -> bool {
        self.origin == key.origin.as_str()
            && self.project == key.project.as_deref()
            && self.which == key.which
    }
}

impl SecretKey {
    /// Builds a key.
    pub fn new(origin: &Origin, project: Option<&str>, which: Which) -> SecretKey {
        SecretKey {
            origin: origin.clone(),
            project: project.map(str::to_owned),
            which,
        }
    }

    /// The keyring service for this secret.
    pub fn service(&self) -> &'static str {
        match self.which {
            Which::Current => SERVICE,
            Which::Previous => SERVICE_PREVIOUS,
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
    /// A wrong passphrase was tried recently: this try was refused without checking it.
    #[error("a wrong passphrase was tried recently: try again in {} s", .0.as_secs().max(1))]
    Backoff(std::time::Duration),
    /// The age file is older than one this daemon has read or written (put back with its
    /// sidecar); it stays locked. Holds the sentence for the user.
    #[error("{0}")]
    RolledBack(String),
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

/// A call in flight on a backend.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A call that is already answered.
pub fn ready<'a, T: Send + 'a>(r: Result<T, StoreError>) -> Call<'a, T> {
    Box::pin(std::future::ready(r))
}

/// A place that keeps secrets. Calls that reach the backend are async; an implementation
/// with blocking work runs it on a blocking thread of the runtime, never on the caller's.
pub trait Store: Send + Sync {
    /// Which backend this is, for `status`.
    fn kind(&self) -> BackendKind;

    /// Reads a secret; `Ok(None)` when there is none.
    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>>;

    /// Writes (creates or replaces) a secret.
    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()>;

    /// Removes a secret; removing one that is absent is not an error.
    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()>;

    /// Writes several secrets; the age file re-encrypts once for all of them.
    fn set_many<'a>(&'a self, items: &'a [(SecretKey, Secret<Vec<u8>>)]) -> Call<'a, ()> {
        Box::pin(async move {
            for (k, s) in items {
                self.set(k, s.expose()).await?;
            }
            Ok(())
        })
    }

    /// Removes several secrets; the age file re-encrypts once for all of them.
    fn delete_many<'a>(&'a self, keys: &'a [SecretKey]) -> Call<'a, ()> {
        Box::pin(async move {
            for k in keys {
                self.delete(k).await?;
            }
            Ok(())
        })
    }

    /// Whether the backend answers now (the keyring connects); `migrate` asks its target.
    fn probe(&self) -> Call<'_, ()> {
        ready(Ok(()))
    }

    /// Changes the passphrase (age file); other backends have none.
    fn change_passphrase<'a>(
        &'a self,
        _old: &'a Secret<String>,
        _new: &'a Secret<String>,
    ) -> Call<'a, ()> {
        ready(Err(StoreError::Invalid(
            "this backend has no passphrase; `passwd` is for the age file".into(),
        )))
    }

    /// Opens the store for use; the age file needs its passphrase, the keyring nothing.
    fn unlock<'a>(&'a self, _passphrase: Option<&'a Secret<String>>) -> Call<'a, ()> {
        ready(Ok(()))
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
    fn a_secret_key_is_found_by_its_borrowed_parts() {
        let mut map: hashbrown::HashMap<SecretKey, u8, foldhash::fast::RandomState> =
            hashbrown::HashMap::default();
        let o = Origin::parse("repo.magento.com").unwrap();
        map.insert(SecretKey::new(&o, None, Which::Current), 1);
        map.insert(SecretKey::new(&o, Some("/srv/a"), Which::Current), 2);
        map.insert(SecretKey::new(&o, Some("/srv/a"), Which::Previous), 3);
        let get = |project, which| {
            map.get(&SecretKeyRef {
                origin: "repo.magento.com",
                project,
                which,
            })
            .copied()
        };
        assert_eq!(get(None, Which::Current), Some(1));
        assert_eq!(get(Some("/srv/a"), Which::Current), Some(2));
        assert_eq!(get(Some("/srv/a"), Which::Previous), Some(3));
        assert_eq!(get(None, Which::Previous), None);
        assert_eq!(get(Some("/srv/b"), Which::Current), None);
        assert_eq!(
            get(Some(""), Which::Current),
            None,
            "an empty scope is not none"
        );
    }
}
