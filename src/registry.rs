//! The doors' registry files (`grants.json`, `forwards.json`): one JSON document in the
//! private data dir, read whole, changed under an exclusive lock beside it so that two
//! changes at once both land, and written atomically 0600; and the names doors' sockets take.

use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

/// Why a registry file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file is not the JSON we write.
    #[error("the {kind} registry {path} is not valid: {source}")]
    Parse {
        /// Which registry (`grant`, `forward`).
        kind: &'static str,
        /// The registry file.
        path: PathBuf,
        /// What the JSON parser said (it quotes no secret: a registry holds none).
        source: serde_json::Error,
    },
    /// Reading, writing or locking it failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl FileError {
    /// An OS error while `what` was done to `path`.
    pub fn io(what: &'static str, path: &Path, source: std::io::Error) -> FileError {
        FileError::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }
}

/// Reads registry `kind` at `path`; a missing file is an empty registry.
pub fn load<T: DeserializeOwned + Default>(
    kind: &'static str,
    path: &Path,
) -> Result<T, FileError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|source| FileError::Parse {
            kind,
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(FileError::io("reading", path, e)),
    }
}

/// Loads, changes and, when the change changed anything, saves the registry, all under the
/// lock: without it the second of two concurrent `add`s would drop the first one's entry.
pub fn update<T, R, E>(
    kind: &'static str,
    path: &Path,
    change: impl FnOnce(&mut T) -> Result<R, E>,
) -> Result<R, E>
where
    T: Serialize + DeserializeOwned + Default + PartialEq + Clone,
    E: From<FileError>,
{
    let _lock = lock(path)?;
    let mut reg: T = load(kind, path)?;
    let before = reg.clone();
    let out = change(&mut reg)?;
    if reg != before {
        let bytes = serde_json::to_vec_pretty(&reg).expect("a registry serializes");
        crate::atomic::write(path, &bytes, 0o600).map_err(|e| FileError::io("writing", path, e))?;
    }
    Ok(out)
}

/// A door's socket: `PREFIX-NAME.sock` beside the main socket, in its 0700 directory, so
/// that only what the door was made for (a bind mount, the user's own `ssh`) reaches it.
pub fn socket_path(main_socket: &Path, prefix: &str, name: &str) -> PathBuf {
    let dir = main_socket.parent().unwrap_or(Path::new("."));
    dir.join(format!("{prefix}-{name}.sock"))
}

/// Whether `c` may be in a door's name (which names its socket file).
pub fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `name` can name a door: 1 to 64 of [`name_char`].
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(name_char)
}

/// Holds `NAME.lock` beside the registry until dropped. The directory is the user's private
/// data dir (created 0700 when missing); the lock file is never followed through a symlink.
fn lock(path: &Path) -> Result<std::fs::File, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let lock_path = path.with_extension("lock");
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir(dir).map_err(|e| FileError::io("creating", dir, e))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(|e| FileError::io("opening", &lock_path, e))?;
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(FileError::io("locking", &lock_path, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_a_socket_file_can_take() {
        assert!(valid_name("uid33-shop_2"));
        for bad in ["", "a/b", "a.b", "..", "é", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(
            socket_path(Path::new("/run/u/ck/agent.sock"), "grant", "a"),
            Path::new("/run/u/ck/grant-a.sock")
        );
    }

    #[test]
    fn a_missing_file_is_empty_and_garbage_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let empty: Vec<String> = load("test", &path).unwrap();
        assert!(empty.is_empty());
        std::fs::write(&path, b"{not json").unwrap();
        let e = load::<Vec<String>>("test", &path).unwrap_err();
        assert!(e.to_string().starts_with("the test registry "), "{e}");
    }
}
