//! The plugin's trust in its daemon, end to end with real Composer: an impostor daemon
//! that another real user (nobody) planted in a shared TMPDIR gets no byte, not even a
//! password typed at Composer's prompt; and a project receives only the credentials of
//! the origins it uses, as the daemon's audit log shows.

use crate::composer_fixture;
use crate::support;

use composer_fixture::*;
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PUB_A: &str = "5f0e7a1c9b2d48e6a3c1f09d7e8b6a54";
const PRIV_A: &str = "b7c3e9f1a2d4065c8e1f3a7b9d2c4e60";
const MAGENTO_PUB: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
const MAGENTO_PRIV: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// A fake daemon run by `nobody` in `composer-keyd-0/` of a private 1777 TMPDIR, the
/// directory root's clients fall back to when XDG_RUNTIME_DIR and COMPOSER_KEYD_SOCK are unset.
struct Impostor {
    child: Child,
    tmp: tempfile::TempDir,
    record: PathBuf,
}

impl Impostor {
    /// `mode`: "feed" (offers a fake pair for `origin`) or "harvest" (has nothing, takes PUTs).
    fn start(origin: &str, mode: &str) -> Impostor {
        support::require("setpriv", "util-linux");
        // SAFETY: geteuid has no preconditions and touches no memory.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "these tests play root against another user (nobody): run them as root"
        );
        assert!(
            Path::new("/usr/bin/python3").is_file(),
            "/usr/bin/python3 is missing: install the Debian package `python3`"
        );
        // nobody must reach it: a fresh dir under the system temp dir, not the 0700 test dir.
        let tmp = tempfile::Builder::new()
            .prefix("ckd-shared-tmp-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        // The checkout may be unreadable to nobody: it runs a copy.
        let script = tmp.path().join("impostor_daemon.py");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/composer_fixture/impostor_daemon.py"),
            &script,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        let sock = tmp.path().join("composer-keyd-0/agent.sock");
        let record = tmp.path().join("received.bin");
        let ready = tmp.path().join("impostor.ready");
        let mut child = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "/usr/bin/python3",
            ])
            .arg(&script)
            .args([&sock, &record, &ready])
            .args([origin, mode])
            .env_clear()
            .env("TMPDIR", tmp.path())
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run setpriv (Debian package util-linux)");
        // Bounded: 200 x 25 ms.
        for _ in 0..200 {
            if ready.exists() {
                return Impostor { child, tmp, record };
            }
            if let Ok(Some(st)) = child.try_wait() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the impostor exited with {st}: {err}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the impostor did not start");
    }

    fn sock(&self) -> PathBuf {
        self.tmp.path().join("composer-keyd-0/agent.sock")
    }

    /// Every byte any client sent it.
    fn received(&self) -> Vec<u8> {
        std::fs::read(&self.record).unwrap_or_default()
    }

    /// The request lines it received, to show in a failure without the bodies.
    fn request_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.received())
            .lines()
            .filter(|l| l.contains(" HTTP/1."))
            .map(str::to_owned)
            .collect()
    }

    /// The one line the plugin must print instead of talking to it.
    fn refusal_line(&self) -> String {
        let dir = self.tmp.path().join("composer-keyd-0");
        format!(
            "composer-keyd: refusing to use {}: {} is owned by uid 65534 (nobody), not by you (uid 0) or root; \
             remove it, or set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory",
            self.sock().display(),
            dir.display()
        )
    }

    /// A Composer command that falls back to the shared TMPDIR, as under cron, su or CI.
    fn composer(&self, t: &support::TestEnv, dir: &Path) -> Command {
        let mut c = t.command(composer_bin());
        c.env_remove("XDG_RUNTIME_DIR")
            .env_remove("COMPOSER_KEYD_SOCK")
            .env("TMPDIR", self.tmp.path())
            .arg("--no-ansi")
            .arg(format!("--working-dir={}", dir.display()));
        c
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `log` that mention composer-keyd.
fn keyd_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("composer-keyd"))
        .map(|l| l.trim().to_owned())
        .collect()
}

fn one_listener(t: &support::TestEnv, name: &str) -> (RepoServer, String, PathBuf) {
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_A, PRIV_A, "pair-a")], "packages": ["acme/alpha"]}]),
        json!({"acme/alpha": [package("1.0.0", "Alpha")]}),
        None,
    );
    let port = server.ports[0];
    let repo = json!({"type": "composer", "url": format!("http://127.0.0.1:{port}")});
    let dir = project(t, name, vec![repo], json!({"acme/alpha": "^1.0"}));
    (server, format!("127.0.0.1:{port}"), dir)
}

#[test]
fn an_impostor_socket_in_a_shared_tmpdir_gets_no_byte() {
    let (t, _d) = composer_env();
    let (server, origin, dir) = one_listener(&t, "shop");
    let imp = Impostor::start(&origin, "feed");

    let out = imp.composer(&t, &dir).arg("install").output().unwrap();
    let log = text(&out);
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}: {log}",
        imp.request_lines()
    );
    assert_eq!(keyd_lines(&log), [imp.refusal_line()], "{log}");
    // As without the plugin: no credentials, so the repository refuses and install fails.
    assert!(!out.status.success(), "{log}");
    let without = imp
        .composer(&t, &dir)
        .args(["install", "--no-plugins"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), without.status.code());
    // The impostor's pair never reached the repository either.
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r["refused"] != "wrong basic"),
        "{:?}",
        server.requests()
    );
}

/// A process on a pty (`script`), answered prompt by prompt.
struct Pty {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Pty {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        for mut stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let stdin = child.stdin.take();
        Pty {
            child,
            stdin,
            out,
            seen: 0,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits (bounded: 1200 x 50 ms) for the first of `needles` after the last match;
    /// its index, or None when the process ended first.
    fn expect(&mut self, needles: &[&str]) -> Option<usize> {
        for _ in 0..1200 {
            let text = self.text();
            let rest = text.get(self.seen..).unwrap_or("");
            let hit = needles
                .iter()
                .enumerate()
                .filter_map(|(i, n)| rest.find(n).map(|at| (at, i, n.len())))
                .min();
            if let Some((at, i, len)) = hit {
                self.seen += at + len;
                return Some(i);
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let st = self.child.wait().unwrap();
        // The readers end at EOF, which the exit brings; bounded: 100 x 20 ms.
        for _ in 0..100 {
            if Arc::strong_count(&self.out) == 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (st, self.text())
    }
}

#[test]
fn a_password_typed_at_composers_prompt_never_reaches_the_impostor() {
    let (t, _d) = composer_env();
    support::require("script", "bsdutils");
    let (server, origin, dir) = one_listener(&t, "prompted");
    let imp = Impostor::start(&origin, "harvest");

    // A person at a terminal: `script` gives Composer a pty; prompts are answered as they come.
    let inner = format!(
        "'{}' --no-ansi --working-dir='{}' install",
        composer_bin(),
        dir.display()
    );
    let mut script = t.command("script");
    script
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("COMPOSER_KEYD_SOCK")
        .env_remove("COMPOSER_NO_INTERACTION")
        .env("TMPDIR", imp.tmp.path())
        .args(["-q", "-e", "-c", &inner, "/dev/null"]);
    let mut pty = Pty::spawn(script);

    assert_eq!(pty.expect(&["Username:"]), Some(0), "{}", pty.text());
    pty.send(PUB_A);
    assert_eq!(pty.expect(&["Password:"]), Some(0), "{}", pty.text());
    pty.send(PRIV_A);
    // Old code: the plugin offers the typed pair to "composer-keyd" (the impostor): say yes, as
    // a user would. Now: Composer's own offer of auth.json: say no.
    match pty.expect(&[
        "Store the credentials for",
        "Do you want to store credentials for",
    ]) {
        Some(0) => pty.send("y"),
        Some(_) => pty.send("n"),
        None => panic!("no store prompt: {}", pty.text()),
    }
    let (status, log) = pty.finish();

    let received = imp.received();
    assert!(
        !support::contains(&received, PRIV_A.as_bytes()),
        "the typed password reached the impostor"
    );
    assert!(
        received.is_empty(),
        "the impostor received {:?}: {log}",
        imp.request_lines()
    );
    assert!(status.success(), "{log}");
    assert_eq!(keyd_lines(&log), [imp.refusal_line()], "{log}");
    assert!(!composer_home(&t).join("auth.json").exists());
    assert!(!dir.join("auth.json").exists());
    assert_no_plaintext(&t, PRIV_A);
    let mut leaked = Vec::new();
    support::walk(imp.tmp.path(), &mut |p| {
        if std::fs::read(p).is_ok_and(|b| support::contains(&b, PRIV_A.as_bytes())) {
            leaked.push(p.to_path_buf());
        }
    });
    assert!(leaked.is_empty(), "{leaked:?}");
    assert!(server.accepted(0, "/dists/").iter().all(|l| l == "pair-a"));
}

/// The origins the daemon's audit log shows as released.
fn released(t: &support::TestEnv) -> Vec<String> {
    t.ok(&["log", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "release")
        .filter_map(|r| r["origin"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_project_receives_only_the_origins_it_uses() {
    let (t, _d) = composer_env();
    let (server, origin, dir) = one_listener(&t, "uses-one");
    add(&t, &origin, "http-basic", None, &[PUB_A, PRIV_A]);
    add(
        &t,
        "repo.magento.com",
        "http-basic",
        None,
        &[MAGENTO_PUB, MAGENTO_PRIV],
    );

    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert!(server.accepted(0, "/dists/").iter().all(|l| l == "pair-a"));
    let first = released(&t);
    assert!(first.contains(&origin), "{first:?}");
    assert!(
        !first.iter().any(|o| o == "repo.magento.com"),
        "the Marketplace pair was released to a project that never uses it: {first:?}"
    );

    // With composer.lock now in place, a second run from a cold cache takes the same one origin.
    let _ = std::fs::remove_dir_all(&t.env["COMPOSER_CACHE_DIR"]);
    std::fs::remove_dir_all(dir.join("vendor")).unwrap();
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!released(&t).iter().any(|o| o == "repo.magento.com"));
    assert_no_plaintext(&t, MAGENTO_PRIV);
}
