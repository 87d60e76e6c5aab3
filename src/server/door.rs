//! Doors: the sockets one server serves. Every door shares the connection path (slots with idle eviction, deadlines, drain, audit); a door only says which peers come in, which requests they may make, and which credentials may go out.
//!
//! A new kind of door (a forwarded socket for `ssh -R`: the user's own uid through `ssh`,
//! read-only, listed origins, expiring) is one more [`Door`] in a file of its own here,
//! served by [`super::serve`] like the others.

pub mod forward;
pub mod grant;

use super::limits::Limits;
use super::project::Memo;
use crate::agent::Agent;
use crate::error::Error;
use crate::protocol::Status;
use hyper::Method;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::Arc;

/// One door's rule. Checked by the one connection path: `admit` at accept, before a byte
/// is read; `permits` before a request is routed (and before any body is read); `project`
/// and `within` by every lookup; `status` for `GET /v1/status`.
pub trait Door: Send + Sync + 'static {
    /// What the audit log and a confirm dialog call it (`grant NAME`); `None` for the main socket.
    fn label(&self) -> Option<Arc<str>>;

    /// Whether the peer `uid`, `pid` (SO_PEERCRED) of connection `socket` may come in;
    /// otherwise why not, for the audit record.
    fn admit(&self, uid: u32, pid: Option<i32>, socket: BorrowedFd<'_>) -> Result<(), String>;

    /// Whether this door serves `method` on the path split into `route`.
    fn permits(&self, method: &Method, route: &[&str]) -> Result<(), Error>;

    /// The project lookups are made from: `None` takes the one the request names.
    fn project(&self) -> Option<&Path>;

    /// Whether a credential in `scope` (`None`: unscoped) may go out through this door.
    fn within(&self, scope: Option<&str>) -> Result<(), Error>;

    /// `GET /v1/status` as seen through this door.
    fn status(&self, agent: &Agent) -> Status;

    /// Whether every release through this door asks the user first, whatever the
    /// credential's own policy (a forward door's `--confirm`).
    fn confirms(&self) -> bool {
        false
    }

    /// Connections this door serves at once (each door has its own slots, so a door's
    /// peers never take the main socket's places).
    fn capacity(&self, limits: &Limits) -> usize {
        limits.max_connections
    }

    /// Whether the requests answered before routing (`routes::answer_now`: the everyday
    /// lookup and the origins list, with the project the request names and any scope) may
    /// be answered here: only on a door that permits every route and every scope.
    fn everyday(&self) -> bool {
        false
    }

    /// The grant listeners `POST /v1/grants/reload` makes follow the registry.
    fn grants(&self) -> Option<&dyn Grants> {
        None
    }

    /// The forward listeners `POST /v1/forwards/reload` makes follow their registry.
    fn forwards(&self) -> Option<&dyn Grants> {
        None
    }

    /// The project paths this door's everyday requests remember as canonical.
    fn projects(&self) -> Option<&Memo> {
        None
    }
}

/// The grant listeners, as the main door reaches them (no process-global state, and
/// `routes` need not know `grant`).
pub trait Grants: Send + Sync {
    /// Follows the registry now: stops revoked grants (their connections at once), starts
    /// new ones. How many are served after.
    fn reload(&self) -> Result<usize, Error>;
}

/// The main socket: only the daemon's own uid, every route, every credential.
#[derive(Default)]
pub struct Main {
    grants: Option<Arc<dyn Grants>>,
    forwards: Option<Arc<dyn Grants>>,
    projects: Memo,
}

impl Main {
    /// The main door, with the grant listeners its reload route drives, if any.
    pub fn new(grants: Option<Arc<dyn Grants>>) -> Main {
        Main {
            grants,
            forwards: None,
            projects: Memo::default(),
        }
    }

    /// With the forward listeners its reload route drives.
    pub fn with_forwards(mut self, forwards: Option<Arc<dyn Grants>>) -> Main {
        self.forwards = forwards;
        self
    }
}

impl Door for Main {
    fn label(&self) -> Option<Arc<str>> {
        None
    }

    fn admit(&self, uid: u32, _pid: Option<i32>, _socket: BorrowedFd<'_>) -> Result<(), String> {
        match uid == crate::paths::euid() {
            true => Ok(()),
            false => Err("the peer is another user".into()),
        }
    }

    fn permits(&self, _method: &Method, _route: &[&str]) -> Result<(), Error> {
        Ok(())
    }

    fn project(&self) -> Option<&Path> {
        None
    }

    fn within(&self, _scope: Option<&str>) -> Result<(), Error> {
        Ok(())
    }

    fn status(&self, agent: &Agent) -> Status {
        agent.status()
    }

    fn everyday(&self) -> bool {
        true
    }

    fn grants(&self) -> Option<&dyn Grants> {
        self.grants.as_deref()
    }

    fn forwards(&self) -> Option<&dyn Grants> {
        self.forwards.as_deref()
    }

    fn projects(&self) -> Option<&Memo> {
        Some(&self.projects)
    }
}

/// The status a narrower door shows: what a client needs (version, protocol, locked, when it
/// locks) and the counts of `mine`, what the door serves; not the daemon's pid, backend or
/// anything else it holds.
pub(crate) fn narrowed_status(
    full: &crate::protocol::Status,
    mine: &[crate::protocol::OriginInfo],
) -> crate::protocol::Status {
    crate::protocol::Status {
        version: full.version.clone(),
        protocol: full.protocol,
        backend: crate::protocol::BackendKind::Unknown,
        backend_reason: String::new(),
        backend_detail: None,
        locked: full.locked,
        credentials: mine.len(),
        enabled: mine.iter().filter(|o| o.enabled).count(),
        uptime_secs: 0,
        pid: 0,
        age_file_exists: None,
        lock_in_secs: full.lock_in_secs,
        warning: None,
        teams: Vec::new(),
    }
}
