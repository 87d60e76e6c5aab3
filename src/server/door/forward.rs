//! The forward door (`ssh -R`): the user's own uid, through the local `ssh` that forwards what reaches the remote socket, so the socket is the capability; only reads, only its listed origins (or one project's credentials), each release confirmed first when it was made with `--confirm`, nothing once it is revoked, expired or its `ssh` has exited.

use super::Door;
use crate::agent::Agent;
use crate::error::Error;
use crate::forward::Forward;
use crate::protocol::Status;
use hyper::Method;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

/// One forward door's rule.
pub struct ForwardDoor {
    fwd: Forward,
    label: Arc<str>,
}

impl ForwardDoor {
    /// The door of `fwd`.
    pub fn new(fwd: Forward) -> ForwardDoor {
        ForwardDoor {
            label: format!("forward {}", fwd.name).into(),
            fwd,
        }
    }

    fn only_reads(&self) -> Error {
        Error::Forbidden(format!(
            "forward {} serves only reads of its own origins",
            self.fwd.name
        ))
    }

    fn live(&self) -> Result<(), Error> {
        match self.fwd.live(crate::forward::now()) {
            true => Ok(()),
            false => Err(Error::Forbidden(format!(
                "forward {} has ended",
                self.fwd.name
            ))),
        }
    }
}

/// Lookups through a door of origins only are made from `/`: the remote's project path means
/// nothing here, and must not choose a local project's credential.
const NO_PROJECT: &str = "/";

impl Door for ForwardDoor {
    fn label(&self) -> Option<Arc<str>> {
        Some(Arc::clone(&self.label))
    }

    /// The local `ssh` connects as the user; nobody else can reach the 0700 directory.
    fn admit(&self, uid: u32, _pid: Option<i32>, _socket: BorrowedFd<'_>) -> Result<(), String> {
        if uid != crate::paths::euid() {
            return Err(format!("the peer is uid {uid}, not this user's ssh"));
        }
        self.live().map_err(|e| e.to_string())
    }

    fn permits(&self, method: &Method, route: &[&str]) -> Result<(), Error> {
        self.live()?;
        match (method, route) {
            (&Method::GET, ["v1", "status" | "origins"]) => Ok(()),
            (&Method::GET, ["v1", "credentials", o]) => {
                let origin = crate::credential::Origin::from_segment(o)?;
                match self.fwd.serves_origin(origin.as_str()) {
                    true => Ok(()),
                    false => Err(Error::Forbidden(format!(
                        "{origin} is not an origin of forward {}",
                        self.fwd.name
                    ))),
                }
            }
            _ => Err(self.only_reads()),
        }
    }

    fn project(&self) -> Option<&Path> {
        Some(self.fwd.project.as_deref().unwrap_or(Path::new(NO_PROJECT)))
    }

    fn within(&self, scope: Option<&str>) -> Result<(), Error> {
        match self.fwd.covers(scope) {
            true => Ok(()),
            false => Err(Error::NotFound(format!(
                "this origin: nothing forward {} serves",
                self.fwd.name
            ))),
        }
    }

    fn confirms(&self) -> bool {
        self.fwd.confirm
    }

    /// What the remote plugin needs (version, protocol, locked) and the counts of what the
    /// door serves; not the daemon's pid, backend or other credentials.
    fn status(&self, agent: &Agent) -> Status {
        let full = agent.status();
        let mine: Vec<_> = agent
            .origins(self.project())
            .into_iter()
            .filter(|o| self.fwd.serves_origin(o.origin.as_str()))
            .filter(|o| self.fwd.covers(o.project.as_deref()))
            .collect();
        super::narrowed_status(&full, &mine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A connected socket to admit through (a forward door reads nothing of it).
    fn sock() -> std::os::unix::net::UnixStream {
        std::os::unix::net::UnixStream::pair().unwrap().0
    }

    fn door(origins: &[&str], project: Option<&str>) -> ForwardDoor {
        ForwardDoor::new(Forward {
            name: "f".into(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            project: project.map(Into::into),
            confirm: false,
            expires_at: None,
            owner: None,
        })
    }

    #[test]
    fn reads_of_its_origins_only() {
        let d = door(&["repo.magento.com"], None);
        assert!(d
            .permits(&Method::GET, &["v1", "credentials", "repo.magento.com"])
            .is_ok());
        assert!(d
            .permits(&Method::GET, &["v1", "credentials", "github.com"])
            .is_err());
        for (m, r) in [
            (Method::PUT, &["v1", "credentials", "repo.magento.com"][..]),
            (Method::DELETE, &["v1", "credentials", "repo.magento.com"]),
            (Method::POST, &["v1", "lock"]),
            (Method::POST, &["v1", "unlock"]),
            (Method::POST, &["v1", "passwd"]),
            (Method::POST, &["v1", "migrate"]),
            (Method::GET, &["v1", "credentials"]),
        ] {
            assert!(d.permits(&m, r).is_err(), "{m} {r:?}");
        }
        assert_eq!(d.project(), Some(Path::new("/")));
        assert!(d.within(None).is_ok());
        assert!(d.within(Some("/srv/shop")).is_err());
        assert!(d.admit(crate::paths::euid(), None, sock().as_fd()).is_ok());
        assert!(d
            .admit(crate::paths::euid().wrapping_add(1), None, sock().as_fd())
            .is_err());
    }

    #[test]
    fn an_ended_door_serves_nothing() {
        let mut d = door(&["repo.magento.com"], None);
        d.fwd.expires_at = Some(1);
        assert!(d.admit(crate::paths::euid(), None, sock().as_fd()).is_err());
        assert!(d.permits(&Method::GET, &["v1", "status"]).is_err());
    }
}
