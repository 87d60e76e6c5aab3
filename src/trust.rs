//! Who may have put a socket or directory where we look: the lstat walk from `/` (OpenSSH's
//! `safe_path`), the peer credentials of a connected socket, and the check of a process
//! before we signal it.
//!
//! The rule is the one the PHP plugin applies too: before a client sends one byte, only the
//! caller (euid E) or root could have put the socket where it is.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one walk before giving up, as the kernel's ELOOP limit.
const MAX_LINKS: usize = 40;

/// Where the socket's directory comes from, which decides how strict the check of it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A directory we create ourselves (`$XDG_RUNTIME_DIR/composer-keyd`,
    /// `${TMPDIR:-/tmp}/composer-keyd-$EUID`): it must be ours, mode 0700, not a symlink.
    Default,
    /// Any other directory (an explicit `COMPOSER_KEYD_SOCK`): ours or root's (a container's
    /// `/run`, where root bind-mounted the host's socket), never writable by others.
    Explicit,
}

impl Placement {
    /// [`Placement::Default`] when `socket` sits in one of `default_dirs`.
    pub fn of(socket: &Path, default_dirs: &[PathBuf]) -> Placement {
        let parent = absolute(socket).and_then(|p| p.parent().map(Path::to_path_buf));
        match parent {
            Some(p)
                if default_dirs
                    .iter()
                    .any(|d| absolute(d).as_deref() == Some(&p)) =>
            {
                Placement::Default
            }
            _ => Placement::Explicit,
        }
    }
}

/// A socket that passed the walk, and what it allows as the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSocket {
    /// The socket file's owner.
    pub owner: u32,
    /// Admitted through a root-owned parent directory, whatever its owner: only root could
    /// have put it there (the container bind-mount case).
    pub via_root_dir: bool,
}

impl TrustedSocket {
    /// Whether a peer running as `uid` may be the daemon behind this socket, for caller `me`.
    pub fn admits_peer(&self, uid: u32, me: u32) -> bool {
        uid == me || uid == 0 || (self.via_root_dir && uid == self.owner)
    }
}

/// What the walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Every step passed.
    Trusted(TrustedSocket),
    /// The socket or one of its directories does not exist (yet); every step before it passed.
    Missing,
}

/// The walk could not be done.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A step of the walk failed its check.
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
    /// A path on the way could not be inspected (other than not existing).
    #[error("cannot inspect {}: {source}", path.display())]
    Io {
        /// The path whose metadata could not be read.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// A uid, with its user name where the system knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(
    /// The numeric uid.
    pub u32,
);

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match user_name(self.0) {
            Some(name) => write!(f, "uid {} ({name})", self.0),
            None => write!(f, "uid {}", self.0),
        }
    }
}

/// Why a path is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Owned by someone other than the caller (or root, where root is allowed).
    Owner {
        /// The path with the wrong owner.
        path: PathBuf,
        /// Who owns it.
        owner: Owner,
        /// Whether a root owner would have passed: true for directories on the way, false for
        /// the private directory or the socket itself.
        root_allowed: bool,
    },
    /// Writable by group or others (and not a root-owned sticky directory on the way).
    Writable {
        /// The path others can write to.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// A private directory with group or other permission bits.
    Mode {
        /// The directory that should be private.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// A shared sticky directory (such as /tmp) cannot hold the socket itself.
    Sticky {
        /// The sticky directory the socket would sit in.
        path: PathBuf,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// A symlink owned by another user.
    LinkOwner {
        /// The symlink.
        path: PathBuf,
        /// Who owns it.
        owner: Owner,
    },
    /// A symlink where a real directory is required.
    Symlink {
        /// The symlink.
        path: PathBuf,
    },
    /// A file where a directory is expected on the way.
    NotADirectory {
        /// The path that is not a directory.
        path: PathBuf,
    },
    /// The socket's path holds something else, or a symlink.
    NotASocket {
        /// The path that should be the socket.
        path: PathBuf,
    },
    /// More symlinks than the kernel would follow (a loop).
    TooManyLinks {
        /// The path whose resolution gave up.
        path: PathBuf,
    },
    /// The process behind the socket runs as another user.
    Peer {
        /// The peer's uid, from `SO_PEERCRED` (or the platform's equivalent).
        uid: Owner,
    },
}

/// A refused socket or directory: one line with the path, the offending owner and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Untrusted {
    /// The socket or directory the caller wanted to use.
    pub subject: PathBuf,
    /// Which check failed, and on which path.
    pub problem: Problem,
    /// The caller's euid.
    pub me: u32,
    /// Whether `subject` is a socket (the fix then names COMPOSER_KEYD_SOCK).
    pub socket: bool,
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let me = self.me;
        write!(f, "refusing to use {}: ", self.subject.display())?;
        match &self.problem {
            Problem::Owner {
                path,
                owner,
                root_allowed: true,
            } => write!(
                f,
                "{} is owned by {owner}, not by you (uid {me}) or root",
                path.display()
            )?,
            Problem::Owner { path, owner, .. } => write!(
                f,
                "{} is owned by {owner}, not by you (uid {me})",
                path.display()
            )?,
            Problem::Writable { path, mode } => write!(
                f,
                "{} is writable by other users (mode {mode:04o})",
                path.display()
            )?,
            Problem::Mode { path, mode } => write!(
                f,
                "{} has mode {mode:04o}; it must be private (0700)",
                path.display()
            )?,
            Problem::Sticky { path, mode } => write!(
                f,
                "{} is a shared directory (mode {mode:04o}) and cannot hold it directly",
                path.display()
            )?,
            Problem::LinkOwner { path, owner } => write!(
                f,
                "{} is a symlink owned by {owner}, not by you (uid {me}) or root",
                path.display()
            )?,
            Problem::Symlink { path } => write!(
                f,
                "{} is a symlink, not a directory of its own",
                path.display()
            )?,
            Problem::NotADirectory { path } => write!(f, "{} is not a directory", path.display())?,
            Problem::NotASocket { path } => write!(f, "{} is not a socket", path.display())?,
            Problem::TooManyLinks { path } => {
                write!(f, "too many symlinks below {}", path.display())?
            }
            Problem::Peer { uid } => write!(
                f,
                "the process listening on it runs as {uid}, not as you (uid {me}) or root"
            )?,
        }
        let fix = match (&self.problem, self.socket) {
            (Problem::Mode { path, .. }, _) => format!("run `chmod 700 {}`", path.display()),
            (Problem::Peer { .. }, true) => {
                "stop that process, or set COMPOSER_KEYD_SOCK to a socket in a private directory"
                    .to_owned()
            }
            (_, true) => "remove it, or set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory".to_owned(),
            (_, false) => "remove it (or make it yours, mode 0700), or point the XDG_* variables at private directories".to_owned(),
        };
        write!(f, "; {fix}")
    }
}

/// The caller's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `path` made absolute against the cwd, without resolving anything.
fn absolute(path: &Path) -> Option<PathBuf> {
    if path.is_absolute() {
        Some(path.to_path_buf())
    } else {
        std::env::current_dir().ok().map(|d| d.join(path))
    }
}

/// The components of `path` to walk: names and `..`, without the root and `.`.
fn steps(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// How the last directory of a walk is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Last {
    /// The socket's directory.
    Socket(Placement),
    /// A private directory (config, data, state): ours, not writable by others.
    Private,
}

/// Walks from `/` to `dir` with lstat, following symlinks owned by `me` or root, and judges
/// every directory on the way and `dir` itself. Returns the resolved directory and its owner,
/// or `None` when a component does not exist.
fn walk_dir(
    dir: &Path,
    last: Last,
    me: u32,
    refuse: &dyn Fn(Problem) -> Untrusted,
) -> Result<Option<(PathBuf, u32)>, CheckError> {
    let io_err = |path: &Path, source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut pending: VecDeque<OsString> = steps(dir).into();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    loop {
        let meta = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&cur, e)),
        };
        if !meta.is_dir() {
            return Err(refuse(Problem::NotADirectory { path: cur }).into());
        }
        let owner = meta.uid();
        let mode = meta.mode() & 0o7777;
        if owner != me && owner != 0 {
            return Err(refuse(Problem::Owner {
                path: cur,
                owner: Owner(owner),
                root_allowed: true,
            })
            .into());
        }
        if pending.is_empty() {
            judge_last(&cur, owner, mode, last, me, refuse)?;
            return Ok(Some((cur, owner)));
        }
        // A root-owned sticky directory (/tmp) is a safe step: nobody can rename our entry in it.
        let sticky_root = owner == 0 && mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky_root {
            return Err(refuse(Problem::Writable { path: cur, mode }).into());
        }
        // Follow the steps until the next directory to judge.
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                cur.pop();
                break;
            }
            let next = cur.join(&name);
            let m = match std::fs::symlink_metadata(&next) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(&next, e)),
            };
            if !m.file_type().is_symlink() {
                cur = next;
                break;
            }
            // The directory holding the link passed, so only its owner (us or root) could
            // have made it; a link of anyone else is refused.
            if m.uid() != me && m.uid() != 0 {
                return Err(refuse(Problem::LinkOwner {
                    path: next,
                    owner: Owner(m.uid()),
                })
                .into());
            }
            if pending.is_empty() && last != Last::Socket(Placement::Explicit) {
                return Err(refuse(Problem::Symlink { path: next }).into());
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(refuse(Problem::TooManyLinks { path: next }).into());
            }
            let target = std::fs::read_link(&next).map_err(|e| io_err(&next, e))?;
            for s in steps(&target).into_iter().rev() {
                pending.push_front(s);
            }
            if target.is_absolute() {
                cur = PathBuf::from("/");
                break;
            }
        }
    }
}

/// The rule for the directory that holds the socket (or is the private directory).
fn judge_last(
    dir: &Path,
    owner: u32,
    mode: u32,
    last: Last,
    me: u32,
    refuse: &dyn Fn(Problem) -> Untrusted,
) -> Result<(), Untrusted> {
    let path = dir.to_path_buf();
    match last {
        Last::Socket(Placement::Default) | Last::Private if owner != me => {
            Err(refuse(Problem::Owner {
                path,
                owner: Owner(owner),
                root_allowed: false,
            }))
        }
        Last::Socket(Placement::Default) if mode & 0o077 != 0 => {
            Err(refuse(Problem::Mode { path, mode }))
        }
        Last::Private if mode & 0o022 != 0 => Err(refuse(Problem::Writable { path, mode })),
        Last::Socket(Placement::Explicit) if mode & 0o1000 != 0 => {
            Err(refuse(Problem::Sticky { path, mode }))
        }
        Last::Socket(Placement::Explicit) if mode & 0o022 != 0 => {
            Err(refuse(Problem::Writable { path, mode }))
        }
        _ => Ok(()),
    }
}

/// Checks, for the calling user, that only they or root could have put the socket at `socket`.
pub fn check_socket(socket: &Path, placement: Placement) -> Result<Checked, CheckError> {
    check_socket_as(socket, placement, euid())
}

/// [`check_socket`] for caller uid `me` (tests judge paths as another user would).
pub fn check_socket_as(
    socket: &Path,
    placement: Placement,
    me: u32,
) -> Result<Checked, CheckError> {
    let refuse = |problem| Untrusted {
        subject: socket.to_path_buf(),
        problem,
        me,
        socket: true,
    };
    let abs = absolute(socket).ok_or_else(|| CheckError::Io {
        path: socket.to_path_buf(),
        source: io::Error::other("the current directory is unknown"),
    })?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(refuse(Problem::NotASocket { path: abs }).into());
    };
    let Some((dir, dir_owner)) = walk_dir(parent, Last::Socket(placement), me, &refuse)? else {
        return Ok(Checked::Missing);
    };
    let file = dir.join(name);
    let meta = match std::fs::symlink_metadata(&file) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checked::Missing),
        Err(source) => return Err(CheckError::Io { path: file, source }),
    };
    if !meta.file_type().is_socket() {
        return Err(refuse(Problem::NotASocket { path: file }).into());
    }
    let owner = meta.uid();
    let via_root_dir = dir_owner == 0 && owner != me && owner != 0;
    if owner != me && owner != 0 && !via_root_dir {
        return Err(refuse(Problem::Owner {
            path: file,
            owner: Owner(owner),
            root_allowed: true,
        })
        .into());
    }
    Ok(Checked::Trusted(TrustedSocket {
        owner,
        via_root_dir,
    }))
}

/// Checks that `dir` is private to the calling user: theirs, not writable by others, not a
/// symlink, reached only through directories of theirs or root's. `Ok(false)` when it does
/// not exist yet.
pub fn check_private_dir(dir: &Path) -> Result<bool, CheckError> {
    check_private_dir_as(dir, euid())
}

/// [`check_private_dir`] for caller uid `me`.
pub fn check_private_dir_as(dir: &Path, me: u32) -> Result<bool, CheckError> {
    let refuse = |problem| Untrusted {
        subject: dir.to_path_buf(),
        problem,
        me,
        socket: false,
    };
    let abs = absolute(dir).ok_or_else(|| CheckError::Io {
        path: dir.to_path_buf(),
        source: io::Error::other("the current directory is unknown"),
    })?;
    Ok(walk_dir(&abs, Last::Private, me, &refuse)?.is_some())
}

/// The refusal for a connected peer that runs as `uid`.
pub fn peer_refused(socket: &Path, uid: u32, me: u32) -> Untrusted {
    Untrusted {
        subject: socket.to_path_buf(),
        problem: Problem::Peer { uid: Owner(uid) },
        me,
        socket: true,
    }
}

mod peer;

pub use peer::{is_keyd_exe, is_our_daemon, peer_cred, user_name, PeerCred};

#[cfg(test)]
mod tests;
