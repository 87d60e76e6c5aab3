//! Who is on the other end of a connection: uid, pid and executable, for the peer check, the release policy and the audit log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Who is on the other end of a connection, from SO_PEERCRED and `/proc/PID/exe`.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The peer's uid (SO_PEERCRED / getpeereid).
    pub uid: u32,
    /// The peer's pid, where the OS tells it (not on macOS).
    pub pid: Option<i32>,
    /// The connection's number in this process, which keys its counted releases in the
    /// audit log; 0 for a caller that is not a connection.
    pub conn: u64,
    /// The peer's executable, read once: at accept when a credential's policy names
    /// executables, else at the first request that needs it (a policy check, the audit
    /// record of the connection's first release), always before that request is answered.
    exe: OnceLock<Option<PathBuf>>,
    /// The door it came through, when not the main socket (`grant NAME`): named in its
    /// audit records and in a confirm dialog it raises.
    pub door: Option<Arc<str>>,
}

/// Connection numbers; 0 is never handed out.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

impl Peer {
    /// The peer of a connection just accepted; its executable is read when first needed.
    pub fn connected(uid: u32, pid: Option<i32>) -> Peer {
        Peer {
            uid,
            pid,
            conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            exe: OnceLock::new(),
            door: None,
        }
    }

    /// The same peer, come through the door named `door` (`grant NAME`).
    pub fn through(mut self, door: Option<Arc<str>>) -> Peer {
        self.door = door;
        self
    }

    /// A peer whose executable is already known (or known to be unknown).
    pub fn with_exe(uid: u32, pid: Option<i32>, exe: Option<PathBuf>) -> Peer {
        Peer {
            exe: OnceLock::from(exe),
            ..Peer::connected(uid, pid)
        }
    }

    /// A caller we know nothing about (in-process use); every policy refuses it.
    pub fn unknown() -> Peer {
        Peer {
            uid: crate::paths::euid(),
            pid: None,
            conn: 0,
            exe: OnceLock::from(None),
            door: None,
        }
    }

    /// The peer's executable: read from `/proc/PID/exe` on the first call, the same answer after.
    pub fn exe(&self) -> Option<&Path> {
        self.exe
            .get_or_init(|| self.pid.and_then(crate::harden::process_exe))
            .as_deref()
    }

    /// The peer's fields for an audit record; the door it came through leads the detail.
    pub fn audit(&self, mut rec: crate::audit::Record) -> crate::audit::Record {
        if let Some(door) = &self.door {
            rec.detail = Some(match rec.detail.take() {
                Some(d) => format!("{door}: {d}"),
                None => door.to_string(),
            });
        }
        rec.pid = self.pid;
        rec.uid = Some(self.uid);
        rec.exe = self.exe().map(|e| e.to_string_lossy().into_owned());
        rec
    }
}

/// The process that connected, pinned by a pidfd (`SO_PEERPIDFD`, Linux 6.5 and later): what
/// is read of `/proc/PID` is about that process only if it still holds the pid afterwards,
/// since a pid is not handed out again while its process (or its zombie) exists.
pub struct Pinned(Result<std::os::fd::OwnedFd, std::io::Error>);

impl Pinned {
    /// Pins the peer of the connected socket `fd`.
    pub fn of(fd: std::os::fd::BorrowedFd<'_>) -> Pinned {
        use std::os::fd::{AsRawFd, FromRawFd};
        let mut pidfd: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `pidfd`, a c_int we own.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERPIDFD,
                (&mut pidfd as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        Pinned(match r == 0 && pidfd >= 0 {
            // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
            true => Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(pidfd) }),
            false => Err(std::io::Error::last_os_error()),
        })
    }

    /// Whether the process that connected still holds its pid: `Some(false)` when it is gone
    /// (its pid may be another process's now), `None` when this kernel pins no peer.
    pub fn still_there(&self) -> Option<bool> {
        use std::os::fd::AsRawFd;
        match &self.0 {
            Ok(pidfd) => {
                // SAFETY: signal 0 only checks that the pidfd's process exists; no memory is passed.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        0,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                Some(r == 0)
            }
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Some(false),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_live_peer_is_still_there_and_one_that_left_is_not() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(Pinned::of(a.as_fd()).still_there(), Some(true));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // A child connects, then exits and is reaped before its connection is looked at.
        let status = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); import os; os._exit(0)"])
            .arg(&path)
            .status()
            .expect("python3 (Debian package python3)");
        assert!(status.success());
        let (conn, _) = listener.accept().unwrap();
        let pinned = Pinned::of(conn.as_fd());
        assert_ne!(pinned.still_there(), Some(true));
    }
}
