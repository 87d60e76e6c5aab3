//! Listener intake: the socket systemd (`LISTEN_FDS`) or launchd (`launch_activate_socket`)
//! passes us, else one we bind ourselves.

use crate::paths;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first descriptor of the `LISTEN_FDS` protocol (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The name of the socket in the LaunchAgent plist's `Sockets` dictionary.
pub const LAUNCHD_SOCKET_NAME: &str = "Listeners";

/// Why no listener could be opened.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Another daemon answers on the path: a second `serve` leaves it alone.
    #[error("already running: a daemon answers on {0}")]
    AlreadyRunning(PathBuf),
    /// Something that is not a socket sits at the path; it is never removed.
    #[error("{0} exists and is not a socket; move it away")]
    NotASocket(PathBuf),
    /// The path names no directory to hold the socket.
    #[error("the socket path {0} has no directory")]
    NoDirectory(PathBuf),
    /// The socket directory is not private.
    #[error(transparent)]
    Path(#[from] paths::PathError),
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `LISTEN_FDS` or launchd named a socket that is not a listening Unix socket.
    #[error("the service manager passed a socket we cannot use: {0}")]
    Activation(String),
}

/// Who opened the listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    /// Inherited through `LISTEN_FDS` (systemd, systemd-socket-activate).
    Systemd,
    /// Handed over by `launch_activate_socket`.
    Launchd,
    /// Bound by this process.
    Bound,
}

/// A listening socket and where it came from.
pub struct Listener {
    /// The socket, ready to accept.
    pub listener: tokio::net::UnixListener,
    /// Who opened it.
    pub opener: Opener,
    /// The path it listens on, when it has one.
    pub path: Option<PathBuf>,
    /// The socket file's path and inode when we bound it ourselves (and so remove it).
    pub bound: Option<(PathBuf, u64)>,
}

impl Listener {
    /// Whether a service manager owns the socket (and starts us again on the next connection).
    pub fn activated(&self) -> bool {
        self.opener != Opener::Bound
    }
}

/// Removes a socket file we bound, unless a newer daemon has replaced it since.
pub fn remove_bound(bound: Option<(PathBuf, u64)>) {
    if let Some((path, ino)) = bound {
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino) {
            // Best effort at exit: a leftover socket is replaced by the next start anyway.
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Takes the socket a service manager passed, else binds `socket`.
/// Must run inside the tokio runtime, before the daemon starts threads of its own:
/// it removes the activation variables from the environment.
pub fn open(socket: &Path) -> Result<Listener, IntakeError> {
    if let Some(fd) = take_systemd_fd()? {
        return inherited(fd, Opener::Systemd, socket);
    }
    #[cfg(target_os = "macos")]
    if let Some(fd) = launchd::activate(LAUNCHD_SOCKET_NAME)? {
        return inherited(fd, Opener::Launchd, socket);
    }
    bind(socket)
}

/// What `LISTEN_PID` and `LISTEN_FDS` say: how many descriptors are ours, if any.
fn parse_listen_env(
    pid: Option<&str>,
    fds: Option<&str>,
    me: u32,
) -> Result<Option<usize>, IntakeError> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| IntakeError::Activation(format!("LISTEN_PID={pid:?} is not a pid")))?;
    if pid != me {
        // Meant for another process (we were started by the one it named): not ours.
        tracing::debug!("LISTEN_PID={pid} is not us ({me}); ignoring LISTEN_FDS");
        return Ok(None);
    }
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| IntakeError::Activation(format!("LISTEN_FDS={fds:?} is not a count")))?;
    Ok((n > 0).then_some(n))
}

/// Takes fd 3 when `LISTEN_FDS` names this process; always clears the variables.
fn take_systemd_fd() -> Result<Option<OwnedFd>, IntakeError> {
    let var = |k| std::env::var(k).ok();
    let (pid, fds) = (var("LISTEN_PID"), var("LISTEN_FDS"));
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // No other thread of ours exists yet, so nothing reads the environment meanwhile;
        // and no child of ours may believe the descriptors are meant for it.
        std::env::remove_var(k);
    }
    let Some(n) = parse_listen_env(pid.as_deref(), fds.as_deref(), std::process::id())? else {
        return Ok(None);
    };
    let mut taken = Vec::with_capacity(n);
    for i in 0..n {
        let fd = LISTEN_FDS_START
            .checked_add(RawFd::try_from(i).unwrap_or(RawFd::MAX))
            .ok_or_else(|| IntakeError::Activation(format!("LISTEN_FDS={n} is too many")))?;
        // SAFETY: fcntl on any integer is memory-safe; it fails with EBADF if not open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(IntakeError::Activation(format!(
                "LISTEN_FDS={n}, but descriptor {fd} is not open"
            )));
        }
        // SAFETY: the LISTEN_FDS protocol hands descriptors 3..3+n to this process (LISTEN_PID
        // matched), nothing else in it owns them, and the cleared variables stop a second take.
        taken.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    if n > 1 {
        tracing::warn!("the service manager passed {n} sockets; using the first, closing the rest");
    }
    Ok(taken.into_iter().next())
}

/// Checks that `fd` is a listening Unix stream socket, then wraps it.
fn inherited(fd: OwnedFd, opener: Opener, expected: &Path) -> Result<Listener, IntakeError> {
    let bad = |what: String| IntakeError::Activation(what);
    let raw = fd.as_raw_fd();
    if sockopt(raw, libc::SO_TYPE).map_err(|e| bad(format!("descriptor {raw}: {e}")))?
        != libc::SOCK_STREAM
    {
        return Err(bad(format!("descriptor {raw} is not a stream socket")));
    }
    if sockopt(raw, libc::SO_ACCEPTCONN).map_err(|e| bad(format!("descriptor {raw}: {e}")))? == 0 {
        return Err(bad(format!("descriptor {raw} is not listening")));
    }
    let std_listener = std::os::unix::net::UnixListener::from(fd);
    // local_addr fails unless the socket is AF_UNIX.
    let addr = std_listener
        .local_addr()
        .map_err(|e| bad(format!("descriptor {raw} is not a Unix socket: {e}")))?;
    let set_up = |r: std::io::Result<()>| r.map_err(|e| bad(format!("descriptor {raw}: {e}")));
    set_up(set_cloexec(raw))?;
    set_up(std_listener.set_nonblocking(true))?;
    let listener = tokio::net::UnixListener::from_std(std_listener)
        .map_err(|e| bad(format!("descriptor {raw}: {e}")))?;
    let path = addr.as_pathname().map(Path::to_path_buf);
    match &path {
        Some(p) if p != expected => tracing::warn!(
            "socket-activated on {}, but clients look for {}; set COMPOSER_KEYD_SOCK to match",
            p.display(),
            expected.display()
        ),
        _ => {}
    }
    if let Some(dir) = path.as_deref().and_then(Path::parent) {
        if let Err(e) = paths::check_socket_dir(dir) {
            tracing::warn!("the activated socket's directory is not private: {e}");
        }
    }
    Ok(Listener {
        listener,
        opener,
        path,
        bound: None,
    })
}

fn sockopt(fd: RawFd, opt: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: val and len are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            std::ptr::addr_of_mut!(val).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(val)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Binds the socket ourselves: checks its directory, refuses when a live daemon answers,
/// replaces a stale socket, binds it with mode 0600.
pub fn bind(socket: &Path) -> Result<Listener, IntakeError> {
    let io = |what, source| IntakeError::Io {
        what,
        path: socket.to_path_buf(),
        source,
    };
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| IntakeError::NoDirectory(socket.to_path_buf()))?;
    paths::prepare_socket_dir(dir)?;
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return Err(IntakeError::AlreadyRunning(socket.to_path_buf()));
            }
            std::fs::remove_file(socket).map_err(|e| io("removing the stale socket", e))?;
        }
        Ok(_) => return Err(IntakeError::NotASocket(socket.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("checking", e)),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io("setting the mode of", e))?;
    let ino = std::fs::metadata(socket)
        .map_err(|e| io("checking", e))?
        .ino();
    Ok(Listener {
        listener,
        opener: Opener::Bound,
        path: Some(socket.to_path_buf()),
        bound: Some((socket.to_path_buf(), ino)),
    })
}

/// launchd's socket hand-over (`<launch.h>`, macOS 10.10+).
#[cfg(target_os = "macos")]
mod launchd {
    use super::IntakeError;
    use std::ffi::CString;
    use std::os::fd::{FromRawFd, OwnedFd};

    extern "C" {
        fn launch_activate_socket(
            name: *const libc::c_char,
            fds: *mut *mut libc::c_int,
            cnt: *mut libc::size_t,
        ) -> libc::c_int;
    }

    /// The first socket launchd holds under `name`, or `None` when launchd did not start us
    /// (ESRCH) or the plist has no such socket (ENOENT).
    pub fn activate(name: &str) -> Result<Option<OwnedFd>, IntakeError> {
        let cname = CString::new(name)
            .map_err(|_| IntakeError::Activation(format!("bad socket name {name:?}")))?;
        let mut fds: *mut libc::c_int = std::ptr::null_mut();
        let mut cnt: libc::size_t = 0;
        // SAFETY: cname is NUL-terminated; fds and cnt are valid out-pointers.
        let rc = unsafe { launch_activate_socket(cname.as_ptr(), &mut fds, &mut cnt) };
        match rc {
            0 => {}
            libc::ESRCH | libc::ENOENT => return Ok(None),
            e => {
                return Err(IntakeError::Activation(format!(
                    "launch_activate_socket({name}): {}",
                    std::io::Error::from_raw_os_error(e)
                )))
            }
        }
        if fds.is_null() {
            return Ok(None);
        }
        // SAFETY: on success launchd returns `cnt` descriptors in a malloc'd array that the
        // caller owns, descriptors and array alike.
        let owned: Vec<OwnedFd> = unsafe { std::slice::from_raw_parts(fds, cnt) }
            .iter()
            // SAFETY: each descriptor is open and owned by nobody else in this process.
            .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        // SAFETY: the array came from malloc in launchd's library and is not used again.
        unsafe { libc::free(fds.cast()) };
        Ok(owned.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_env_is_ours_only_when_the_pid_matches() {
        let p = |pid, fds| parse_listen_env(pid, fds, 4242);
        assert_eq!(p(Some("4242"), Some("1")).unwrap(), Some(1));
        assert_eq!(p(Some("4242"), Some("2")).unwrap(), Some(2));
        assert_eq!(p(Some("4242"), Some("0")).unwrap(), None);
        assert_eq!(p(Some("1"), Some("1")).unwrap(), None, "another process's");
        assert_eq!(p(None, Some("1")).unwrap(), None);
        assert_eq!(p(Some("4242"), None).unwrap(), None);
        assert!(matches!(
            p(Some("x"), Some("1")),
            Err(IntakeError::Activation(_))
        ));
        assert!(matches!(
            p(Some("4242"), Some("-1")),
            Err(IntakeError::Activation(_))
        ));
    }

    #[tokio::test]
    async fn refuses_descriptors_that_are_not_listening_unix_streams() {
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path().join("x.sock");
        // A connected (not listening) stream socket.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let err = inherited(OwnedFd::from(a), Opener::Systemd, &here).err();
        assert!(matches!(err, Some(IntakeError::Activation(m)) if m.contains("not listening")));
        // A datagram socket.
        let d = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let err = inherited(OwnedFd::from(d), Opener::Systemd, &here).err();
        assert!(matches!(err, Some(IntakeError::Activation(m)) if m.contains("not a stream")));
        // A listening TCP socket on loopback.
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = inherited(OwnedFd::from(t), Opener::Systemd, &here).err();
        assert!(matches!(err, Some(IntakeError::Activation(m)) if m.contains("not a Unix")));
        // The real thing.
        let l = std::os::unix::net::UnixListener::bind(&here).unwrap();
        let got = inherited(OwnedFd::from(l), Opener::Systemd, &here).unwrap();
        assert_eq!(got.path.as_deref(), Some(here.as_path()));
        assert!(got.activated());
        assert!(
            got.bound.is_none(),
            "an inherited socket is not ours to remove"
        );
    }
}
