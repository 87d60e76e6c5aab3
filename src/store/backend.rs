//! The backend seam: what each backend kind is (its name in messages, call time-out, unlocking), how the daemon opens one, and what a migration finds of it. Asked on every call, never cached.
//!
//! Every `match` on [`BackendKind`] that decides what a backend does is here, and each names
//! every kind (no `_` arm), so a new kind does not compile until it is answered for. Adding
//! a backend: its kind in `protocol.rs`, its facts and its opening here, its `Store` in a
//! file of its own under `store/` (see ARCHITECTURE.md).

use super::age_file::{self, AgeFileStore};
use super::keyring::KeyringStore;
use super::{Store, StoreError};
use crate::protocol::BackendKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What `unlock` needs for a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlock {
    /// Nothing: it is open as soon as it answers (the keyring unlocks itself, with its own
    /// prompt if it must).
    Nothing,
    /// A passphrase, read from the user; the daemon starts locked.
    Passphrase,
}

/// The facts of one backend kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// How messages name it ("the {name} did not answer in time").
    pub name: &'static str,
    /// What unlocking it takes.
    pub unlock: Unlock,
    /// Whether the daemon can run on it (config.toml, `COMPOSER_KEYD_BACKEND`, `migrate --to`).
    pub daemon: bool,
    /// The least time one call is given, whatever `--backend-timeout` says: the age file's
    /// calls are local CPU work (scrypt at unlock), not a service that may hang.
    pub min_call_time: Duration,
}

impl BackendKind {
    /// The facts of this kind.
    pub const fn facts(self) -> Facts {
        const NONE: Duration = Duration::ZERO;
        match self {
            BackendKind::Keyring => Facts {
                name: "keyring",
                unlock: Unlock::Nothing,
                daemon: true,
                min_call_time: NONE,
            },
            BackendKind::AgeFile => Facts {
                name: "age file",
                unlock: Unlock::Passphrase,
                daemon: true,
                min_call_time: Duration::from_secs(30),
            },
            BackendKind::Memory => Facts {
                name: "memory store",
                unlock: Unlock::Nothing,
                daemon: false,
                min_call_time: NONE,
            },
            BackendKind::Unknown => Facts {
                name: "store",
                unlock: Unlock::Nothing,
                daemon: false,
                min_call_time: NONE,
            },
        }
    }

    /// How messages name it.
    pub const fn name(self) -> &'static str {
        self.facts().name
    }

    /// The bound of one call, given the daemon's `--backend-timeout`.
    pub fn call_timeout(self, base: Duration) -> Duration {
        base.max(self.facts().min_call_time)
    }

    /// What `auto` tries, in order: each is taken when its probe answers, and the last one
    /// without a probe.
    pub const AUTO: [BackendKind; 2] = [BackendKind::Keyring, BackendKind::AgeFile];

    /// The kinds the daemon can run on, in the order help lists them.
    pub fn daemon_kinds() -> impl Iterator<Item = BackendKind> {
        BackendKind::NAMED.into_iter().filter(|k| k.facts().daemon)
    }
}

/// Where the backends with files keep them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Places {
    /// The age file, `vault.age` (its identity and sidecar sit next to it).
    pub age_file: PathBuf,
}

impl Places {
    /// The user's data directory.
    pub fn of_user() -> Result<Places, crate::paths::PathError> {
        Ok(Places {
            age_file: age_file::default_path()?,
        })
    }

    /// Whether the age file exists.
    pub fn age_file_exists(&self) -> bool {
        self.age_file.exists()
    }
}

/// A new store of `kind`, not yet connected or unlocked.
pub fn open(kind: BackendKind, places: &Places) -> Result<Arc<dyn Store>, StoreError> {
    match kind {
        BackendKind::Keyring => Ok(Arc::new(KeyringStore::new())),
        BackendKind::AgeFile => Ok(Arc::new(AgeFileStore::new(places.age_file.clone()))),
        BackendKind::Memory | BackendKind::Unknown => Err(StoreError::Invalid(format!(
            "the daemon cannot run on the {}",
            kind.name()
        ))),
    }
}

/// What a migration to another backend may have left in `kind`.
pub enum Leftover {
    /// Something to clean up: the store, opened but not unlocked.
    Open(Arc<dyn Store>),
    /// Nothing to clean up, or nothing reachable; says which, for the reply.
    None(String),
}

/// Whether `kind` may hold copies an interrupted migration left, and the store if so.
pub async fn leftover(kind: BackendKind, places: &Places) -> Result<Leftover, StoreError> {
    match kind {
        BackendKind::AgeFile => Ok(if places.age_file_exists() {
            Leftover::Open(open(kind, places)?)
        } else {
            Leftover::None(format!("there is no {} to clean up", kind.name()))
        }),
        BackendKind::Keyring => {
            let k = open(kind, places)?;
            Ok(match k.probe().await {
                Ok(()) => Leftover::Open(k),
                Err(e) => Leftover::None(format!(
                    "the {} is not reachable ({e}), so copies left there were not cleaned up",
                    kind.name()
                )),
            })
        }
        BackendKind::Memory | BackendKind::Unknown => {
            Ok(Leftover::None(format!("the {} holds none", kind.name())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_file_gets_room_and_the_keyring_the_daemons_bound() {
        let base = Duration::from_secs(5);
        assert_eq!(BackendKind::Keyring.call_timeout(base), base);
        assert_eq!(
            BackendKind::AgeFile.call_timeout(base),
            Duration::from_secs(30)
        );
        assert_eq!(
            BackendKind::AgeFile.call_timeout(Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        let daemon: Vec<_> = BackendKind::daemon_kinds().collect();
        assert_eq!(daemon, [BackendKind::Keyring, BackendKind::AgeFile]);
        assert_eq!(BackendKind::AgeFile.facts().unlock, Unlock::Passphrase);
    }
}
