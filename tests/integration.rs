//! The integration tests as one test binary: each file in tests/ is a module here, so that
//! `tests/support` and `tests/composer_fixture` are compiled once and one binary is linked
//! instead of one per file. A run selects files by module path, e.g.
//! `cargo test --test integration -- plugin_e2e:: git_e2e::`.
//!
//! Adding a test file: write `tests/NAME.rs` opening with `use crate::support;` (not
//! `mod support;`), and add `mod NAME;` below. A file whose tests change process-wide state
//! (environment variables, the working directory) gets its own `[[test]]` entry in
//! Cargo.toml instead, as `systemd_user` does. `scripts/test` fails when a file in tests/ is
//! in neither place.

mod composer_fixture;
mod support;

mod age_file;
mod approvals;
mod audit;
mod autostart;
mod containers;
mod daemon;
mod doors;
mod expiry;
mod git_e2e;
mod hostile;
mod limits;
mod load;
mod magento;
mod package;
#[path = "plaintext/main.rs"]
mod plaintext;
mod plugin_e2e;
mod plugin_trust;
mod policy;
mod process;
mod service;
mod setup;
mod shim_e2e;
mod ssh;
mod team;
mod team_auth;
mod team_ha;
mod team_lifecycle;
mod team_project;
mod trust_client;
mod trust_files;
mod trust_rule;
mod trust_server;
mod vault;
mod vault_format;
mod vault_migrate;
