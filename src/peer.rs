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
