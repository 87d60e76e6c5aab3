//! Atomic, durable file writes: a random temp file created `O_EXCL|O_NOFOLLOW` in the same
//! directory, `fchmod` on its descriptor, fsync, rename, fsync the directory; and the refusal to
//! write where another user could redirect the write.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod leftover;
mod trust;

pub use leftover::{find_leftovers, leftover_base, remove_leftovers, TEMP_SUFFIX};
pub use trust::{check_target, untrusted, Untrusted, UntrustedReason};

/// A point inside [`write_with`], for crash tests that stop the process there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The temp file exists and is still empty.
    TempCreated,
    /// The temp file holds the new bytes and is synced; the old file is still in place.
    BeforeRename,
    /// The new file is in place; the directory is not synced yet.
    AfterRename,
}

/// How a write treats a directory that is not the caller's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shared {
    /// Refuse a directory (or file) that another user owns or can write.
    #[default]
    Refuse,
    /// The user said explicitly that such a directory is fine. The write is still done
    /// with a fresh `O_EXCL` temp file, so a planted link is never followed.
    Allow,
}

/// Replaces `path` with `bytes` so that a crash at any instant leaves either the old
/// file or the new one, never a mix. The new file gets `mode` without setuid, setgid or
/// sticky bits. Refuses (an [`Untrusted`] inside the `io::Error`) a path another user could
/// redirect.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_with(path, bytes, mode, &mut |_| {})
}

/// [`write()`], calling `at` at each [`Stage`].
pub fn write_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    at: &mut dyn FnMut(Stage),
) -> io::Result<()> {
    write_opts(path, bytes, mode, Shared::Refuse, at)
}

/// [`write_with`], with the caller's choice about shared directories.
pub fn write_opts(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    shared: Shared,
    at: &mut dyn FnMut(Stage),
) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // Working in the resolved directory means every name used below was checked.
    let dir = trust::resolved_dir(path)?;
    if shared == Shared::Refuse {
        check_target(&dir, &dir.join(name)).map_err(untrusted)?;
    }
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .rand_bytes(12)
        .make_in(&dir, |p| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o600)
                .open(p)
        })?;
    // fchmod on the descriptor: the umask may have narrowed the mode, and a path could be
    // swapped between open and chmod. Only permission bits, never setuid/setgid/sticky.
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode & 0o777))?;
    at(Stage::TempCreated);
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    at(Stage::BeforeRename);
    // On error the temp file is removed when `tmp` drops; only a kill leaves one behind.
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    at(Stage::AfterRename);
    File::open(&dir)?.sync_all()
}

/// Removes `path` (a file in a directory the caller may change) and syncs its directory,
/// with the same refusal as [`write()`].
pub fn remove(path: &Path, shared: Shared) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = trust::resolved_dir(path)?;
    if shared == Shared::Refuse {
        check_target(&dir, &dir.join(name)).map_err(untrusted)?;
    }
    fs::remove_file(dir.join(name))?;
    File::open(&dir)?.sync_all()
}

/// The directory `path` is in, with symlinks resolved: where its temp files go.
pub fn dir_of(path: &Path) -> io::Result<PathBuf> {
    trust::resolved_dir(path)
}

#[cfg(test)]
mod tests;
