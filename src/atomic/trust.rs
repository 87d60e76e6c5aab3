//! Whether a file may be rewritten in place: every directory above it is the caller's or
//! root's, none can be written by another user, and the file itself is not another user's.

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A path another user could redirect a write through; the write was not done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing to change {target}: {reason}")]
pub struct Untrusted {
    /// The file that was to be written or removed.
    pub target: PathBuf,
    /// Which path on the way is unsafe, and why.
    pub reason: UntrustedReason,
}

/// What is wrong with the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UntrustedReason {
    /// A directory on the way, or the file, belongs to another user (not root).
    OwnedBy {
        /// The directory or file with the foreign owner.
        path: PathBuf,
        /// Its owner's uid.
        uid: u32,
    },
    /// A directory that group or other users can write (a sticky directory counts when it
    /// holds the file itself, since others can still create names in it).
    WritableByOthers {
        /// The directory others can write to.
        path: PathBuf,
        /// Its whole `st_mode`, file type bits included.
        mode: u32,
        /// Its owner's uid.
        uid: u32,
    },
    /// A directory on the way could not be inspected (it vanished, or is unreadable).
    Uninspectable {
        /// The directory whose metadata could not be read.
        path: PathBuf,
    },
}

impl fmt::Display for UntrustedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UntrustedReason::OwnedBy { path, uid } => {
                let who = user_name(*uid);
                write!(
                    f,
                    "{} is owned by {who} (uid {uid}), who could swap it while it is rewritten; run as {who}, or move the file somewhere of your own",
                    path.display()
                )
            }
            UntrustedReason::WritableByOthers { path, mode, uid } => write!(
                f,
                "other users can write {} (mode {:04o}, owner {}) and could swap the file while it is rewritten; fix it with `chmod go-w {}`",
                path.display(),
                mode & 0o7777,
                user_name(*uid),
                path.display()
            ),
            UntrustedReason::Uninspectable { path } => write!(
                f,
                "{} cannot be inspected, so nobody can vouch for it",
                path.display()
            ),
        }
    }
}

/// Wraps an [`Untrusted`] in an `io::Error`, for callers whose errors carry one.
pub fn untrusted(e: Untrusted) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, e)
}

impl Untrusted {
    /// The [`Untrusted`] inside an error from [`super::write()`], if that is why it failed.
    pub fn from_io(e: &io::Error) -> Option<&Untrusted> {
        e.get_ref().and_then(|i| i.downcast_ref::<Untrusted>())
    }
}

/// `path`'s directory with every symlink resolved.
pub(super) fn resolved_dir(path: &Path) -> io::Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir)
}

/// Checks that no user but the caller and root could redirect a write of `file` in `dir`
/// (a resolved directory): OpenSSH's `safe_path` rule, applied to every directory from `dir`
/// up to `/`, with root-owned sticky directories (such as /tmp) admitted above `dir` only.
pub fn check_target(dir: &Path, file: &Path) -> Result<(), Untrusted> {
    let me = crate::paths::euid();
    let refuse = |reason| Untrusted {
        target: file.to_path_buf(),
        reason,
    };
    let trusted_owner = |uid: u32| uid == me || uid == 0;
    for (depth, d) in dir.ancestors().enumerate() {
        let m = std::fs::symlink_metadata(d).map_err(|_| {
            refuse(UntrustedReason::Uninspectable {
                path: d.to_path_buf(),
            })
        })?;
        if !trusted_owner(m.uid()) || m.file_type().is_symlink() {
            return Err(refuse(UntrustedReason::OwnedBy {
                path: d.to_path_buf(),
                uid: m.uid(),
            }));
        }
        let others_write = m.mode() & 0o022 != 0;
        let sticky_root = m.mode() & 0o1000 != 0 && m.uid() == 0;
        if others_write && (depth == 0 || !sticky_root) {
            return Err(refuse(UntrustedReason::WritableByOthers {
                path: d.to_path_buf(),
                mode: m.mode(),
                uid: m.uid(),
            }));
        }
    }
    if let Ok(m) = std::fs::symlink_metadata(file) {
        if !trusted_owner(m.uid()) {
            return Err(refuse(UntrustedReason::OwnedBy {
                path: file.to_path_buf(),
                uid: m.uid(),
            }));
        }
    }
    Ok(())
}

/// The login name of `uid`, or `uid N` when it has none.
fn user_name(uid: u32) -> String {
    crate::trust::user_name(uid).unwrap_or_else(|| format!("uid {uid}"))
}
