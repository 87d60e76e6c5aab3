//! composer-keyd: Composer credentials in the OS keyring, served over a Unix socket to a thin Composer plugin.
//!
//! # Layout
//!
//! - [`credential`], [`secret`]: what a credential is, and the box secrets live in.
//! - [`protocol`]: the `/v1` wire types shared by server, client and the PHP shim's fixtures.
//! - [`store`]: the `Store` trait and its backends; [`index`]: the non-secret metadata file.
//! - [`agent`]: the domain core: the store, index and cache behind one lock, release under
//!   policy ([`agent::policy`]), the unlock timers; it returns outcomes and knows no server.
//!   [`peer`]: who is asking (uid, pid, executable, the door it came through);
//!   [`procstat`]: a process's parent and start time.
//! - [`server`]: one connection path for every door ([`server::door`]: the main socket,
//!   grants), limits, routes; the edge that writes audit records and builds replies.
//! - [`client`]: the CLI's HTTP client over the socket; [`trust`]: who may have put a socket
//!   or directory where we look (checked before a client sends a byte).
//! - [`service`]: the systemd user units and the launchd agent: render, install, status.
//! - [`paths`], [`atomic`]: where files live and how they are written; [`file_memo`]: what
//!   a small file said, read again only when it changed.
//! - [`composer_home`], [`authjson`], [`scan`], [`check`]: Composer's own files, moving
//!   plaintext secrets in, finding what is left, and testing stored credentials live.
//! - [`shim`]: the embedded Composer plugin and its install into COMPOSER_HOME.
//! - [`gitcred`]: git's credential helper protocol, backed by the daemon.
//! - [`grant`]: which other uid may read which project's credentials (served as doors by `server::grant`).
//! - [`team`]: team sources (OpenBao / HashiCorp Vault KV v2), read through beside the store.
//! - [`forward`]: the doors made for `ssh -R` (served by `server::forward`); [`ssh`]: what
//!   `composer-keyd ssh` runs remotely; [`registry`]: the file both registries are kept in.
//! - [`container`]: the wiring that mounts the socket and the plugin into containers.

//! - [`harden`]: process hardening; [`audit`]: the audit log of releases and refusals.

pub mod agent;
pub mod atomic;
pub mod audit;
pub mod authjson;
pub mod check;
pub mod client;
pub mod composer_home;
pub mod config;
pub mod container;
pub mod credential;
pub mod error;
pub mod expiry;
pub mod file_memo;
pub mod forward;
pub mod gitcred;
pub mod grant;
pub mod harden;
pub mod index;
pub mod paths;
pub mod peer;
pub mod procstat;
pub mod protocol;
pub mod registry;
pub mod remember;
pub mod scan;
pub mod secret;
pub mod server;
pub mod service;
pub mod shim;
pub mod ssh;
pub mod store;
pub mod team;
pub mod testhook;
pub mod trust;

/// The hash map of the daemon's per-lookup tables (index, cache, connection slots, audit
/// repeat counts). Their keys come from the daemon's own user, who can do worse to it than
/// collide hashes; SipHash cost more per lookup than routing a request.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
