//! The age-file backend (`age-file`, called `vault` before; its files keep their names): secrets in `vault.age`, sealed to an X25519 identity that `identity.age` keeps under the passphrase.
//!
//! Unlock runs scrypt once, to open identity.age, and keeps the identity in memory; a write
//! seals vault.age to its recipient, with no passphrase work. `passwd` reseals identity.age
//! only. The emergency read needs the stock age tool alone:
//! `age -d -i <(age -d identity.age) vault.age`.
//!
//! The plaintext is JSON, `{"format":2,"generation":N,"credentials":{SERVICE:{ACCOUNT:CREDENTIAL}}}`.
//! Every write raises the generation and records it in the sidecar (`state.rs`), so an older
//! vault.age copied back is noticed. Every file is replaced atomically; a file that does not
//! decrypt or parse is reported and never written over. A vault from before identity.age
//! (sealed with the passphrase itself) is upgraded on its first unlock (`upgrade.rs`).
//!
//! The calls block (file I/O, scrypt): `AgeFileStore`'s own methods are the blocking calls, and
//! its `Store` implementation runs each on a blocking thread of the runtime.
//!
//! An older vault.age put back is noticed two ways:
//! - against the newest generation this store (the daemon's, for its whole life) has read or
//!   written at this path, kept in memory across locks: an older one is refused at unlock
//!   (`RolledBack`), whether or not the sidecar was put back with it;
//! - against the sidecar, across restarts: a vault.age older than the sidecar's generation is
//!   served with a warning (unlock reply, `status`, the log).
//!
//! Not noticed: vault.age and its sidecar put back together while no daemon ran (or before a
//! daemon first read them), since nothing else records the generation; the same-uid attacker
//! who can do that can also read and replace every file here. The keyring is not asked to
//! record it: the age file is mostly used where no keyring answers.

use super::{Call, SecretKey, Store, StoreError};
use crate::atomic::{self, Stage};
use crate::paths;
use crate::protocol::BackendKind;
use crate::secret::Secret;
use crate::testhook;
use age::x25519;
use file::{check_json, parse, serialize, Damage, Plain, Seal};
use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The vault's file name in the data directory.
pub const FILE_NAME: &str = "vault.age";
/// The passphrase-sealed identity, next to the vault.
pub const IDENTITY_FILE_NAME: &str = "identity.age";
/// The pre-identity vault.age, kept under this name while its upgrade verifies.
pub const BACKUP_FILE_NAME: &str = "vault.age.pre-identity";
pub use state::FILE_NAME as STATE_FILE_NAME;
/// scrypt work factor N = 2^18: what `age -p` itself uses, so the age CLI reads our files.
const LOG_N: u8 = 18;
/// The largest work factor accepted on reading: the age CLI's own limit.
const MAX_LOG_N: u8 = 22;

const NAME: &str = BackendKind::AgeFile.name();

/// `$XDG_DATA_HOME/composer-keyd/vault.age`.
pub fn default_path() -> Result<PathBuf, paths::PathError> {
    Ok(paths::data_dir()?.join(FILE_NAME))
}

/// service -> account -> credential JSON.
type Entries = BTreeMap<String, BTreeMap<String, Secret<Vec<u8>>>>;

/// What the file looked like when this process last read or wrote it, to notice
/// another writer instead of overwriting its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        Ok(Stamp {
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

/// The unlocked vault. Dropping it zeroizes the identity (x25519-dalek's `StaticSecret`)
/// and every secret (`Secret`'s Drop).
struct Open {
    identity: x25519::Identity,
    recipient: x25519::Recipient,
    entries: Entries,
    stamp: Stamp,
    /// The generation the next write supersedes: the larger of vault.age's and the sidecar's.
    generation: u64,
    /// Something the user must hear about this vault (an old copy put back).
    warning: Option<String>,
}

/// Secrets in an age-encrypted file, unlocked with a passphrase. A clone is the same store
/// (it shares the unlocked state), so that a call can take one to a blocking thread.
#[derive(Clone)]
pub struct AgeFileStore {
    path: PathBuf,
    log_n: u8,
    state: Arc<Mutex<Option<Open>>>,
    /// Serializes every file access of this process.
    io: Arc<Mutex<()>>,
    /// The newest generation this store has read or written since it was made; kept across
    /// locks, so a copy put back with its sidecar is still noticed.
    seen: Arc<AtomicU64>,
}

impl AgeFileStore {
    /// A locked vault at `path`; nothing is read until `unlock`.
    pub fn new(path: PathBuf) -> AgeFileStore {
        AgeFileStore {
            path,
            log_n: test_log_n().unwrap_or(LOG_N),
            state: Arc::new(Mutex::new(None)),
            io: Arc::new(Mutex::new(())),
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity file next to it.
    pub fn identity_path(&self) -> PathBuf {
        self.path.with_file_name(IDENTITY_FILE_NAME)
    }

    /// The sidecar with the generation and the back-off.
    pub fn state_path(&self) -> PathBuf {
        self.path.with_file_name(STATE_FILE_NAME)
    }

    fn backup_path(&self) -> PathBuf {
        self.path.with_file_name(BACKUP_FILE_NAME)
    }

    /// Whether the vault file exists (an unreadable one counts as existing).
    pub fn exists(&self) -> bool {
        !matches!(std::fs::symlink_metadata(&self.path), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    fn state(&self) -> MutexGuard<'_, Option<Open>> {
        // Critical sections only move values in and out; a panic cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io(&self) -> MutexGuard<'_, ()> {
        // As above: it guards no data.
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads a whole file; `None` when it does not exist.
    fn read(&self, path: &Path) -> Result<Option<(Vec<u8>, Stamp)>, StoreError> {
        let unreadable = |e: io::Error| StoreError::Unavailable {
            backend: NAME,
            reason: format!("cannot read {}: {e}", path.display()),
        };
        let bytes = match std::fs::read(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(unreadable)?,
        };
        Ok(Some((bytes, Stamp::of(path).map_err(unreadable)?)))
    }

    fn corrupt(&self, path: &Path, why: Damage) -> StoreError {
        match why {
            Damage::WrongPassphrase => StoreError::WrongPassphrase,
            Damage::Other(why) => StoreError::Corrupt(format!(
                "the vault {} cannot be read ({why}); it was left as it is. Restore it from a backup, or move it away to start a new vault",
                path.display()
            )),
        }
    }

    fn write_failed(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
        move |e| StoreError::Unavailable {
            backend: NAME,
            reason: format!("cannot write {}: {e}", path.display()),
        }
    }

    /// Opens identity.age with the passphrase; `None` when it does not exist.
    fn read_identity(&self, pass: &Secret<String>) -> Result<Option<x25519::Identity>, StoreError> {
        let path = self.identity_path();
        let Some((bytes, _)) = self.read(&path)? else {
            return Ok(None);
        };
        let plain = file::open_passphrase(&bytes, pass).map_err(|d| self.corrupt(&path, d))?;
        file::parse_identity(&plain)
            .map(Some)
            .map_err(|d| self.corrupt(&path, d))
    }

    /// Seals `identity` with the passphrase into identity.age, atomically.
    fn write_identity(
        &self,
        identity: &x25519::Identity,
        pass: &Secret<String>,
    ) -> Result<(), StoreError> {
        let path = self.identity_path();
        let failed = Self::write_failed(&path);
        let cipher = file::seal_passphrase(&file::identity_text(identity), pass, self.log_n)
            .map_err(&failed)?;
        if let Some(dir) = path.parent() {
            paths::create_private_dir(dir).map_err(&failed)?;
        }
        atomic::write_with(&path, &cipher, 0o600, &mut |stage| {
            testhook::pause(match stage {
                Stage::TempCreated => "identity-temp-created",
                Stage::BeforeRename => "identity-before-rename",
                Stage::AfterRename => "identity-after-rename",
            })
        })
        .map_err(&failed)
    }

    /// Seals `entries` at `generation` to the recipient and replaces vault.age, then records
    /// the generation in the sidecar. No passphrase work.
    fn write_vault(
        &self,
        recipient: &x25519::Recipient,
        generation: u64,
        entries: &Entries,
    ) -> Result<Stamp, StoreError> {
        let failed = Self::write_failed(&self.path);
        let cipher = file::seal_to(&serialize(generation, entries), recipient).map_err(&failed)?;
        if let Some(dir) = self.path.parent() {
            paths::create_private_dir(dir).map_err(&failed)?;
        }
        testhook::pause("vault-before-write");
        atomic::write_with(&self.path, &cipher, 0o600, &mut |stage| {
            testhook::pause(match stage {
                Stage::TempCreated => "vault-temp-created",
                Stage::BeforeRename => "vault-before-rename",
                Stage::AfterRename => "vault-after-rename",
            })
        })
        .map_err(&failed)?;
        self.seen.fetch_max(generation, Ordering::SeqCst);
        let stamp = Stamp::of(&self.path).map_err(&failed)?;
        // After the vault, never before: a crash in between leaves the sidecar behind the
        // vault, which the next unlock repairs, rather than ahead of it, which would look
        // like a rollback.
        let mut s = state::read(&self.state_path()).state();
        s.generation = s.generation.max(generation);
        self.save_state(&s);
        Ok(stamp)
    }

    /// Opens the files with the passphrase: creates a vault when there is none, upgrades one
    /// from before identity.age, and finishes an upgrade a crash interrupted.
    fn open_files(&self, pass: &Secret<String>) -> Result<Open, StoreError> {
        let Some((bytes, stamp)) = self.read(&self.path)? else {
            return self.create(pass);
        };
        match file::seal_of(&bytes).map_err(|d| self.corrupt(&self.path, d))? {
            Seal::Passphrase => upgrade::run(self, pass, &bytes),
            Seal::Identity => {
                let identity = self.read_identity(pass)?.ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the vault {} is sealed to the key in {}, which is missing; restore that file from a backup. The vault was left as it is",
                        self.path.display(),
                        self.identity_path().display()
                    ))
                })?;
                let plain = file::open_identity(&bytes, &identity)
                    .and_then(|p| parse(&p))
                    .map_err(|d| self.corrupt(&self.path, d))?;
                upgrade::finish(self, pass, &plain.entries)?;
                self.opened(identity, plain, stamp)
            }
        }
    }

    /// A new, empty vault. An identity.age left by a creation that crashed is reused when it
    /// opens with this passphrase, and never overwritten.
    fn create(&self, pass: &Secret<String>) -> Result<Open, StoreError> {
        if pass.is_blank() {
            return Err(StoreError::Invalid(
                "the new vault's passphrase is empty".into(),
            ));
        }
        let identity = match self.read_identity(pass) {
            Ok(Some(id)) => id,
            Ok(None) => {
                let id = x25519::Identity::generate();
                self.write_identity(&id, pass)?;
                id
            }
            Err(StoreError::WrongPassphrase) => {
                return Err(StoreError::Invalid(format!(
                    "{} exists without {} and does not open with this passphrase; if it belongs to a vault.age you moved, put that back; else move it away to start a new vault",
                    self.identity_path().display(),
                    self.path.display()
                )))
            }
            Err(e) => return Err(e),
        };
        // After an old vault moved away, the new one still counts up from its generation.
        self.ensure_state();
        let generation = state::read(&self.state_path()).state().generation + 1;
        let recipient = identity.to_public();
        let entries = Entries::new();
        let stamp = self.write_vault(&recipient, generation, &entries)?;
        tracing::info!(path = %self.path.display(), "created a new vault");
        Ok(Open {
            identity,
            recipient,
            entries,
            stamp,
            generation,
            warning: None,
        })
    }

    /// The unlocked state, after checking the vault's generation against this store's memory
    /// (refused when older) and the sidecar (a warning when older).
    fn opened(
        &self,
        identity: x25519::Identity,
        plain: Plain,
        stamp: Stamp,
    ) -> Result<Open, StoreError> {
        let seen = self.seen.load(Ordering::SeqCst);
        if plain.generation < seen {
            return Err(StoreError::RolledBack(format!(
                "{} is an older copy: it is generation {}, but this daemon read or wrote generation {seen} since it started, so it was put back (with its sidecar {}, if that did not tell). Changes made after it are missing from it; it was left locked and as it is. If you did not put it back yourself, find out who did; to use it anyway, restart the daemon",
                self.path.display(),
                plain.generation,
                self.state_path().display()
            )));
        }
        self.seen.fetch_max(plain.generation, Ordering::SeqCst);
        let sp = self.state_path();
        let found = state::read(&sp);
        let mut s = found.state();
        let recorded = s.generation;
        let warning = match found {
            state::Found::Ok(_) if plain.generation < recorded => Some(format!(
                "{} is an older copy: it is generation {}, but generation {recorded} was written here since ({}). Changes made after it are missing from it. It is served as it is, and the next change makes it current; if you did not put it back yourself, find out who did",
                self.path.display(),
                plain.generation,
                sp.display()
            )),
            state::Found::Ok(_) => None,
            state::Found::Missing => Some(format!(
                "{} is missing, so whether {} is an older copy cannot be checked; it was recorded afresh at generation {}",
                sp.display(),
                self.path.display(),
                plain.generation
            )),
            state::Found::Damaged(why) => Some(format!(
                "{} cannot be used ({why}), so whether {} is an older copy cannot be checked; it was recorded afresh at generation {}",
                sp.display(),
                self.path.display(),
                plain.generation
            )),
        };
        if plain.generation > recorded {
            // A crash between writing the vault and the sidecar, or a sidecar lost.
            s.generation = plain.generation;
            self.save_state(&s);
        }
        Ok(Open {
            recipient: identity.to_public(),
            identity,
            entries: plain.entries,
            stamp,
            generation: plain.generation.max(recorded),
            warning,
        })
    }

    /// Applies `change` to a copy of the entries, writes it, then makes it current.
    /// Refuses when the file changed on disk since this process last saw it.
    fn modify(&self, change: impl FnOnce(&mut Entries)) -> Result<(), StoreError> {
        let _io = self.io();
        let (recipient, mut entries, stamp, generation) = {
            let st = self.state();
            let open = st.as_ref().ok_or(StoreError::Locked)?;
            (
                open.recipient.clone(),
                open.entries.clone(),
                open.stamp,
                open.generation,
            )
        };
        if Stamp::of(&self.path).ok() != Some(stamp) {
            return Err(StoreError::Unavailable {
                backend: NAME,
                reason: format!(
                    "{} changed on disk since it was unlocked (another composer-keyd?); run `composer-keyd lock` and `composer-keyd unlock` to reload it",
                    self.path.display()
                ),
            });
        }
        change(&mut entries);
        let stamp = self.write_vault(&recipient, generation + 1, &entries)?;
        // A lock that came in meanwhile wins: the file is written, memory stays wiped.
        if let Some(open) = self.state().as_mut() {
            open.entries = entries;
            open.stamp = stamp;
            open.generation = generation + 1;
            open.warning = None;
        }
        Ok(())
    }

    /// Removes temp files that a killed writer left behind; they hold only ciphertext.
    fn remove_stale_temps(&self) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let prefixes: Vec<String> = [FILE_NAME, IDENTITY_FILE_NAME, STATE_FILE_NAME]
            .iter()
            .map(|n| format!(".{n}.tmp."))
            .collect();
        let ours = format!(".tmp.{}", std::process::id());
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if prefixes.iter().any(|p| n.starts_with(p)) && !n.ends_with(&ours) {
                // Best effort: a temp file that stays holds only ciphertext.
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The blocking calls, for a blocking thread (the `Store` implementation runs them on one)
/// or a tool.
impl AgeFileStore {
    /// Reads a secret from memory; `Locked` until unlocked.
    pub fn get(&self, key: &SecretKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        let st = self.state();
        let open = st.as_ref().ok_or(StoreError::Locked)?;
        Ok(open
            .entries
            .get(key.service())
            .and_then(|m| m.get(&key.account()))
            .cloned())
    }

    /// As `Store::set`, blocking.
    pub fn set(&self, key: &SecretKey, secret: &[u8]) -> Result<(), StoreError> {
        self.set_many(&[(key.clone(), Secret::new(secret.to_vec()))])
    }

    /// As `Store::set_many`, blocking.
    pub fn set_many(&self, items: &[(SecretKey, Secret<Vec<u8>>)]) -> Result<(), StoreError> {
        for (_, secret) in items {
            check_json(secret.expose())?;
        }
        self.modify(|entries| {
            // The copies kept while unlocked live in the locked arena, as unlock's do.
            crate::secret::in_locked_arena(|| {
                for (key, secret) in items {
                    entries
                        .entry(key.service().to_owned())
                        .or_default()
                        .insert(key.account(), secret.clone());
                }
            })
        })
    }

    /// As `Store::delete`, blocking.
    pub fn delete(&self, key: &SecretKey) -> Result<(), StoreError> {
        self.delete_many(std::slice::from_ref(key))
    }

    /// As `Store::delete_many`, blocking.
    pub fn delete_many(&self, keys: &[SecretKey]) -> Result<(), StoreError> {
        {
            let st = self.state();
            let open = st.as_ref().ok_or(StoreError::Locked)?;
            let present = keys.iter().any(|k| {
                open.entries
                    .get(k.service())
                    .is_some_and(|m| m.contains_key(&k.account()))
            });
            if !present {
                return Ok(());
            }
        }
        self.modify(|entries| {
            for k in keys {
                if let Some(m) = entries.get_mut(k.service()) {
                    m.remove(&k.account());
                    if m.is_empty() {
                        entries.remove(k.service());
                    }
                }
            }
        })
    }

    /// Opens the vault with `passphrase`, or creates an empty one when there is none.
    pub fn unlock(&self, passphrase: Option<&Secret<String>>) -> Result<(), StoreError> {
        let pass = passphrase.ok_or_else(|| {
            StoreError::Invalid("the vault needs its passphrase to unlock".into())
        })?;
        let _io = self.io();
        // The decrypted identity and every secret stay for as long as the vault is unlocked:
        // built in the locked arena (large transient buffers such as scrypt's fall back to the
        // ordinary heap and are freed on return).
        let open = crate::secret::in_locked_arena(|| self.with_backoff(|| self.open_files(pass)))?;
        if let Some(w) = &open.warning {
            tracing::warn!("{w}");
        }
        *self.state() = Some(open);
        self.remove_stale_temps();
        Ok(())
    }

    /// Forgets everything decrypted; what it saw (`seen`) stays.
    pub fn lock(&self) {
        // Dropping `Open` zeroizes the identity and every secret.
        *self.state() = None;
    }

    /// Whether it is locked.
    pub fn needs_passphrase(&self) -> bool {
        self.state().is_none()
    }

    /// What the user must hear about the unlocked vault.
    pub fn warning(&self) -> Option<String> {
        self.state().as_ref().and_then(|o| o.warning.clone())
    }

    /// Reseals identity.age with the new passphrase; vault.age is not touched.
    pub fn change_passphrase(
        &self,
        old: &Secret<String>,
        new: &Secret<String>,
    ) -> Result<(), StoreError> {
        if new.is_blank() {
            return Err(StoreError::Invalid("the new passphrase is empty".into()));
        }
        let _io = self.io();
        if !self.exists() {
            return Err(StoreError::Invalid(format!(
                "there is no vault at {} yet; `composer-keyd unlock` creates it",
                self.path.display()
            )));
        }
        // The whole open, not identity.age alone, so that a vault from before identity.age
        // is upgraded first and an interrupted upgrade finished with the old passphrase.
        let open = self.with_backoff(|| self.open_files(old))?;
        self.write_identity(&open.identity, new)?;
        tracing::info!(path = %self.identity_path().display(), "resealed the vault's identity with the new passphrase");
        Ok(())
    }
}

/// Debug builds only: `COMPOSER_KEYD_TEST_SCRYPT_LOG_N` lowers the work factor to keep tests fast.
fn test_log_n() -> Option<u8> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("COMPOSER_KEYD_TEST_SCRYPT_LOG_N")
        .ok()?
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LOG_N).contains(n))
}

mod file;
mod state;
#[cfg(test)]
mod tests;
mod upgrade;

impl AgeFileStore {
    /// Runs a blocking call on a clone of this store, on a blocking thread.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AgeFileStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Call<'static, T> {
        let v = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&v))
                .await
                .unwrap_or_else(|e| {
                    tracing::error!("an age-file call panicked: {e}");
                    Err(StoreError::Unavailable {
                        backend: NAME,
                        reason: "the call failed unexpectedly; see the daemon's log".into(),
                    })
                })
        })
    }
}

/// Reads answer from memory at once; writes, unlock and `passwd` run on a blocking thread.
impl Store for AgeFileStore {
    fn kind(&self) -> BackendKind {
        BackendKind::AgeFile
    }

    fn get<'a>(&'a self, key: &'a SecretKey) -> Call<'a, Option<Secret<Vec<u8>>>> {
        super::ready(AgeFileStore::get(self, key))
    }

    fn set<'a>(&'a self, key: &'a SecretKey, secret: &'a [u8]) -> Call<'a, ()> {
        let item = vec![(key.clone(), Secret::new(secret.to_vec()))];
        self.blocking(move |v| v.set_many(&item))
    }

    fn delete<'a>(&'a self, key: &'a SecretKey) -> Call<'a, ()> {
        let keys = vec![key.clone()];
        self.blocking(move |v| v.delete_many(&keys))
    }

    fn set_many<'a>(&'a self, items: &'a [(SecretKey, Secret<Vec<u8>>)]) -> Call<'a, ()> {
        let items = items.to_vec();
        self.blocking(move |v| v.set_many(&items))
    }

    fn delete_many<'a>(&'a self, keys: &'a [SecretKey]) -> Call<'a, ()> {
        let keys = keys.to_vec();
        self.blocking(move |v| v.delete_many(&keys))
    }

    fn unlock<'a>(&'a self, passphrase: Option<&'a Secret<String>>) -> Call<'a, ()> {
        let pass = passphrase.cloned();
        self.blocking(move |v| v.unlock(pass.as_ref()))
    }

    fn change_passphrase<'a>(
        &'a self,
        old: &'a Secret<String>,
        new: &'a Secret<String>,
    ) -> Call<'a, ()> {
        let (old, new) = (old.clone(), new.clone());
        self.blocking(move |v| v.change_passphrase(&old, &new))
    }

    fn lock(&self) {
        AgeFileStore::lock(self)
    }

    fn needs_passphrase(&self) -> bool {
        AgeFileStore::needs_passphrase(self)
    }

    fn warning(&self) -> Option<String> {
        AgeFileStore::warning(self)
    }
}
