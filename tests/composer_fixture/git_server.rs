//! The private git host of tests/git_http_server.py (`git http-backend` behind HTTP basic
//! auth on loopback) and the bare repositories it serves, shared by the git end-to-end tests.

use super::{git_repo, text};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let dir = tempfile::Builder::new()
            .prefix("ckd-git-")
            .tempdir()
            .unwrap();
        let config = json!({
            "ready": dir.path().join("ready"), "log": dir.path().join("requests.jsonl"),
            "git_root": git_root, "user": user, "token": token, "packages_json": packages_json,
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/git_http_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path().join("config.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("start tests/git_http_server.py (Debian package python3)");
        // Bounded: 200 x 25 ms.
        for _ in 0..200 {
            if let Ok(Some(st)) = child.try_wait() {
                let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
                panic!("the git server exited with {st}: {err}");
            }
            if let Ok(bytes) = std::fs::read(dir.path().join("ready")) {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                let port = v["port"].as_u64().unwrap() as u16;
                return GitServer { child, dir, port };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the git server did not start");
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
