//! Composer-side fixtures for the plugin's end-to-end tests: an isolated Composer
//! (its own COMPOSER_HOME and cache), the plugin installed there by `shim install`,
//! projects, and the loopback repository server of `tests/composer_repo_server.py`.

#![allow(dead_code)]

pub mod git_server;

use crate::support::{self, TestEnv};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// Fails, naming the Debian package, when a tool the plugin tests need is missing.
pub fn require_tools() {
    support::require("php", "php-cli");
    if std::env::var_os("COMPOSER_BIN").is_none() {
        support::require("composer", "composer");
    }
    support::require("unzip", "unzip");
    support::require("git", "git");
    support::require("python3", "python3");
}

/// A keyring-backed test env with its own Composer, the plugin installed globally and a daemon.
pub fn composer_env() -> (TestEnv, support::Daemon) {
    composer_env_with(|_| Vec::new())
}

/// As [`composer_env`], with the daemon's extra `serve` arguments made from the test env
/// (e.g. an askpass script written into its directory).
pub fn composer_env_with(
    serve_args: impl FnOnce(&TestEnv) -> Vec<String>,
) -> (TestEnv, support::Daemon) {
    require_tools();
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let extra = serve_args(&t);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let d = t.start_daemon(&extra);
    install_plugin(&t);
    // As for a user who installed composer-keyd: the plugin finds the binary on PATH and
    // points Composer's git at its credential helper.
    let bin_dir = Path::new(support::BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), t.env["PATH"]);
    t.env.insert("PATH".into(), path);
    (t, d)
}

/// Gives `t` a private COMPOSER_HOME and cache, no prompts, and root allowed (tests run as root).
pub fn isolate_composer(t: &mut TestEnv) {
    let root = t.dir.path().to_path_buf();
    let s = |p: PathBuf| p.to_string_lossy().into_owned();
    t.env
        .insert("COMPOSER_HOME".into(), s(root.join("composer-home")));
    t.env
        .insert("COMPOSER_CACHE_DIR".into(), s(root.join("composer-cache")));
    t.env.insert("COMPOSER_NO_INTERACTION".into(), "1".into());
    t.env.insert("COMPOSER_ALLOW_SUPERUSER".into(), "1".into());
    t.env.insert("COMPOSER_NO_AUDIT".into(), "1".into());
    std::fs::create_dir_all(root.join("composer-home")).unwrap();
    let global =
        json!({"repositories": [{"packagist.org": false}], "config": {"secure-http": false}});
    std::fs::write(root.join("composer-home/composer.json"), global.to_string()).unwrap();
}

pub fn composer_home(t: &TestEnv) -> PathBuf {
    PathBuf::from(&t.env["COMPOSER_HOME"])
}

/// `composer-keyd shim install`, asserted to succeed.
pub fn install_plugin(t: &TestEnv) -> Output {
    let out = t
        .command(support::BIN)
        .args(["shim", "install"])
        .output()
        .unwrap();
    assert!(out.status.success(), "shim install failed: {}", text(&out));
    out
}

/// stdout and stderr of a finished process, for messages and assertions.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A project that requires `require` from `repos` (plus Packagist turned off, plain http allowed).
pub fn project(t: &TestEnv, name: &str, repos: Vec<Value>, require: Value) -> PathBuf {
    let dir = t.dir.path().join("projects").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut repositories = repos;
    repositories.push(json!({"packagist.org": false}));
    let doc = json!({
        "name": format!("test/{name}"),
        "repositories": repositories,
        "require": require,
        "config": {"secure-http": false},
        "minimum-stability": "dev",
        "prefer-stable": true,
    });
    std::fs::write(
        dir.join("composer.json"),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
    dir
}

/// The Composer under test: `$COMPOSER_BIN` (scripts/test sets it for each Composer of the
/// opt-in matrix), else Debian's `composer` on PATH.
pub fn composer_bin() -> String {
    match std::env::var("COMPOSER_BIN") {
        Ok(bin) if !bin.is_empty() => {
            assert!(
                Path::new(&bin).is_file(),
                "COMPOSER_BIN={bin} is not a file"
            );
            bin
        }
        _ => "composer".into(),
    }
}

/// The (major, minor) of the Composer under test, from the first line of `composer --version`.
pub fn composer_version(t: &TestEnv) -> (u32, u32) {
    let out = t
        .command(composer_bin())
        .args(["--no-ansi", "--version"])
        .stdin(Stdio::null())
        .output()
        .expect("run composer --version");
    let shown = text(&out);
    // "Composer version 2.10.2 ..." or, from 2.2, "Composer 2.2.29 ...".
    let version = shown
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .unwrap_or_else(|| panic!("no version in `composer --version`: {shown}"));
    let mut parts = version.split('.').map(|n| n.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => panic!("cannot read the version in `composer --version`: {shown}"),
    }
}

/// Runs Composer in `dir` with this test's environment.
pub fn composer(t: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    t.command(composer_bin())
        .arg("--no-ansi")
        .arg(format!("--working-dir={}", dir.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run composer")
}

/// `composer-keyd add ORIGIN --type T [--project DIR]` with the secret fields on stdin.
pub fn add(t: &TestEnv, origin: &str, kind: &str, project: Option<&Path>, fields: &[&str]) {
    let mut args = vec!["add", origin, "--type", kind];
    let p;
    if let Some(dir) = project {
        p = dir.to_string_lossy().into_owned();
        args.extend(["--project", &p]);
    }
    t.ok(&args, &(fields.join("\n") + "\n"));
}

/// One accepted credential of a listener.
pub fn basic(user: &str, pass: &str, label: &str) -> Value {
    json!({"user": user, "pass": pass, "label": label})
}

pub fn bearer(token: &str, label: &str) -> Value {
    json!({"token": token, "label": label})
}

/// A package version with one PHP file.
pub fn package(version: &str, class: &str) -> Value {
    json!({"version": version, "files": {format!("src/{class}.php"): format!("<?php\nnamespace Acme;\nclass {class} {{}}\n")}})
}

/// Starts `tests/SCRIPT` (python3) with `config` plus `ready` and `log` paths, written to a
/// fresh temp dir of its own so that the secrets in it stay out of the dirs checked for
/// plaintext, and waits (bounded: 200 x 25 ms) for the JSON the script writes to `ready`.
pub fn start_script(
    script: &str,
    prefix: &str,
    mut config: Value,
) -> (Child, tempfile::TempDir, Value) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let ready = dir.path().join("ready");
    config["ready"] = json!(ready);
    config["log"] = json!(dir.path().join("requests.jsonl"));
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let mut child = Command::new("python3")
        .arg(path)
        .arg(dir.path().join("config.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start tests/{script} (Debian package python3): {e}"));
    for _ in 0..200 {
        if let Ok(Some(st)) = child.try_wait() {
            let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
            panic!("tests/{script} exited with {st}: {err}");
        }
        if let Ok(bytes) = std::fs::read(&ready) {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            return (child, dir, v);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("tests/{script} did not start");
}

/// The repository server, killed when dropped. Its config (which holds the accepted
/// secrets) lives in its own temp dir, outside the dirs checked for plaintext.
pub struct RepoServer {
    child: Child,
    dir: tempfile::TempDir,
    pub ports: Vec<u16>,
}

impl RepoServer {
    /// Starts the server; `listeners` and `packages` as in tests/composer_repo_server.py.
    pub fn start(listeners: Value, packages: Value, git_root: Option<&Path>) -> RepoServer {
        let config = json!({"git_root": git_root, "listeners": listeners, "packages": packages});
        let (child, dir, ready) = start_script("composer_repo_server.py", "ckd-repo-", config);
        let ports = ready["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() as u16)
            .collect();
        RepoServer { child, dir, ports }
    }

    /// Every request logged so far.
    /// The server's own directory (its config holds the credentials it accepts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Forgets the requests logged so far.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("requests.jsonl"));
    }

    /// The labels accepted on `listener` for paths starting with `prefix`.
    pub fn accepted(&self, listener: u64, prefix: &str) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| {
                r["listener"] == listener && r["path"].as_str().unwrap_or("").starts_with(prefix)
            })
            .filter_map(|r| r["accepted"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare git repository `NAME.git` under `root` with one commit tagged `version`.
pub fn git_repo(root: &Path, name: &str, package: &str, version: &str) {
    let work = root.join(format!("{name}-work"));
    std::fs::create_dir_all(work.join("src")).unwrap();
    let manifest = json!({"name": package, "autoload": {"psr-4": {"Acme\\": "src/"}}});
    std::fs::write(work.join("composer.json"), manifest.to_string()).unwrap();
    std::fs::write(
        work.join("src/Widget.php"),
        "<?php\nnamespace Acme;\nclass Widget {}\n",
    )
    .unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run git (Debian package git)");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
    };
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "widget"]);
    git(&work, &["tag", version]);
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
}

/// Asserts that no file under the test dir (HOME, COMPOSER_HOME, cache, projects) holds `secret`.
pub fn assert_no_plaintext(t: &TestEnv, secret: &str) {
    let hits = t.files_containing(secret);
    assert!(hits.is_empty(), "a secret is in plaintext in {hits:?}");
}

/// Writes `input` to a child's stdin and collects its output.
pub fn feed(mut child: Child, input: &str) -> Output {
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
