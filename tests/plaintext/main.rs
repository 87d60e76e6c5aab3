//! Integration tests of import, scan, exec, check and doctor against the real daemon, a real
//! gnome-keyring and a loopback Composer repository that demands basic auth.

use crate::support;

mod authtypes;
mod check;
mod doctor;
mod exec;
mod import;
mod scan;
mod server;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{request, TestEnv, BIN};

/// A Magento public key (32 characters), the username the loopback repository accepts.
pub const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// The private key (password) paired with [`PUB`].
pub const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
/// A second public key, different from [`PUB`]: a rejected or conflicting credential.
pub const PUB2: &str = "b1b2c3d4e5f60718293a4b5c6d7e8f91";
/// The private key paired with [`PUB2`].
pub const PRIV2: &str = "1f9e8d7c6b5a49382716f5e4d3c2b1a1";

/// COMPOSER_HOME as Composer resolves it in the test env: `$XDG_CONFIG_HOME/composer`.
pub fn composer_home(t: &TestEnv) -> PathBuf {
    let h = PathBuf::from(&t.env["XDG_CONFIG_HOME"]).join("composer");
    std::fs::create_dir_all(&h).unwrap();
    h
}

/// A project directory with a composer.json, canonical.
pub fn project(t: &TestEnv, name: &str) -> PathBuf {
    let p = t.dir.path().join(name);
    std::fs::create_dir_all(p.join("app/code")).unwrap();
    std::fs::write(
        p.join("composer.json"),
        r#"{"name": "shop/site", "require": {}}"#,
    )
    .unwrap();
    std::fs::canonicalize(p).unwrap()
}

/// Writes a file with a mode, creating its directory.
pub fn write_mode(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// stdout and stderr together, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The credential the daemon releases for `origin` looked up from `project`.
pub fn credential(t: &TestEnv, origin: &str, project: Option<&Path>) -> serde_json::Value {
    t.credential(origin, project)
}

/// Every stored credential's metadata, sorted by origin and project.
pub fn list(t: &TestEnv) -> Vec<serde_json::Value> {
    let out = t.ok(&["list", "--json"], "");
    let mut v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    v.sort_by_key(|e| (e["origin"].to_string(), e["project"].to_string()));
    v
}

/// Asserts that none of the secrets appears in `hay`.
pub fn assert_no_secret(hay: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!hay.contains(s), "a secret leaked into output: {hay}");
    }
}
