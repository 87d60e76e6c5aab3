//! The vault backend: every secret in one age file encrypted to a passphrase (scrypt), decrypted only in the daemon's memory.
//!
//! The plaintext is JSON, `{"format":1,"credentials":{SERVICE:{ACCOUNT:CREDENTIAL}}}`, so
//! `age -d vault.age` shows a user their credentials in an emergency. Every change
//! re-encrypts the whole file and replaces it atomically; a file that does not decrypt
//! or parse is reported and never written over.

use super::{SlotKey, Store, StoreError};
use crate::atomic::{self, Stage};
use crate::paths;
use crate::protocol::BackendKind;
use crate::secret::Secret;
use file::{check_json, decrypt, encrypt, parse, serialize, Damage};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The vault's file name in the data directory.
pub const FILE_NAME: &str = "vault.age";
/// The plaintext's format revision.
const FORMAT: u32 = 1;
/// scrypt work factor N = 2^18: what `age -p` itself uses, so the age CLI reads our files.
const LOG_N: u8 = 18;
/// The largest work factor accepted on reading: the age CLI's own limit.
const MAX_LOG_N: u8 = 22;
/// The longest pause after a wrong passphrase.
const MAX_DELAY: Duration = Duration::from_secs(16);

const NAME: &str = "vault";

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

/// The decrypted vault, present only while unlocked. Dropping it zeroizes every secret.
struct Open {
    passphrase: Secret<String>,
    entries: Entries,
    stamp: Stamp,
}

/// Serializes file access and counts failed passphrases.
#[derive(Default)]
struct Io {
    failures: u32,
}

/// Secrets in an age-encrypted file, unlocked with a passphrase.
pub struct VaultStore {
    path: PathBuf,
    log_n: u8,
    state: Mutex<Option<Open>>,
    io: Mutex<Io>,
}

impl VaultStore {
    /// A locked vault at `path`; nothing is read until `unlock`.
    pub fn new(path: PathBuf) -> VaultStore {
        VaultStore {
            path,
            log_n: test_log_n().unwrap_or(LOG_N),
            state: Mutex::new(None),
            io: Mutex::new(Io::default()),
        }
    }

    /// The vault file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the vault file exists (an unreadable one counts as existing).
    pub fn exists(&self) -> bool {
        !matches!(std::fs::symlink_metadata(&self.path), Err(e) if e.kind() == io::ErrorKind::NotFound)
    }

    fn state(&self) -> MutexGuard<'_, Option<Open>> {
        // Critical sections only move values in and out; a panic cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn io(&self) -> MutexGuard<'_, Io> {
        // As above: the guarded counter is always consistent.
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decrypts and parses the file. Wrong passphrases cost a growing pause.
    fn read_file(
        &self,
        io: &mut Io,
        pass: &Secret<String>,
    ) -> Result<(Entries, Stamp), StoreError> {
        let result = self.decrypt_file(pass);
        match &result {
            Err(StoreError::WrongPassphrase) => {
                io.failures = io.failures.saturating_add(1);
                let delay = Duration::from_secs(1 << (io.failures - 1).min(4)).min(MAX_DELAY);
                tracing::warn!(
                    failures = io.failures,
                    "wrong vault passphrase; pausing {delay:?}"
                );
                std::thread::sleep(delay);
            }
            Ok(_) => io.failures = 0,
            Err(_) => {}
        }
        result
    }

    fn decrypt_file(&self, pass: &Secret<String>) -> Result<(Entries, Stamp), StoreError> {
        let unreadable = |e: io::Error| StoreError::Unavailable {
            backend: NAME,
            reason: format!("cannot read {}: {e}", self.path.display()),
        };
        let mut file = std::fs::File::open(&self.path).map_err(unreadable)?;
        let stamp = Stamp::of(&self.path).map_err(unreadable)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(unreadable)?;
        let plain = decrypt(&bytes, pass).map_err(|why| self.corrupt(why))?;
        let entries = parse(&plain).map_err(|why| self.corrupt(why))?;
        Ok((entries, stamp))
    }

    fn corrupt(&self, why: Damage) -> StoreError {
        match why {
            Damage::WrongPassphrase => StoreError::WrongPassphrase,
            Damage::Other(why) => StoreError::Corrupt(format!(
                "the vault {} cannot be read ({why}); it was left as it is. Restore it from a backup, or move it away to start a new vault",
                self.path.display()
            )),
        }
    }

    /// Encrypts `entries` to `pass` and replaces the file atomically.
    fn write_file(&self, pass: &Secret<String>, entries: &Entries) -> Result<Stamp, StoreError> {
        let failed = |e: io::Error| StoreError::Unavailable {
            backend: NAME,
            reason: format!("cannot write {}: {e}", self.path.display()),
        };
        let plain = serialize(entries);
        let cipher = encrypt(&plain, pass, self.log_n).map_err(failed)?;
        if let Some(dir) = self.path.parent() {
            paths::create_private_dir(dir).map_err(failed)?;
        }
        test_pause("vault-before-write");
        atomic::write_with(&self.path, &cipher, 0o600, &mut |stage| {
            test_pause(match stage {
                Stage::TempCreated => "vault-temp-created",
                Stage::BeforeRename => "vault-before-rename",
                Stage::AfterRename => "vault-after-rename",
            })
        })
        .map_err(failed)?;
        Stamp::of(&self.path).map_err(failed)
    }

    /// Applies `change` to a copy of the entries, writes it, then makes it current.
    /// Refuses when the file changed on disk since this process last saw it.
    fn modify(&self, change: impl FnOnce(&mut Entries)) -> Result<(), StoreError> {
        let _io = self.io();
        let (pass, mut entries, stamp) = {
            let st = self.state();
            let open = st.as_ref().ok_or(StoreError::Locked)?;
            (open.passphrase.clone(), open.entries.clone(), open.stamp)
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
        let stamp = self.write_file(&pass, &entries)?;
        // A lock that came in meanwhile wins: the file is written, memory stays wiped.
        if let Some(open) = self.state().as_mut() {
            open.entries = entries;
            open.stamp = stamp;
        }
        Ok(())
    }

    /// Removes temp files that a killed writer left behind; they hold only ciphertext.
    fn remove_stale_temps(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let prefix = format!(".{}.tmp.", name.to_string_lossy());
        let ours = format!("{prefix}{}", std::process::id());
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) && n != ours {
                // Best effort: a temp file that stays holds only ciphertext.
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Store for VaultStore {
    fn kind(&self) -> BackendKind {
        BackendKind::Vault
    }

    fn get(&self, key: &SlotKey) -> Result<Option<Secret<Vec<u8>>>, StoreError> {
        let st = self.state();
        let open = st.as_ref().ok_or(StoreError::Locked)?;
        Ok(open
            .entries
            .get(key.service())
            .and_then(|m| m.get(&key.account()))
            .cloned())
    }

    fn set(&self, key: &SlotKey, secret: &[u8]) -> Result<(), StoreError> {
        self.set_many(&[(key.clone(), Secret::new(secret.to_vec()))])
    }

    fn set_many(&self, items: &[(SlotKey, Secret<Vec<u8>>)]) -> Result<(), StoreError> {
        for (_, secret) in items {
            check_json(secret.expose())?;
        }
        self.modify(|entries| {
            for (key, secret) in items {
                entries
                    .entry(key.service().to_owned())
                    .or_default()
                    .insert(key.account(), secret.clone());
            }
        })
    }

    fn delete(&self, key: &SlotKey) -> Result<(), StoreError> {
        self.delete_many(std::slice::from_ref(key))
    }

    fn delete_many(&self, keys: &[SlotKey]) -> Result<(), StoreError> {
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

    /// Decrypts the vault with `passphrase`, or creates an empty one when there is no file.
    fn unlock(&self, passphrase: Option<&Secret<String>>) -> Result<(), StoreError> {
        let pass = passphrase.ok_or_else(|| {
            StoreError::Invalid("the vault needs its passphrase to unlock".into())
        })?;
        let mut io = self.io();
        let (entries, stamp) = if self.exists() {
            self.read_file(&mut io, pass)?
        } else {
            if pass.is_blank() {
                return Err(StoreError::Invalid(
                    "the new vault's passphrase is empty".into(),
                ));
            }
            let entries = Entries::new();
            let stamp = self.write_file(pass, &entries)?;
            tracing::info!(path = %self.path.display(), "created a new vault");
            (entries, stamp)
        };
        *self.state() = Some(Open {
            passphrase: pass.clone(),
            entries,
            stamp,
        });
        self.remove_stale_temps();
        Ok(())
    }

    fn lock(&self) {
        // Dropping `Open` zeroizes the passphrase and every secret (Secret's Drop).
        *self.state() = None;
    }

    fn needs_passphrase(&self) -> bool {
        self.state().is_none()
    }

    fn change_passphrase(
        &self,
        old: &Secret<String>,
        new: &Secret<String>,
    ) -> Result<(), StoreError> {
        if new.is_blank() {
            return Err(StoreError::Invalid("the new passphrase is empty".into()));
        }
        let mut io = self.io();
        if !self.exists() {
            return Err(StoreError::Invalid(format!(
                "there is no vault at {} yet; `composer-keyd unlock` creates it",
                self.path.display()
            )));
        }
        let (entries, _) = self.read_file(&mut io, old)?;
        let stamp = self.write_file(new, &entries)?;
        if let Some(open) = self.state().as_mut() {
            open.passphrase = new.clone();
            open.entries = entries;
            open.stamp = stamp;
        }
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

/// Debug builds only: stops the writer at `stage` when `COMPOSER_KEYD_TEST_PAUSE` names it
/// (`STAGE`, or `STAGE@N` for its Nth time in this process), so that a crash test can kill
/// the process there.
fn test_pause(stage: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HITS: AtomicU32 = AtomicU32::new(0);
    if !cfg!(debug_assertions) {
        return;
    }
    let Ok(want) = std::env::var("COMPOSER_KEYD_TEST_PAUSE") else {
        return;
    };
    let (name, nth) = match want.split_once('@') {
        Some((n, k)) => (n, k.parse().unwrap_or(1)),
        None => (want.as_str(), 1),
    };
    if name == stage && HITS.fetch_add(1, Ordering::SeqCst) + 1 >= nth {
        tracing::warn!("test hook: paused at {stage}");
        std::thread::sleep(Duration::from_secs(600));
    }
}

mod file;
#[cfg(test)]
mod tests;
