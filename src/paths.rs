//! Where things live (socket, config, data, state) and the safety checks on the socket directory.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Overrides the socket path.
pub const ENV_SOCK: &str = "COMPOSER_KEYD_SOCK";

/// Why a socket directory is refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// The socket directory is a symlink; holds its path.
    #[error("the socket directory {0} is a symlink; remove it, or set COMPOSER_KEYD_SOCK to a path in a private directory")]
    Symlink(PathBuf),
    /// The path exists but is not a directory; holds it.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The socket directory belongs to another user.
    #[error("the socket directory {path} is owned by uid {owner}, not by you (uid {me}); remove it or set COMPOSER_KEYD_SOCK")]
    WrongOwner {
        /// The socket directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The caller's effective uid.
        me: u32,
    },
    #[error(
        "the socket directory {path} has mode {mode:o}; it must be 0700 (run `chmod 700 {path}`)"
    )]
    /// The socket directory grants group or other permissions.
    WrongMode {
        /// The socket directory.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The socket directory could not be created, opened or inspected.
    #[error("cannot use the socket directory {path}: {source}")]
    Io {
        /// The socket directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Neither XDG variables nor `HOME` give a directory to use.
    #[error("no home directory: set HOME")]
    NoHome,
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    crate::trust::euid()
}

/// The socket path: `$COMPOSER_KEYD_SOCK`, else `$XDG_RUNTIME_DIR/composer-keyd/agent.sock`
/// when `$XDG_RUNTIME_DIR` is a directory of this user's, else
/// `${TMPDIR:-/tmp}/composer-keyd-$UID/agent.sock`: the rule the plugin and `composer-keyd
/// ssh` follow too, so a login without PAM, `su` or `sudo` that leaves another user's or
/// no runtime dir in the environment gives every part the same path.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os(ENV_SOCK).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let dir = runtime_socket_dir().unwrap_or_else(tmp_socket_dir);
    dir.join("agent.sock")
}

/// `$XDG_RUNTIME_DIR/composer-keyd`, when XDG_RUNTIME_DIR is a directory this user owns.
fn runtime_socket_dir() -> Option<PathBuf> {
    runtime_socket_dir_in(&std::env::var_os("XDG_RUNTIME_DIR")?)
}

/// `rt/composer-keyd` when `rt` is a directory this user owns.
fn runtime_socket_dir_in(rt: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    if rt.is_empty() {
        return None;
    }
    let meta = std::fs::metadata(rt).ok()?;
    (meta.is_dir() && meta.uid() == euid()).then(|| Path::new(&rt).join("composer-keyd"))
}

/// `${TMPDIR:-/tmp}/composer-keyd-$EUID`.
fn tmp_socket_dir() -> PathBuf {
    let tmp = std::env::var_os("TMPDIR")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    tmp.join(format!("composer-keyd-{}", euid()))
}

/// The directories we create for the socket ourselves, which must be ours and 0700 however
/// the socket path was configured.
pub fn default_socket_dirs() -> Vec<PathBuf> {
    runtime_socket_dir()
        .into_iter()
        .chain([tmp_socket_dir()])
        .collect()
}

fn project_dirs() -> Result<directories::ProjectDirs, PathError> {
    directories::ProjectDirs::from("", "", "composer-keyd").ok_or(PathError::NoHome)
}

/// `$XDG_CONFIG_HOME/composer-keyd` (or the platform's equivalent).
pub fn config_dir() -> Result<PathBuf, PathError> {
    Ok(project_dirs()?.config_dir().to_path_buf())
}

/// `$XDG_DATA_HOME/composer-keyd` (or the platform's equivalent): the index and the vault.
pub fn data_dir() -> Result<PathBuf, PathError> {
    Ok(project_dirs()?.data_dir().to_path_buf())
}

/// `$XDG_STATE_HOME/composer-keyd` (the data dir where the platform has no state dir): logs.
pub fn state_dir() -> Result<PathBuf, PathError> {
    let dirs = project_dirs()?;
    Ok(dirs.state_dir().unwrap_or(dirs.data_dir()).to_path_buf())
}

/// Where `shim install` keeps the plugin's copy, under the data dir.
pub const PLUGIN_DIR_NAME: &str = "composer-plugin";

/// The directories that hold our files and must be private to us: config, data, state and
/// the plugin's copy (Composer loads PHP from it, so a stranger's edit there runs as us).
pub fn private_dirs() -> Result<Vec<PathBuf>, PathError> {
    let data = data_dir()?;
    let plugin = data.join(PLUGIN_DIR_NAME);
    let mut dirs = vec![
        config_dir()?,
        data,
        state_dir()?,
        plugin.join("src"),
        plugin,
    ];
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Each of [`private_dirs`] that fails the rule of [`crate::trust::check_private_dir`]
/// (ours, not writable by others, not a symlink, reached through our or root's directories),
/// with why. Directories that do not exist yet pass: they are created private.
pub fn unsafe_private_dirs() -> Result<Vec<(PathBuf, crate::trust::CheckError)>, PathError> {
    Ok(private_dirs()?
        .into_iter()
        .filter_map(|d| crate::trust::check_private_dir(&d).err().map(|e| (d, e)))
        .collect())
}

/// The index file.
pub fn index_path() -> Result<PathBuf, PathError> {
    Ok(data_dir()?.join("index.json"))
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist yet.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates the socket directory if needed, then refuses it unless it is a real
/// directory, owned by us, with no group or other permissions. Race-free: the checks and
/// the mode change act on a descriptor opened without following a symlink, so nothing
/// swapped in between `mkdir` and them can be changed or trusted by mistake.
pub fn prepare_socket_dir(dir: &Path) -> Result<(), PathError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |source| PathError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        if fs::symlink_metadata(parent).is_err() {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
    }
    let created = match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(io_err(e)),
    };
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            // Linux answers ENOTDIR for a symlink opened with O_DIRECTORY|O_NOFOLLOW; the
            // lstat only picks the message, the refusal is already decided.
            Some(libc::ELOOP | libc::ENOTDIR) if is_symlink(dir) => {
                PathError::Symlink(dir.to_path_buf())
            }
            Some(libc::ENOTDIR) => PathError::NotADirectory(dir.to_path_buf()),
            _ => io_err(e),
        })?;
    let meta = handle.metadata().map_err(io_err)?;
    let me = euid();
    if meta.uid() != me {
        return Err(PathError::WrongOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    if created {
        // The umask can only narrow 0700, but set it exactly as rbw does; on the descriptor,
        // so it lands on the directory we just checked.
        handle
            .set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(io_err)?;
    }
    let mode = handle.metadata().map_err(io_err)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PathError::WrongMode {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

fn is_symlink(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Checks an existing socket directory without changing it.
pub fn check_socket_dir(dir: &Path) -> Result<(), PathError> {
    let meta = fs::symlink_metadata(dir).map_err(|source| PathError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(PathError::Symlink(dir.to_path_buf()));
    }
    if !meta.is_dir() {
        return Err(PathError::NotADirectory(dir.to_path_buf()));
    }
    let me = euid();
    if meta.uid() != me {
        return Err(PathError::WrongOwner {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            me,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PathError::WrongMode {
            path: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_dir_counts_only_when_it_is_a_directory_of_ours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().to_path_buf();
        assert_eq!(
            runtime_socket_dir_in(ours.as_os_str()),
            Some(ours.join("composer-keyd"))
        );
        let file = ours.join("file");
        std::fs::write(&file, b"").unwrap();
        for rt in [file, ours.join("missing"), PathBuf::new()] {
            assert_eq!(runtime_socket_dir_in(rt.as_os_str()), None, "{rt:?}");
        }
        // Another user's: a directory given to nobody when we are root, else root's /.
        let theirs = if euid() == 0 {
            let d = ours.join("theirs");
            std::fs::create_dir(&d).unwrap();
            std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
            d
        } else {
            PathBuf::from("/")
        };
        assert_eq!(runtime_socket_dir_in(theirs.as_os_str()), None);
    }

    use super::*;

    #[test]
    fn socket_dir_checks() {
        let t = tempfile::tempdir().unwrap();
        let good = t.path().join("good");
        prepare_socket_dir(&good).unwrap();
        assert_eq!(fs::metadata(&good).unwrap().mode() & 0o777, 0o700);

        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            prepare_socket_dir(&open),
            Err(PathError::WrongMode { .. })
        ));

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&good, &link).unwrap();
        assert!(matches!(
            prepare_socket_dir(&link),
            Err(PathError::Symlink(_))
        ));

        let file = t.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(matches!(
            check_socket_dir(&file),
            Err(PathError::NotADirectory(_))
        ));
    }
}
