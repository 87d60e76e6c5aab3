//! Atomic, durable file writes: temp file in the same directory, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

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

/// Replaces `path` with `bytes` so that a crash at any instant leaves either the old
/// file or the new one, never a mix. The new file gets `mode`.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_with(path, bytes, mode, &mut |_| {})
}

/// [`write`], calling `at` at each [`Stage`].
pub fn write_with(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    at: &mut dyn FnMut(Stage),
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode; a mode we were asked for is set exactly.
        fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        at(Stage::TempCreated);
        f.write_all(bytes)?;
        f.sync_all()?;
        at(Stage::BeforeRename);
        fs::rename(&tmp, path)?;
        at(Stage::AfterRename);
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: a leftover temp file holds no more than the target would.
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_with_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.json");
        write(&p, b"one", 0o600).unwrap();
        write(&p, b"two", 0o640).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
