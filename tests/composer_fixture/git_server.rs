//! The private git host of tests/git_http_server.py (`git http-backend` behind HTTP basic
//! auth on loopback) and the bare repositories it serves, shared by the git end-to-end tests.

use super::{git_repo, text};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};

/// The git host, killed when dropped. Its config (which holds the token) lives in its own
/// temp dir, outside the test dir that is checked for plaintext.
pub struct GitServer {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl GitServer {
    /// Serves `git_root` and `packages_json` to requests carrying `user` and `token` only.
    pub fn start(git_root: &Path, packages_json: &str, user: &str, token: &str) -> GitServer {
        let config = json!({
            "git_root": git_root, "user": user, "token": token, "packages_json": packages_json,
        });
        let (child, dir, ready) = super::start_script("git_http_server.py", "ckd-git-", config);
        let port = ready["port"].as_u64().unwrap() as u16;
        GitServer { child, dir, port }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn origin(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// (method, path, accepted, user agent) of every request so far.
    pub fn requests(&self) -> Vec<(String, String, bool, String)> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (s("method"), s("path"), v["accepted"] == true, s("agent"))
            })
            .collect()
    }

    /// Whether git itself (not Composer's HTTP client) was let in on a /git/ path.
    pub fn git_accepted(&self) -> bool {
        self.requests()
            .iter()
            .any(|(_, p, ok, agent)| *ok && p.starts_with("/git/") && agent.starts_with("git/"))
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A bare repository `widget.git` (acme/widget 1.0.0) in its own dir, and its commit.
pub fn widget_repo() -> (tempfile::TempDir, String) {
    let root = tempfile::Builder::new()
        .prefix("ckd-gitroot-")
        .tempdir()
        .unwrap();
    git_repo(root.path(), "widget", "acme/widget", "1.0.0");
    let sha = git_out(
        &root.path().join("widget.git"),
        &["rev-parse", "1.0.0^{commit}"],
    );
    (root, sha)
}
