//! Who is on the other end of a connection: uid, pid and executable, for the peer check, the release policy and the audit log.

use std::path::PathBuf;

/// Who is on the other end of a connection, from SO_PEERCRED and `/proc/PID/exe`.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The peer's uid (SO_PEERCRED / getpeereid).
    pub uid: u32,
    /// The peer's pid, where the OS tells it (not on macOS).
    pub pid: Option<i32>,
    /// The peer's executable, read when the connection was accepted.
    pub exe: Option<PathBuf>,
}

impl Peer {
    /// A caller we know nothing about (in-process use); every policy refuses it.
    pub fn unknown() -> Peer {
        Peer {
            uid: crate::paths::euid(),
            pid: None,
            exe: None,
        }
    }

    /// The peer's fields for an audit record.
    pub fn audit(&self, mut rec: crate::audit::Record) -> crate::audit::Record {
        rec.pid = self.pid;
        rec.uid = Some(self.uid);
        rec.exe = self.exe.as_ref().map(|e| e.to_string_lossy().into_owned());
        rec
    }
}
