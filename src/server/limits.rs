//! `Limits`: every bound on what a client may make the daemon do, the same on every door, set in one place.

use std::time::Duration;

/// Every bound on what a client may make the daemon do, set in one place.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body; larger ones are refused with 413 before they are read.
    pub max_body: usize,
    /// Largest request head (hyper's read buffer); larger heads get 431.
    pub max_head: usize,
    /// Time a client has to send a complete request head, against slowloris. hyper starts
    /// this clock again whenever a keep-alive connection goes idle, so it is also the idle time-out.
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body, once its head is read.
    pub body_timeout: Duration,
    /// Time a response write may stay blocked on a peer that does not read.
    pub write_timeout: Duration,
    /// Connections served at once. At the cap the connection idle longest is closed to
    /// make room; when all are inside a request, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time to let open connections finish at shutdown.
    pub drain_timeout: Duration,
    /// The longest a single keyring or vault call may take.
    pub backend_timeout: Duration,
    /// Time the user has to answer a `--confirm` dialog.
    pub confirm_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 * 1024,
            max_head: 16 * 1024,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 8192,
            drain_timeout: Duration::from_secs(5),
            backend_timeout: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(30),
        }
    }
}

/// File descriptors kept free of connections: the store's D-Bus link, the index, the audit
/// log, askpass pipes, the listener.
const RESERVED_FDS: u64 = 64;

impl Limits {
    /// Lowers `max_connections` so that connections cannot exhaust `open_files` descriptors
    /// (past that, accept would fail and the store could not open its files).
    pub fn fit_open_files(&mut self, open_files: u64) {
        let room = usize::try_from(open_files.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
        if self.max_connections > room {
            tracing::warn!(
                "only {open_files} open files allowed: serving at most {} connections at once",
                room.max(1)
            );
            self.max_connections = room.max(1);
        }
    }
}
