//! Upgrading a vault file from the passphrase-sealed format to identity.age + vault.age (a file-format upgrade, not a `migrate` between backends), so that a kill -9 at any step leaves the old or the new state.
//!
//! The steps, each of which the next unlock recognises and completes:
//!
//! 1. identity.age is written, and the sidecar if there is none (vault.age is still the old
//!    file, so the next unlock starts again, reusing this identity);
//! 2. the old vault.age gets a second name, `vault.age.pre-identity` (a hard link: no copy,
//!    and the file itself never changes);
//! 3. the new vault.age replaces the old name atomically, then the sidecar gets its generation;
//! 4. both new files are read back from disk and must give the same credentials;
//! 5. the second name is removed.
//!
//! After a crash in 3 to 5, vault.age is new and the backup still exists: the next unlock
//! checks the new pair against the backup again before removing it.

use super::file::{self, parse};
use super::{state, AgeFileStore, Entries, Open};
use crate::secret::Secret;
use crate::store::StoreError;
use crate::testhook::pause;
use age::x25519;
use std::path::Path;

/// Upgrades the old-format vault `bytes` (just read from vault.age) and returns it unlocked.
pub(super) fn run(
    v: &AgeFileStore,
    pass: &Secret<String>,
    bytes: &[u8],
) -> Result<Open, StoreError> {
    let old = file::open_passphrase(bytes, pass)
        .and_then(|p| parse(&p))
        .map_err(|d| v.corrupt(&v.path, d))?;
    tracing::info!(path = %v.path.display(), "upgrading the vault to identity.age + vault.age");
    let identity = match v.read_identity(pass) {
        Ok(Some(id)) => id,
        Ok(None) => {
            let id = x25519::Identity::generate();
            v.write_identity(&id, pass)?;
            id
        }
        Err(StoreError::WrongPassphrase) => {
            return Err(StoreError::Invalid(format!(
                "{} exists and does not open with the passphrase that opens {}; move it away and unlock again to upgrade the vault. Both were left as they are",
                v.identity_path().display(),
                v.path.display()
            )))
        }
        Err(e) => return Err(e),
    };
    pause("upgrade-identity-written");
    v.ensure_state();
    keep_backup(v, bytes)?;
    pause("upgrade-backup-kept");
    let generation = state::read(&v.state_path())
        .state()
        .generation
        .max(old.generation)
        + 1;
    let recipient = identity.to_public();
    let stamp = v.write_vault(&recipient, generation, &old.entries)?;
    pause("upgrade-written");
    if let Err(e) = verify(v, pass, &old.entries) {
        // Put the old file back: it is what the user had, and it is known to open.
        let _ = std::fs::rename(v.backup_path(), &v.path);
        sync_dir(&v.path);
        return Err(e);
    }
    pause("upgrade-verified");
    remove_backup(v)?;
    tracing::info!(path = %v.path.display(), generation, "upgraded the vault; scrypt now runs only at unlock and passwd");
    Ok(Open {
        identity,
        recipient,
        entries: old.entries,
        stamp,
        generation,
        warning: None,
    })
}

/// After a crash that left the new vault.age with the backup still there: the new pair
/// (just opened, `entries`) must hold what the backup holds before the backup goes.
pub(super) fn finish(
    v: &AgeFileStore,
    pass: &Secret<String>,
    entries: &Entries,
) -> Result<(), StoreError> {
    let backup = v.backup_path();
    let Some((bytes, _)) = v.read(&backup)? else {
        return Ok(());
    };
    let old = file::open_passphrase(&bytes, pass)
        .and_then(|p| parse(&p))
        .map_err(|d| v.corrupt(&backup, d))?;
    if old.entries != *entries {
        return Err(StoreError::Corrupt(format!(
            "an interrupted upgrade left {} and {}, which hold different credentials; both were left as they are. Move one of them away",
            backup.display(),
            v.path.display()
        )));
    }
    remove_backup(v)?;
    tracing::info!(path = %v.path.display(), "finished an interrupted vault upgrade");
    Ok(())
}

/// Gives the old vault.age its second name, unless an earlier attempt already did.
fn keep_backup(v: &AgeFileStore, bytes: &[u8]) -> Result<(), StoreError> {
    let backup = v.backup_path();
    match v.read(&backup)? {
        None => {
            std::fs::hard_link(&v.path, &backup).map_err(AgeFileStore::write_failed(&backup))?;
            sync_dir(&backup);
            Ok(())
        }
        Some((old, _)) if old == bytes => Ok(()),
        Some(_) => Err(StoreError::Corrupt(format!(
            "{} exists and differs from the vault {} to upgrade; both were left as they are. Move it away and unlock again",
            backup.display(),
            v.path.display()
        ))),
    }
}

fn remove_backup(v: &AgeFileStore) -> Result<(), StoreError> {
    let backup = v.backup_path();
    std::fs::remove_file(&backup).map_err(AgeFileStore::write_failed(&backup))?;
    sync_dir(&backup);
    Ok(())
}

/// Reads identity.age and vault.age back from disk, not from the memory that wrote them.
fn verify(v: &AgeFileStore, pass: &Secret<String>, entries: &Entries) -> Result<(), StoreError> {
    let differ = |what: &str| {
        StoreError::Corrupt(format!(
            "the upgraded vault did not read back the same ({what}); the old {} was put back as it was",
            v.path.display()
        ))
    };
    let identity = v
        .read_identity(pass)?
        .ok_or_else(|| differ("identity.age is missing"))?;
    let (bytes, _) = v
        .read(&v.path)?
        .ok_or_else(|| differ("vault.age is missing"))?;
    let plain = file::open_identity(&bytes, &identity)
        .and_then(|p| parse(&p))
        .map_err(|_| differ("vault.age does not open with identity.age"))?;
    if plain.entries != *entries {
        return Err(differ("other credentials"));
    }
    Ok(())
}

/// Makes a rename or unlink in the directory durable. Best effort: the step it follows
/// has already happened, and the next unlock recognises either state.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}
