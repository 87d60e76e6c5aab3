//! End to end for issue 16: real Composer and real git against a private git host on loopback
//! (`git http-backend` behind basic auth), while every readable /proc/*/cmdline and
//! /proc/*/environ is polled for the token. Also plain `git clone` with the helper installed,
//! and after uninstall.

use crate::composer_fixture;
use crate::support;

use composer_fixture::git_server::*;
use composer_fixture::*;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "ci";
const TOKEN: &str = "gt-5e1c0b9a7d3f42e8b6a1c9d0f7e2b4a8";

/// Polls every readable /proc/*/cmdline and /proc/*/environ for the token until stopped.
struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<PollResult>>,
}

#[derive(Debug, Default)]
struct PollResult {
    rounds: u64,
    /// `pid file: text`, the token shown as <TOKEN>.
    hits: Vec<String>,
    /// Some process had the helper in its GIT_CONFIG_VALUE_n.
    saw_helper_env: bool,
}

/// Rounds are a few ms each: this bounds a poll to minutes, far beyond any run here.
const MAX_ROUNDS: u64 = 200_000;

impl Poller {
    fn start() -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut r = PollResult::default();
            while !flag.load(Ordering::Relaxed) && r.rounds < MAX_ROUNDS {
                r.rounds += 1;
                scan_proc(&mut r);
                std::thread::sleep(Duration::from_micros(500));
            }
            r
        });
        Poller {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> PollResult {
        self.stop.store(true, Ordering::Relaxed);
        let r = self.thread.take().unwrap().join().unwrap();
        assert!(r.rounds < MAX_ROUNDS, "the poller ran out of rounds");
        assert!(r.rounds > 0);
        r
    }
}

fn scan_proc(r: &mut PollResult) {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        for file in ["cmdline", "environ"] {
            let Ok(bytes) = std::fs::read(e.path().join(file)) else {
                continue;
            };
            if file == "environ" && support::contains(&bytes, b" git-credential") {
                r.saw_helper_env = true;
            }
            if support::contains(&bytes, TOKEN.as_bytes()) {
                let text = String::from_utf8_lossy(&bytes)
                    .replace(TOKEN, "<TOKEN>")
                    .replace('\0', " ");
                let hit = format!("{pid} {file}: {}", text.trim_end());
                if !r.hits.contains(&hit) {
                    r.hits.push(hit);
                }
            }
        }
    }
}

/// A Composer repository listing acme/widget with a dist zip and a git source, both private.
fn packages_json(sha: &str) -> String {
    json!({"packages": {"acme/widget": {"1.0.0": {
        "name": "acme/widget", "version": "1.0.0",
        "autoload": {"psr-4": {"Acme\\": "src/"}},
        "dist": {"type": "zip", "url": format!("%BASE%/dist/widget.git/{sha}.zip"), "reference": sha},
        "source": {"type": "git", "url": "%BASE%/git/widget.git", "reference": sha},
    }}}})
    .to_string()
}

fn assert_clean(what: &str, poll: &PollResult) {
    eprintln!("{what}: {} rounds over /proc", poll.rounds);
    assert!(
        poll.hits.is_empty(),
        "{what}: the token was readable in /proc ({} rounds):\n{}",
        poll.rounds,
        poll.hits.join("\n")
    );
}

#[test]
fn composer_source_and_dist_installs_keep_the_token_out_of_argv_environ_and_files() {
    let (mut t, _d) = composer_env();
    t.env
        .insert("COMPOSER_KEYD_BIN".into(), support::BIN.into());
    t.env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
    let (root, sha) = widget_repo();
    let server = GitServer::start(root.path(), &packages_json(&sha), USER, TOKEN);

    // From source: a VCS repository, read and cloned by git. The credential is scoped to
    // the project, and git runs in Composer's cache dir: only --project finds it.
    let src = project(
        &t,
        "from-source",
        vec![json!({"type": "vcs", "url": format!("{}/git/widget.git", server.base())})],
        json!({"acme/widget": "^1.0"}),
    );
    add(
        &t,
        &server.origin(),
        "http-basic",
        Some(&src),
        &[USER, TOKEN],
    );
    let poll = Poller::start();
    let out = composer(&t, &src, &["install", "--prefer-source", "-vvv"]);
    let poll = poll.finish();
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(src.join("vendor/acme/widget/src/Widget.php").is_file());
    assert!(src.join("vendor/acme/widget/.git").is_dir(), "not a clone");
    assert!(server.git_accepted(), "git never authenticated");
    assert_clean("composer install --prefer-source", &poll);
    assert!(
        poll.saw_helper_env,
        "no git child had the helper configured"
    );
    assert!(!text(&out).contains(TOKEN));

    // As a dist: the zip over Composer's own HTTP, credentials in a header.
    add(&t, &server.origin(), "http-basic", None, &[USER, TOKEN]);
    let dist = project(
        &t,
        "from-dist",
        vec![json!({"type": "composer", "url": server.base()})],
        json!({"acme/widget": "^1.0"}),
    );
    let poll = Poller::start();
    let out = composer(&t, &dist, &["install", "--prefer-dist", "-vvv"]);
    let poll = poll.finish();
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(dist.join("vendor/acme/widget/src/Widget.php").is_file());
    assert!(!dist.join("vendor/acme/widget/.git").exists(), "not a dist");
    assert!(server
        .requests()
        .iter()
        .any(|(_, p, ok, _)| *ok && p.starts_with("/dist/")));
    assert_clean("composer install --prefer-dist", &poll);
    assert_no_plaintext(&t, TOKEN);
}

fn feed_stdin(child: &mut Child, input: &str) {
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
}

fn git_clone(t: &support::TestEnv, url: &str, dest: &Path) -> Output {
    t.command("git")
        .args(["clone", "-q", url])
        .arg(dest)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .current_dir(t.home())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn helper(t: &support::TestEnv, op: &str, request: &str) -> Output {
    support::require("git", "git");
    let out = t.cli(&["git-credential", op], request);
    assert!(out.status.success(), "git-credential {op}: {}", text(&out));
    out
}

#[test]
fn plain_git_clone_with_the_installed_helper_and_after_uninstall() {
    require_tools();
    let t = support::TestEnv::with_keyring(true);
    let mut d = t.start_daemon(&[]);
    let (root, sha) = widget_repo();
    let server = GitServer::start(root.path(), &packages_json(&sha), USER, TOKEN);
    add(&t, &server.origin(), "http-basic", None, &[USER, TOKEN]);
    let url = format!("{}/git/widget.git", server.base());
    let home = t.home();

    // The protocol, directly: the right host gets the pair, any other nothing.
    let base = format!(
        "protocol=http\nhost={}\npath=git/widget.git\n",
        server.origin()
    );
    let req = format!("{base}\n");
    let out = helper(&t, "get", &req);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("username={USER}\npassword={TOKEN}\n")
    );
    let out = helper(&t, "get", "protocol=https\nhost=elsewhere.example\n\n");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out)
    );
    // Git runs the helper in the repository: its working directory picks a project's scope.
    let shop = home.join("shop");
    std::fs::create_dir_all(&shop).unwrap();
    add(
        &t,
        &server.origin(),
        "http-basic",
        Some(&shop),
        &["shop", "shop-secret"],
    );
    let scoped = |dir: &Path| {
        let mut child = t
            .command(support::BIN)
            .args(["git-credential", "get"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        feed_stdin(&mut child, &req);
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(scoped(&shop), "username=shop\npassword=shop-secret\n");
    assert_eq!(
        scoped(&home),
        format!("username={USER}\npassword={TOKEN}\n")
    );
    t.ok(
        &[
            "remove",
            &server.origin(),
            "--project",
            shop.to_str().unwrap(),
        ],
        "",
    );

    // store and erase are ignored without --allow-store: nothing stored changes.
    helper(
        &t,
        "erase",
        &format!("{base}username={USER}\npassword={TOKEN}\n"),
    );
    helper(
        &t,
        "store",
        "protocol=https\nhost=new.example\nusername=a\npassword=b\n",
    );
    let list = t.ok(&["list"], "");
    assert!(
        !list.contains("DISABLED") && !list.contains("new.example"),
        "{list}"
    );

    // Without the helper, git has no credential and cannot prompt.
    let before = git_clone(&t, &url, &home.join("c0"));
    assert!(!before.status.success(), "cloned without credentials");

    // A URL with userinfo is refused without quoting the password.
    let bad = t.cli(
        &[
            "git-credential",
            "install",
            "--host",
            "https://user:S3CRET-in-url@host.example",
        ],
        "",
    );
    assert!(!bad.status.success());
    assert!(!text(&bad).contains("S3CRET"), "{}", text(&bad));
    assert!(text(&bad).contains("***@host.example"), "{}", text(&bad));
    let out = t.ok(&["git-credential", "install", "--host", &server.base()], "");
    assert!(out.contains("credential.http://127.0.0.1:"), "{out}");
    let config = std::fs::read_to_string(home.join(".gitconfig")).unwrap();
    assert!(config.contains("git-credential"), "{config}");
    // A second install adds nothing.
    t.ok(&["git-credential", "install", "--host", &server.base()], "");
    assert_eq!(
        std::fs::read_to_string(home.join(".gitconfig")).unwrap(),
        config
    );

    let poll = Poller::start();
    let cloned = git_clone(&t, &url, &home.join("c1"));
    let poll = poll.finish();
    assert!(
        cloned.status.success(),
        "clone with the helper: {}",
        text(&cloned)
    );
    assert!(home.join("c1/src/Widget.php").is_file());
    assert_clean("git clone", &poll);
    assert_no_plaintext(&t, TOKEN);

    t.ok(&["git-credential", "uninstall"], "");
    let config = std::fs::read_to_string(home.join(".gitconfig")).unwrap_or_default();
    assert!(
        !config.contains("composer-keyd") && !config.contains("[credential"),
        "{config}"
    );
    let after = git_clone(&t, &url, &home.join("c2"));
    assert!(!after.status.success(), "cloned after uninstall");
    let err = text(&after);
    assert!(
        err.contains("terminal prompts disabled") || err.contains("could not read Username"),
        "{err}"
    );

    // Opted in: store adds what worked, scoped to the project git asked from, where nothing
    // applies yet; erase disables.
    let in_dir = |dir: &Path, op: &str, request: &str| {
        let d = dir.to_str().unwrap();
        let out = t.cli(
            &["git-credential", "--allow-store", "--project", d, op],
            request,
        );
        assert!(out.status.success(), "{}", text(&out));
    };
    let optin = |op: &str, request: &str| in_dir(&home, op, request);
    optin(
        "store",
        "protocol=https\nhost=new.example\nusername=a\npassword=b\n",
    );
    optin("store", &format!("{base}username=other\npassword=other\n"));
    let c = t.credential(&server.origin(), Some(&home));
    assert_eq!(
        c["password"], TOKEN,
        "store replaced or shadowed a stored secret"
    );
    assert_eq!(t.credential("new.example", Some(&home))["username"], "a");
    assert_eq!(
        t.lookup("new.example", None).status,
        404,
        "store made an unscoped credential"
    );
    optin("erase", &format!("{base}username={USER}\npassword=wrong\n"));
    assert!(!t.ok(&["list"], "").contains("DISABLED"));
    optin(
        "erase",
        &format!("{base}username={USER}\npassword={TOKEN}\n"),
    );
    assert!(
        t.ok(&["list"], "").contains("DISABLED"),
        "erase did not disable"
    );
    let out = helper(&t, "get", &req);
    assert!(out.stdout.is_empty(), "a disabled credential was released");

    // No daemon: git gets nothing, quietly, and moves on.
    d.stop();
    let out = helper(&t, "get", &req);
    assert!(out.stdout.is_empty(), "{}", text(&out));
}

const TOKEN_APP: &str = "gt-0a7b3c9d1e5f42a8b6c0d9e1f3a5b7c2";

#[test]
fn a_transitive_git_source_on_an_origin_the_project_never_names_gets_its_credential() {
    let (mut t, _d) = composer_env();
    t.env
        .insert("COMPOSER_KEYD_BIN".into(), support::BIN.into());
    t.env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
    // Origin B: the private git host of acme/widget, named by no file of the project.
    let (widget_root, widget_sha) = widget_repo();
    let widget_host = GitServer::start(widget_root.path(), "{}", USER, TOKEN);
    // Origin A: the project's one repository. acme/app (a dist on A) requires acme/widget,
    // whose only source is a git URL on B.
    let app_root = tempfile::Builder::new()
        .prefix("ckd-gitroot-")
        .tempdir()
        .unwrap();
    git_repo(app_root.path(), "app", "acme/app", "1.0.0");
    let app_sha = git_out(
        &app_root.path().join("app.git"),
        &["rev-parse", "1.0.0^{commit}"],
    );
    let packages = json!({"packages": {
        "acme/app": {"1.0.0": {
            "name": "acme/app", "version": "1.0.0", "require": {"acme/widget": "^1.0"},
            "dist": {"type": "zip", "url": format!("%BASE%/dist/app.git/{app_sha}.zip"), "reference": app_sha},
        }},
        "acme/widget": {"1.0.0": {
            "name": "acme/widget", "version": "1.0.0",
            "autoload": {"psr-4": {"Acme\\": "src/"}},
            "source": {"type": "git", "url": format!("{}/git/widget.git", widget_host.base()), "reference": widget_sha},
        }},
    }});
    let app_host = GitServer::start(app_root.path(), &packages.to_string(), USER, TOKEN_APP);
    add(
        &t,
        &app_host.origin(),
        "http-basic",
        None,
        &[USER, TOKEN_APP],
    );
    add(
        &t,
        &widget_host.origin(),
        "http-basic",
        None,
        &[USER, TOKEN],
    );
    let dir = project(
        &t,
        "transitive",
        vec![json!({"type": "composer", "url": app_host.base()})],
        json!({"acme/app": "^1.0"}),
    );
    assert!(!dir.join("composer.lock").exists());

    let poll = Poller::start();
    let out = composer(&t, &dir, &["install", "--prefer-source"]);
    let poll = poll.finish();
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(dir.join("vendor/acme/widget/src/Widget.php").is_file());
    assert!(dir.join("vendor/acme/widget/.git").is_dir(), "not a clone");
    // Git itself was let in on B with B's credential; nothing on B went through a download.
    assert!(widget_host.git_accepted(), "{:?}", widget_host.requests());
    assert!(
        widget_host
            .requests()
            .iter()
            .all(|(_, p, _, _)| p.starts_with("/git/")),
        "{:?}",
        widget_host.requests()
    );
    assert_clean("a transitive git source", &poll);
    assert!(
        poll.saw_helper_env,
        "no git child had the helper configured"
    );
    for secret in [TOKEN, TOKEN_APP] {
        assert!(!text(&out).contains(secret));
        assert_no_plaintext(&t, secret);
    }
}

// Issue 22, item 1: Composer's `Util\Git` retries a failed git command with IO's credential
// in the URL (`https://USER:SECRET@host/...`, git's argv). Each run below is one way the git
// helper used to give git nothing while the plugin had given Composer the credential.

/// Another local user watching, as an attacker would: `nobody` (setpriv) running python3
/// over every /proc/*/cmdline and /proc/*/environ it can read. The secrets reach it on
/// stdin, hex-encoded, after `sight` (it counts the git commands whose argv holds it, so a
/// test knows that the git it ran was in view); a line on stdin stops it, and it reports
/// what it saw as JSON.
struct Watcher {
    child: Child,
}

const WATCH_PY: &str = r#"
import json, os, select, sys
buf = b""
while not buf.endswith(b"\n\n"):
    chunk = os.read(0, 4096)
    if not chunk:
        break
    buf += chunk
lines = buf.decode().split()
sight, secrets = bytes.fromhex(lines[0]), [bytes.fromhex(h) for h in lines[1:]]
hits, rounds, git_seen = [], 0, 0
while rounds < 200000:
    rounds += 1
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if name == "cmdline" and data.startswith(b"git\0") and sight in data:
                git_seen += 1
            for i, s in enumerate(secrets):
                if s in data:
                    hit = "%s %s: %s" % (pid, name, data.replace(s, b"<SECRET%d>" % i).replace(b"\0", b" ").decode("utf-8", "replace"))
                    if hit not in hits:
                        hits.append(hit)
    if select.select([0], [], [], 0.0002)[0]:
        break
print(json.dumps({"rounds": rounds, "hits": hits, "git_seen": git_seen}))
"#;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

impl Watcher {
    fn start(t: &support::TestEnv, sight: &str, secrets: &[&str]) -> Watcher {
        use std::io::Write;
        let nobody = support::attacker::Nobody::new(t.dir.path());
        let mut child = std::process::Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                support::attacker::PYTHON,
                "-c",
                WATCH_PY,
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TMPDIR", &nobody.tmp)
            .env("HOME", &nobody.tmp)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run setpriv (Debian package util-linux)");
        let list: Vec<String> = std::iter::once(sight)
            .chain(secrets.iter().copied())
            .map(hex)
            .collect();
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{}\n\n", list.join("\n")).as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        Watcher { child }
    }

    /// Stops the watcher; asserts it ran, and that git was in its sight when `git_ran`.
    fn finish(mut self, what: &str, git_ran: bool) -> serde_json::Value {
        use std::io::Write;
        let mut stdin = self.child.stdin.take().unwrap();
        let _ = stdin.write_all(b"stop\n");
        drop(stdin);
        let out = self.child.wait_with_output().unwrap();
        assert!(out.status.success(), "the watcher failed: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "{what}: nobody read /proc {} times and saw git {} times",
            v["rounds"], v["git_seen"]
        );
        assert!(
            !git_ran || v["git_seen"].as_u64().unwrap() > 0,
            "{what}: the watcher never saw git run"
        );
        v
    }
}

fn assert_unseen(what: &str, watched: &serde_json::Value, poll: &PollResult) {
    assert_clean(what, poll);
    assert_eq!(
        watched["hits"],
        json!([]),
        "{what}: another user read a secret in /proc"
    );
}

/// The helper's one line when it cannot answer (`--strict`).
const QUIT_LINE: &str = "Composer's retry with the credential in git's command line is stopped";

/// A project installing acme/widget from source through a VCS repository on `server`.
fn vcs_project(t: &support::TestEnv, name: &str, server: &GitServer) -> std::path::PathBuf {
    project(
        t,
        name,
        vec![json!({"type": "vcs", "url": format!("{}/git/widget.git", server.base())})],
        json!({"acme/widget": "^1.0"}),
    )
}

/// The real path of the PHP that runs Composer.
fn composers_php(t: &support::TestEnv) -> String {
    let out = t
        .command("php")
        .args(["-r", "echo PHP_BINARY;"])
        .output()
        .expect("run php (Debian package php-cli)");
    let php = String::from_utf8(out.stdout).unwrap();
    std::fs::canonicalize(php.trim())
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn git_env(t: &mut support::TestEnv) {
    t.env
        .insert("COMPOSER_KEYD_BIN".into(), support::BIN.into());
    t.env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
    // Composer boxes an error to the terminal's width; the helper's line is read whole.
    t.env.insert("COLUMNS".into(), "1000".into());
}

#[test]
fn a_credential_only_composers_php_may_have_reaches_git_through_the_helper_not_argv() {
    let (mut t, _d) = composer_env();
    git_env(&mut t);
    let (root, _sha) = widget_repo();
    let server = GitServer::start(root.path(), "{}", USER, TOKEN);
    let dir = vcs_project(&t, "allow-exe", &server);
    let php = composers_php(&t);
    t.ok(
        &[
            "add",
            &server.origin(),
            "--project",
            dir.to_str().unwrap(),
            "--allow-exe",
            &php,
        ],
        &format!("{USER}\n{TOKEN}\n"),
    );
    let watch = Watcher::start(&t, &server.origin(), &[TOKEN]);
    let poll = Poller::start();
    let out = composer(&t, &dir, &["install", "--prefer-source", "-v"]);
    let poll = poll.finish();
    let watched = watch.finish("--allow-exe PHP", true);
    assert_unseen("--allow-exe PHP", &watched, &poll);
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(dir.join("vendor/acme/widget/.git").is_dir(), "not a clone");
    assert!(server.git_accepted(), "git never authenticated");
    assert!(!text(&out).contains(TOKEN));
    // The helper, not PHP, fetched it for git, and the daemon said so.
    let log = t.ok(&["log"], "");
    assert!(log.contains("release"), "{log}");
    // Any other program is still refused.
    let refused = t.cli(
        &["git-credential", "get"],
        &format!("protocol=http\nhost={}\n\n", server.origin()),
    );
    assert!(refused.stdout.is_empty(), "{}", text(&refused));
    assert_no_plaintext(&t, TOKEN);
}

#[test]
fn one_confirmation_covers_the_composer_run_and_its_git() {
    let (mut t, _d) = composer_env_with(|t| {
        // Approves the first dialog only, and keeps a line per dialog.
        let askpass = t.dir.path().join("askpass-once.sh");
        let marks = t.dir.path().join("askpass-marks");
        std::fs::write(
            &askpass,
            format!(
                "#!/bin/sh\necho asked >> '{m}.log'\nmkdir '{m}' 2>/dev/null\n",
                m = marks.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        vec!["--askpass".into(), askpass.to_string_lossy().into_owned()]
    });
    git_env(&mut t);
    let (root, _sha) = widget_repo();
    let server = GitServer::start(root.path(), "{}", USER, TOKEN);
    let dir = vcs_project(&t, "confirm", &server);
    t.ok(
        &[
            "add",
            &server.origin(),
            "--project",
            dir.to_str().unwrap(),
            "--confirm",
        ],
        &format!("{USER}\n{TOKEN}\n"),
    );
    let watch = Watcher::start(&t, &server.origin(), &[TOKEN]);
    let poll = Poller::start();
    let out = composer(&t, &dir, &["install", "--prefer-source", "-v"]);
    let poll = poll.finish();
    let watched = watch.finish("--confirm", true);
    assert_unseen("--confirm", &watched, &poll);
    assert!(
        out.status.success(),
        "composer install failed: {}",
        text(&out)
    );
    assert!(dir.join("vendor/acme/widget/.git").is_dir(), "not a clone");
    assert!(server.git_accepted(), "git never authenticated");
    let asked = std::fs::read_to_string(t.dir.path().join("askpass-marks.log")).unwrap();
    assert_eq!(asked.lines().count(), 1, "one run, one dialog: {asked}");
    // Outside that run the helper asks again, and the denial leaves git nothing.
    let denied = t.cli(
        &["git-credential", "get"],
        &format!("protocol=http\nhost={}\n\n", server.origin()),
    );
    assert!(denied.stdout.is_empty(), "{}", text(&denied));
    assert_no_plaintext(&t, TOKEN);
}

/// Standard base64 with padding, as an `Authorization: Basic` header carries it.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// base64 of `user:token`, and the spellings a URL or JSON could give it.
fn spellings(b64: &str) -> Vec<String> {
    let url = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let bare = b64.trim_end_matches('=').to_owned();
    vec![b64.to_owned(), url, bare]
}

/// Runs `composer install --prefer-source` of a project on `server` with a credential of a
/// type git cannot take. From Composer 2.9 the plugin gives it to Composer; git then gets
/// `quit=1` and one line, Composer never builds the URL with it. Older Composers cannot use
/// the type, and the plugin says so.
fn a_type_git_cannot_take(
    name: &str,
    kind: &str,
    extra: &[&str],
    stdin: &str,
    secrets: &[&str],
    repos: impl FnOnce(&GitServer) -> Vec<serde_json::Value>,
) {
    let (mut t, _d) = composer_env();
    git_env(&mut t);
    let (root, sha) = widget_repo();
    let server = GitServer::start(root.path(), &packages_json(&sha), USER, TOKEN);
    let dir = project(&t, name, repos(&server), json!({"acme/widget": "^1.0"}));
    let origin = server.origin();
    let mut args = vec!["add", &origin, "--type", kind];
    args.extend_from_slice(extra);
    t.ok(&args, stdin);
    let modern = composer_version(&t) >= (2, 9);
    let watch = Watcher::start(&t, &origin, secrets);
    let poll = Poller::start();
    let out = composer(&t, &dir, &["install", "--prefer-source", "-v"]);
    let poll = poll.finish();
    let watched = watch.finish(kind, modern);
    let shown = text(&out);
    eprintln!("{shown}");
    for s in secrets {
        assert!(!shown.contains(s), "{kind}: Composer printed a secret");
        assert_no_plaintext(&t, s);
    }
    assert!(!poll.hits.iter().any(|h| h.contains("<TOKEN>")));
    assert_eq!(
        watched["hits"],
        json!([]),
        "{kind}: another user read a secret in /proc"
    );
    if !modern {
        assert!(
            shown.contains(&format!("the {kind} type needs Composer 2.9")),
            "{shown}"
        );
        return;
    }
    // The plugin used it, git got nothing and stopped with the one line.
    assert!(
        shown.contains(&format!("using the {kind} credential")),
        "{shown}"
    );
    assert!(shown.contains(QUIT_LINE), "{shown}");
    assert!(
        out.status.success() || !shown.contains("could not read Username"),
        "{shown}"
    );
}

#[test]
fn custom_headers_never_reach_gits_argv() {
    // The header Composer sends is the server's Basic credential: Composer's own HTTP is let
    // in with it (packages.json, the dist it falls back to), git never sees it.
    assert_eq!(base64(b"ci:x"), "Y2k6eA==");
    let b64 = base64(format!("{USER}:{TOKEN}").as_bytes());
    let header = format!("Authorization: Basic {b64}");
    let mut secrets: Vec<String> = spellings(&b64);
    secrets.push(TOKEN.into());
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    a_type_git_cannot_take(
        "custom-headers",
        "custom-headers",
        &[],
        &format!("{header}\n"),
        &refs,
        |server| vec![json!({"type": "composer", "url": server.base()})],
    );
}

#[test]
fn a_client_certificate_passphrase_never_reaches_gits_argv() {
    const PASSPHRASE: &str = "cc-pass-9f3e1d7b5a2c4e6f8a0b";
    let cert = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cert.path(), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let cert_path = cert.path().to_string_lossy().into_owned();
    a_type_git_cannot_take(
        "client-certificate",
        "client-certificate",
        &["--local-cert", &cert_path],
        &format!("{PASSPHRASE}\n"),
        &[PASSPHRASE],
        |server| vec![json!({"type": "vcs", "url": format!("{}/git/widget.git", server.base())})],
    );
}

/// Issue 22: `git-credential get` holds the secret it hands git; a core file of it (in git's
/// working directory) held the password. It is hardened before it reads git's request.
#[test]
fn git_credential_get_has_no_core_and_is_not_dumpable() {
    let t = support::TestEnv::with_keyring(true);
    let mut child = t
        .command(support::BIN)
        .args(["--no-autostart", "git-credential", "get"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Bounded: 400 x 25 ms for the CLI to start and harden itself while it waits for git.
    let no_core = (0..400).any(|_| {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let zero = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .is_some_and(|l| l.split_whitespace().skip(4).take(2).all(|v| v == "0"));
        if !zero {
            std::thread::sleep(Duration::from_millis(25));
        }
        zero
    });
    // harden_cli sets the core limit and PR_SET_DUMPABLE together (src/cli.rs's unit test
    // names every command it covers).
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(
        no_core,
        "RLIMIT_CORE of `git-credential get` never became 0"
    );
    assert_eq!(
        exe.unwrap(),
        std::fs::canonicalize(support::BIN).unwrap(),
        "the pid is the CLI's"
    );
}

/// Issue 22: only a project's credential exists for the host; what git stores from another
/// directory stays scoped there, and never becomes the host's unscoped credential.
#[test]
fn git_store_never_plants_a_credential_wider_than_git_asked_for() {
    support::require("git", "git");
    let t = support::TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let home = t.home();
    let in_dir = |dir: &Path, op: &str, request: &str| {
        let d = dir.to_str().unwrap();
        let out = t.cli(
            &["git-credential", "--allow-store", "--project", d, op],
            request,
        );
        assert!(out.status.success(), "{}", text(&out));
    };
    let app = home.join("app");
    let other = home.join("other");
    for d in [&app, &other] {
        std::fs::create_dir_all(d).unwrap();
    }
    add(
        &t,
        "scoped.example",
        "http-basic",
        Some(&app),
        &["app", "app-secret"],
    );
    in_dir(
        &other,
        "store",
        "protocol=https\nhost=scoped.example\nusername=typed\npassword=typed-secret\n",
    );
    assert_eq!(
        t.lookup("scoped.example", None).status,
        404,
        "an unscoped credential was planted"
    );
    assert_eq!(
        t.credential("scoped.example", Some(&app))["username"],
        "app"
    );
    assert_eq!(
        t.credential("scoped.example", Some(&other))["username"],
        "typed"
    );
    t.ok(
        &[
            "remove",
            "scoped.example",
            "--project",
            other.to_str().unwrap(),
        ],
        "",
    );
}

/// The server refuses the credential the helper gave git (revoked, mistyped). Git would fail
/// with "Authentication failed", and Composer retry with that credential (still a secret:
/// it may work elsewhere) in the URL. The helper stops git first, with one line.
#[test]
fn a_credential_the_server_refuses_is_not_retried_in_gits_argv() {
    const WRONG: &str = "gt-revoked-7c1e9a0b3d5f42e8b6a1c9d0f7e2b4a8";
    let (mut t, _d) = composer_env();
    git_env(&mut t);
    let (root, _sha) = widget_repo();
    let server = GitServer::start(root.path(), "{}", USER, TOKEN);
    let dir = vcs_project(&t, "refused", &server);
    add(
        &t,
        &server.origin(),
        "http-basic",
        Some(&dir),
        &[USER, WRONG],
    );
    let watch = Watcher::start(&t, &server.origin(), &[WRONG]);
    let out = composer(&t, &dir, &["install", "--prefer-source", "-v"]);
    let watched = watch.finish("a refused credential", true);
    let shown = text(&out);
    assert_eq!(
        watched["hits"],
        json!([]),
        "another user read the refused credential in /proc"
    );
    assert!(!out.status.success(), "installed with a refused credential");
    assert!(
        shown.contains("refused the credential git was given; git is stopped here"),
        "{shown}"
    );
    assert!(!shown.contains(WRONG));
    assert!(
        server
            .requests()
            .iter()
            .all(|(_, p, ok, _)| !ok || !p.starts_with("/git/")),
        "nothing was let in"
    );
    assert_no_plaintext(&t, WRONG);
}

/// No composer-keyd binary where Composer runs (a container): no helper can give git the
/// credential, and git used to fail into Composer's retry with it in the URL. A helper in
/// plain sh now stops git with one line.
#[test]
fn without_the_binary_git_stops_with_one_line_and_no_credential_in_argv() {
    let (mut t, _d) = composer_env();
    git_env(&mut t);
    let missing = t.dir.path().join("no-such-composer-keyd");
    t.env.insert(
        "COMPOSER_KEYD_BIN".into(),
        missing.to_string_lossy().into_owned(),
    );
    let (root, _sha) = widget_repo();
    let server = GitServer::start(root.path(), "{}", USER, TOKEN);
    let dir = vcs_project(&t, "no-binary", &server);
    add(
        &t,
        &server.origin(),
        "http-basic",
        Some(&dir),
        &[USER, TOKEN],
    );
    let watch = Watcher::start(&t, &server.origin(), &[TOKEN]);
    let poll = Poller::start();
    let out = composer(&t, &dir, &["install", "--prefer-source", "-v"]);
    let poll = poll.finish();
    let watched = watch.finish("no binary", true);
    assert_unseen("no binary", &watched, &poll);
    let shown = text(&out);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains(
            "no composer-keyd binary here (set COMPOSER_KEYD_BIN), so git gets no credential"
        ),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN));
    assert_no_plaintext(&t, TOKEN);
}
