//! The grant door: only the granted uid, and only from another mount namespace than the daemon's (a container, not a host process of that uid); only reads; only credentials scoped to the granted project (unscoped ones when the grant includes them); its own view of the status.
//!
//! The project a request names is ignored: the granted project is the one looked up (a
//! container sees the project under another path anyway).

use super::Door;
use crate::agent::Agent;
use crate::error::Error;
use crate::grant::Grant;
use crate::protocol::Status;
use crate::server::limits::Limits;
use hyper::Method;
use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

/// Connections one grant serves at once (a container's Composer opens a few).
pub const GRANT_CONNECTIONS: usize = 64;

/// One grant's rule.
pub struct GrantDoor {
    grant: Grant,
    label: Arc<str>,
    /// Whether a peer must be in another mount namespace (always, but for unit tests of
    /// the connection path, whose peer is the test itself).
    contained: bool,
}

impl GrantDoor {
    /// The door of `grant`.
    pub fn new(grant: Grant) -> GrantDoor {
        GrantDoor {
            label: format!("grant {}", grant.name).into(),
            grant,
            contained: true,
        }
    }

    /// The door of `grant`, admitting its uid from the daemon's own mount namespace too:
    /// the in-process tests' peer is the test itself.
    #[cfg(test)]
    pub(crate) fn uncontained(grant: Grant) -> GrantDoor {
        GrantDoor {
            contained: false,
            ..GrantDoor::new(grant)
        }
    }

    fn only_reads(&self) -> Error {
        Error::Forbidden(format!(
            "grant {} serves only reads of its project's credentials",
            self.grant.name
        ))
    }
}

impl Door for GrantDoor {
    fn label(&self) -> Option<Arc<str>> {
        Some(Arc::clone(&self.label))
    }

    fn admit(&self, uid: u32, pid: Option<i32>, socket: BorrowedFd<'_>) -> Result<(), String> {
        if uid != self.grant.uid {
            return Err(format!(
                "the peer is uid {uid}, the grant is for uid {}",
                self.grant.uid
            ));
        }
        if self.contained {
            let pinned = crate::peer::Pinned::of(socket);
            contained(pid)?;
            // What /proc said was of the peer only if no other process took its pid since.
            if pinned.still_there() == Some(false) {
                return Err("the peer exited before it was checked".into());
            }
        }
        Ok(())
    }

    /// The main socket's cap bounds the sum of a grant's connections too: at most
    /// [`GRANT_CONNECTIONS`], the longest idle giving way at the cap.
    fn capacity(&self, limits: &Limits) -> usize {
        limits.max_connections.min(GRANT_CONNECTIONS)
    }

    fn permits(&self, method: &Method, route: &[&str]) -> Result<(), Error> {
        match (method, route) {
            (&Method::GET, ["v1", "status" | "origins"] | ["v1", "credentials", _]) => Ok(()),
            _ => Err(self.only_reads()),
        }
    }

    fn project(&self) -> Option<&Path> {
        Some(&self.grant.project)
    }

    fn within(&self, scope: Option<&str>) -> Result<(), Error> {
        match self.grant.covers(scope) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "this origin: nothing scoped to {} is granted",
                self.grant.project.display()
            ))),
        }
    }

    /// What a container needs (version, protocol, locked, when it locks) and the counts of
    /// what it may read; not the daemon's pid, backend or other projects' counts.
    fn status(&self, agent: &Agent) -> Status {
        let full = agent.status();
        let mine: Vec<_> = agent
            .origins(Some(&self.grant.project))
            .into_iter()
            .filter(|o| self.grant.covers(o.project.as_deref()))
            .collect();
        super::narrowed_status(&full, &mine)
    }
}

/// Admits a peer only from another mount namespace than the daemon's, in the daemon's
/// user namespace: a container's process, never a host process of the granted uid that
/// reaches the socket through `/proc/PID/root/...` of the container's. (A host process
/// could make itself a mount namespace only inside a user namespace of its own, which the
/// second check refuses.) Anything unreadable refuses.
fn contained(pid: Option<i32>) -> Result<(), String> {
    let pid = pid.ok_or("the OS does not tell the peer's pid")?;
    let read = |p: String| std::fs::read(&p).map_err(|e| format!("{p}: {e}"));
    if read(format!("/proc/{pid}/uid_map"))? != read("/proc/self/uid_map".into())? {
        return Err("the peer is in another user namespace".into());
    }
    let same =
        "the peer is in the daemon's own mount namespace (a host process, not the container's)";
    // The namespace's identity, where we may read it (root, or a peer of our own uid) ...
    let link = |p: String| std::fs::read_link(&p);
    if let (Ok(theirs), Ok(ours)) = (
        link(format!("/proc/{pid}/ns/mnt")),
        link("/proc/self/ns/mnt".into()),
    ) {
        return if theirs == ours {
            Err(same.into())
        } else {
            Ok(())
        };
    }
    // ... else its mounts (a daemon of another uid than the peer's may not read the link).
    match mounts_elsewhere(pid)? {
        true => Ok(()),
        false => Err(same.into()),
    }
}

/// Whether `pid` is in another mount namespace, told by its mounts: a mount belongs to one
/// namespace and its id is unique in the system, so another namespace's mountinfo shares no
/// id with ours. Unlike the namespace link, mountinfo is readable by any uid.
fn mounts_elsewhere(pid: i32) -> Result<bool, String> {
    let read = |p: String| std::fs::read(&p).map_err(|e| format!("{p}: {e}"));
    let theirs = mount_ids(&read(format!("/proc/{pid}/mountinfo"))?);
    let ours = mount_ids(&read("/proc/self/mountinfo".into())?);
    if theirs.is_empty() || ours.is_empty() {
        return Err("the peer's mounts could not be read".into());
    }
    Ok(theirs.is_disjoint(&ours))
}

/// The mount ids (first field) of a mountinfo file.
fn mount_ids(text: &[u8]) -> HashSet<u64> {
    text.split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l.split(|b| *b == b' ').next()?).ok())
        .filter_map(|id| id.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemons_own_namespace_is_refused() {
        let e = contained(Some(std::process::id() as i32)).unwrap_err();
        assert!(e.contains("own mount namespace"), "{e}");
        assert!(contained(None).is_err());
        assert!(
            contained(Some(i32::MAX)).is_err(),
            "an unreadable peer is refused"
        );
    }

    /// The fallback a daemon of another uid than its peer's relies on: told by mount ids
    /// alone, our own namespace is ours and `unshare -m`'s is another.
    #[test]
    fn mounts_tell_namespaces_apart() {
        let me = std::process::id() as i32;
        assert_eq!(mounts_elsewhere(me), Ok(false));
        let mut child = std::process::Command::new("unshare")
            .args(["-m", "sh", "-c", "echo up; exec sleep 30"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("unshare (util-linux), run as root");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "up", "unshare -m needs root");
        let other = mounts_elsewhere(child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(other, Ok(true));
    }

    #[test]
    fn mount_ids_parse() {
        let ids = mount_ids(b"22 27 0:21 / /proc rw - proc proc rw\n46 45 254:0 / / rw\n\n");
        assert_eq!(ids, HashSet::from([22, 46]));
    }
}
