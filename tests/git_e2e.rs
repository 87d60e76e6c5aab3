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

    // Opted in: store adds what worked without replacing anything, erase disables.
    let optin = |op: &str, request: &str| {
        let out = t.cli(&["git-credential", "--allow-store", op], request);
        assert!(out.status.success(), "{}", text(&out));
    };
    optin(
        "store",
        "protocol=https\nhost=new.example\nusername=a\npassword=b\n",
    );
    optin("store", &format!("{base}username=other\npassword=other\n"));
    let c = t.credential(&server.origin(), None);
    assert_eq!(c["password"], TOKEN, "store replaced a stored secret");
    assert_eq!(t.credential("new.example", None)["username"], "a");
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
