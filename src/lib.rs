//! composer-keyd: Composer credentials in the OS keyring, served over a Unix socket to a thin Composer plugin.
//!
//! # Layout
//!
//! - [`credential`], [`secret`]: what a credential is, and the box secrets live in.
//! - [`protocol`]: the `/v1` wire types shared by server, client and the PHP shim's fixtures.
//! - [`store`]: the `Store` trait and its backends; [`index`]: the non-secret metadata file.
//! - [`server`]: listener intake, peer checks, limits, routes and the [`server::agent::Agent`].
//! - [`client`]: the CLI's HTTP client over the socket.
//! - [`paths`], [`atomic`]: where files live and how they are written.
//! - [`harden`]: process hardening; [`audit`]: the audit log of releases and refusals.

pub mod atomic;
pub mod audit;
pub mod client;
pub mod config;
pub mod credential;
pub mod error;
pub mod harden;
pub mod index;
pub mod paths;
pub mod protocol;
pub mod secret;
pub mod server;
pub mod store;
