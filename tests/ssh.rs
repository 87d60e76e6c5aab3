//! `composer-keyd ssh` and forward doors end to end: a real sshd on loopback, a second real user (`remoteu`) as the remote side running the real Composer with the plugin, the real daemon on a real gnome-keyring, and a loopback repository that demands the Marketplace pair.

use crate::composer_fixture::*;
use crate::support;
use crate::support::sshd::{Sshd, USER};
use serde_json::json;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A pair no other test (nor another run) holds, so that a scan of all of /tmp finds only
/// what this test left.
fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}{:08x}{:08x}{:04x}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn packages() -> serde_json::Value {
    json!({"acme/alpha": [package("1.0.0", "Alpha")]})
}

/// The local side: daemon, keyring, the Marketplace pair for a loopback repository.
struct Local {
    t: support::TestEnv,
    d: support::Daemon,
    server: RepoServer,
    origin: String,
    user: String,
    pass: String,
}

fn local() -> Local {
    let (t, d) = composer_env();
    local_with(t, d)
}

fn local_with(t: support::TestEnv, d: support::Daemon) -> Local {
    let (user, pass) = (unique("pub"), unique("priv"));
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(&user, &pass, "pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    add(&t, &origin, "http-basic", None, &[&user, &pass]);
    Local {
        t,
        d,
        server,
        origin,
        user,
        pass,
    }
}

/// remoteu's global Composer config (no Packagist: the test machine is offline) and a
/// project of remoteu's that needs `acme/alpha` from `origin`'s repository.
fn remote_project(s: &Sshd, origin: &str) -> PathBuf {
    let home = s.home.join(".config/composer");
    let proj = s.home.join("proj/shop");
    let global =
        json!({"repositories": [{"packagist.org": false}], "config": {"secure-http": false}});
    let doc = json!({
        "name": "remote/shop",
        "repositories": [{"type": "composer", "url": format!("http://{origin}")}, {"packagist.org": false}],
        "require": {"acme/alpha": "^1.0"},
        "config": {"secure-http": false},
    });
    for (dir, body) in [(&home, global), (&proj, doc)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("composer.json"), body.to_string()).unwrap();
    }
    let out = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(s.home.join(".config"))
        .arg(s.home.join("proj"))
        .output()
        .unwrap();
    assert!(out.status.success());
    proj
}

/// `composer-keyd ssh OURS... [ssh options] remoteu@127.0.0.1 -- CMD...` from the local side.
fn keyd_ssh(l: &Local, s: &Sshd, ours: &[&str], cmd: &[&str]) -> Command {
    let mut c = l.t.command(support::BIN);
    c.arg("ssh").args(ours).args(s.ssh_options()).arg(s.host());
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    c.stdin(Stdio::null());
    c
}

fn install_plugin_remote(l: &Local, s: &Sshd) {
    let out = keyd_ssh(l, s, &["--install-plugin"], &[]).output().unwrap();
    assert!(out.status.success(), "--install-plugin: {}", text(&out));
}

fn remote_install(proj: &Path) -> String {
    format!(
        "cd {} && COMPOSER_NO_AUDIT=1 composer install --no-interaction --no-ansi -v",
        proj.display()
    )
}

/// Every file under `root` (not following links) whose bytes hold `needle`, but those under
/// `except`.
fn files_holding(root: &Path, needle: &str, except: &[&Path]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    support::walk(root, &mut |p| {
        if except.iter().any(|e| p.starts_with(e)) {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        if let Ok(bytes) = std::fs::read(p) {
            if support::contains(&bytes, needle.as_bytes()) {
                hits.push(p.to_owned());
            }
        }
    });
    hits
}

/// Files that hold `needle` and the remote user could have left: any file under its home
/// and the shared temporary directories (/tmp, /var/tmp, /dev/shm), and any file of its own
/// anywhere else; not those under `except`.
fn remote_files_holding(s: &Sshd, needle: &str, except: &[&Path]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    for root in [
        s.home.as_path(),
        Path::new("/tmp"),
        Path::new("/var/tmp"),
        Path::new("/dev/shm"),
    ] {
        hits.extend(files_holding(root, needle, except));
    }
    support::require("find", "findutils");
    let out = Command::new("find")
        .args([
            "/", "(", "-path", "/proc", "-o", "-path", "/sys", ")", "-prune", "-o",
        ])
        .args(["-user", &s.uid.to_string(), "-type", "f", "-print0"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    for p in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let p = Path::new(std::ffi::OsStr::from_bytes(p));
        if hits.iter().any(|h| h == p) || except.iter().any(|e| p.starts_with(e)) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(p) {
            if support::contains(&bytes, needle.as_bytes()) {
                hits.push(p.to_owned());
            }
        }
    }
    hits
}

#[test]
fn install_plugin_into_a_fresh_remote_composer_home_then_install_over_a_door() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let proj = remote_project(&s, &l.origin);
    let home = s.home.join(".config/composer");
    assert!(
        !home.join("vendor").exists(),
        "a COMPOSER_HOME that never saw the plugin"
    );

    install_plugin_remote(&l, &s);
    let installed = std::fs::read_to_string(home.join("vendor/composer/installed.json")).unwrap();
    assert!(
        installed.contains("composer-keyd/composer-plugin"),
        "{installed}"
    );
    let global: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("composer.json")).unwrap())
            .unwrap();
    assert_eq!(
        global["config"]["allow-plugins"]["composer-keyd/composer-plugin"],
        json!(true),
        "{global}"
    );
    // The remote files are remoteu's, none is the local binary's path.
    let plugin_json =
        std::fs::read_to_string(home.join("composer-keyd-plugin/composer.json")).unwrap();
    assert!(!plugin_json.contains(support::BIN), "{plugin_json}");

    // No socket: the plugin's one line, and Composer goes on (here to the repository's 401).
    let out = Command::new("ssh")
        .args(s.ssh_options())
        .arg(s.host())
        .arg(remote_install(&proj))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(
        shown
            .matches("continuing with Composer's own credentials")
            .count(),
        1,
        "{shown}"
    );
    assert!(!proj.join("vendor/acme/alpha").exists());
    // Composer went on as usual: it asked the repository, which refused it no credential.
    let asked = l.server.requests();
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r["status"] == 401),
        "{asked:?}"
    );
    assert!(shown.contains("401"), "{shown}");
    l.server.clear();

    // Through a one-session door the install works.
    let out = keyd_ssh(&l, &s, &["--origin", &l.origin], &[&remote_install(&proj)])
        .output()
        .unwrap();
    assert!(out.status.success(), "remote install: {}", text(&out));
    assert!(proj.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert_eq!(l.server.accepted(0, "/dists/"), vec!["pair".to_string()]);
}

/// `composer-keyd ssh --forward ide --config FILE`, which must succeed; FILE's path.
fn write_ide_config(l: &Local, s: &Sshd) -> PathBuf {
    let file = l.t.dir.path().join("ssh_config");
    let out = keyd_ssh(
        l,
        s,
        &["--forward", "ide", "--config", file.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    file
}

/// A lasting door `ide` for the local origin, as a user of plain ssh or an IDE makes one.
fn ide_door(l: &Local) {
    l.t.ok(
        &[
            "forward",
            "add",
            "ide",
            "--origin",
            &l.origin,
            "--expires",
            "10m",
        ],
        "",
    );
}

/// The client script, readable by remoteu, and a directory of remoteu's for sync files.
fn client(s: &Sshd) -> (PathBuf, PathBuf) {
    let dir = s.home.join("proj");
    let sync = dir.join("sync");
    std::fs::create_dir_all(&sync).unwrap();
    let script = dir.join("client.py");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ssh_client.py"),
        &script,
    )
    .unwrap();
    let out = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    (script, sync)
}

/// The remote command that runs the client on the forwarded socket.
fn py(s: &Sshd, script: &Path, args: &[&str]) -> String {
    let sock = s.remote_sock_dir().join("agent.sock");
    let mut c = format!("python3 {} {}", script.display(), sock.display());
    for a in args {
        c.push(' ');
        c.push_str(&composer_keyd::ssh::sh_quote(a));
    }
    c
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn audit_mentioning(t: &support::TestEnv, needle: &str) -> Vec<serde_json::Value> {
    t.ok(&["log", "--json"], "")
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A spawned `composer-keyd ssh`, killed (with its ssh) if the test fails before it ends.
struct Session(Option<std::process::Child>);

impl Session {
    fn spawn(mut c: Command) -> Session {
        // Its own process group, so that a failing test ends the ssh under it too.
        use std::os::unix::process::CommandExt;
        c.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Session(Some(c.spawn().unwrap()))
    }

    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }

    fn wait(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            // SAFETY: kill(2) of the process group this test started.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn wait_file(p: &Path, child: &mut std::process::Child) {
    let there = support::wait_for(1200, || {
        p.exists() || child.try_wait().ok().flatten().is_some()
    });
    assert!(there && p.exists(), "{} never appeared", p.display());
}

fn touch_as_remote(p: &Path) {
    std::fs::write(p, "").unwrap();
}

#[test]
fn composer_install_over_composer_keyd_ssh_leaves_no_secret_and_no_socket() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let proj = remote_project(&s, &l.origin);
    install_plugin_remote(&l, &s);
    let (_, sync) = client(&s);
    let cmd = format!(
        "{} && touch {d}/done && i=0 && while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        remote_install(&proj),
        d = sync.display()
    );
    let mut child = Session::spawn(keyd_ssh(&l, &s, &[], &[&cmd]));
    wait_file(&sync.join("done"), child.child());

    // During the session: the forwarded socket is remoteu's, 0600, in its 0700 directory ...
    let sock = s.remote_sock_dir().join("agent.sock");
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(meta.file_type().is_socket());
    assert_eq!((meta.uid(), meta.mode() & 0o777), (s.uid, 0o600));
    let dmeta = std::fs::symlink_metadata(s.remote_sock_dir()).unwrap();
    assert_eq!((dmeta.uid(), dmeta.mode() & 0o777), (s.uid, 0o700));
    // ... a third user cannot connect to it ...
    let nobody = support::attacker::Nobody::new(l.t.dir.path());
    let tried = nobody.python(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\nexcept OSError as e: print('refused', e.errno)",
        &[sock.to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&tried.stdout);
    assert!(said.starts_with("refused 13"), "nobody: {said}");
    // ... and no file of remoteu's anywhere, nor under its home or a shared temporary
    // directory, holds the secret.
    let except = [l.server.dir()];
    for secret in [&l.user, &l.pass] {
        let hits = remote_files_holding(&s, secret, &except);
        assert!(hits.is_empty(), "during the session: {hits:?}");
    }
    touch_as_remote(&sync.join("go"));
    let out = child.wait();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forwarding every unscoped origin"),
        "{}",
        text(&out)
    );
    assert!(proj.join("vendor/acme/alpha/src/Alpha.php").is_file());
    // The loopback repository saw the pair, for metadata and the dist.
    for prefix in ["/packages.json", "/dists/"] {
        let seen = l.server.accepted(0, prefix);
        assert!(
            !seen.is_empty() && seen.iter().all(|x| x == "pair"),
            "{prefix}: {seen:?}"
        );
    }
    // After: the socket is gone, the door revoked, nothing holds the secret.
    assert!(!sock.exists(), "the forwarded socket outlived the session");
    assert!(l
        .t
        .ok(&["forward", "list"], "")
        .contains("No forward doors"));
    let run_dir = l.t.socket().parent().unwrap().to_owned();
    let left: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("forward-") || n.starts_with("ssh-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for secret in [&l.user, &l.pass] {
        let hits = remote_files_holding(&s, secret, &except);
        assert!(hits.is_empty(), "after the session: {hits:?}");
    }
}

#[test]
fn the_door_serves_reads_of_its_origins_only_and_the_audit_names_it() {
    let l = local();
    l.t.ok(
        &["add", "other.example", "--type", "bearer"],
        "other-token-31f9\n",
    );
    let s = Sshd::start(l.t.dir.path());
    let (script, _) = client(&s);
    let o = &l.origin;
    let reqs = [
        format!("GET /v1/credentials/{o}"),
        "GET /v1/origins?project=/home/remoteu/proj/shop".to_string(),
        "GET /v1/credentials/other.example".to_string(),
        format!("PUT /v1/credentials/{o}"),
        format!("DELETE /v1/credentials/{o}"),
        "POST /v1/lock".into(),
        "POST /v1/unlock".into(),
        "POST /v1/passwd".into(),
        "POST /v1/migrate".into(),
        "GET /v1/credentials".into(),
        "POST /v1/grants/reload".into(),
        "POST /v1/forwards/reload".into(),
    ];
    let mut args = vec!["probe"];
    args.extend(reqs.iter().map(String::as_str));
    let out = keyd_ssh(&l, &s, &["--origin", o], &[&py(&s, &script, &args)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let got = lines(&out);
    assert_eq!(got.len(), reqs.len(), "{}", text(&out));
    assert_eq!(got[0]["status"], 200, "{}", got[0]);
    assert!(got[0]["body"].as_str().unwrap().contains(&l.pass));
    // The remote sees the door's origin, and no other's name.
    let listed = got[1]["body"].as_str().unwrap();
    assert_eq!(got[1]["status"], 200, "{listed}");
    assert!(
        listed.contains(o.as_str()) && !listed.contains("other.example"),
        "{listed}"
    );
    for r in &got[2..] {
        assert_eq!(r["status"], 403, "{r}");
        assert!(
            !r["body"].as_str().unwrap().contains("other-token-31f9"),
            "{r}"
        );
    }
    // Still stored, still unlocked: nothing the door refused happened.
    assert_eq!(l.t.credential(o, None)["username"], json!(l.user));
    let records = audit_mentioning(&l.t, "forward ssh-");
    let released: Vec<_> = records.iter().filter(|r| r["event"] == "release").collect();
    assert_eq!(released.len(), 1, "{records:?}");
    assert_eq!(released[0]["origin"], json!(o), "{records:?}");
    // One refusal line per refused request, each naming the one door.
    let door = released[0]["detail"].as_str().unwrap().to_owned();
    assert!(door.starts_with("forward ssh-"), "{records:?}");
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "refuse")
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<_> = reqs[2..].iter().map(|r| format!("{door}: {r}")).collect();
    assert_eq!(refused, want, "{records:?}");
}

fn askpass(t: &support::TestEnv, name: &str, answer: u8) -> PathBuf {
    let p = t.dir.path().join(name);
    let asked = t.dir.path().join("asked.txt");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\nexit {answer}\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn confirm_asks_on_this_desktop_naming_the_door_and_the_origin() {
    let (t, d) = composer_env_with(|t| {
        vec![
            "--askpass".into(),
            askpass(t, "no.sh", 1).display().to_string(),
        ]
    });
    let mut l = local_with(t, d);
    let s = Sshd::start(l.t.dir.path());
    let (script, _) = client(&s);
    let get = format!("GET /v1/credentials/{}", l.origin);
    let probe = |l: &Local| {
        let out = keyd_ssh(
            l,
            &s,
            &["--confirm", "--origin", &l.origin],
            &[&py(&s, &script, &["probe", &get])],
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        lines(&out).remove(0)
    };
    let no = probe(&l);
    assert_eq!(no["status"], 403, "{no}");
    assert!(!no["body"].as_str().unwrap().contains(&l.pass));
    let asked = std::fs::read_to_string(l.t.dir.path().join("asked.txt")).unwrap();
    assert!(
        asked.contains("forward ssh-") && asked.contains(&l.origin),
        "{asked}"
    );
    let refused: Vec<_> = audit_mentioning(&l.t, "forward ssh-")
        .into_iter()
        .filter(|r| r["event"] == "refuse")
        .collect();
    assert_eq!(refused.len(), 1, "the refusal is audited once: {refused:?}");
    let detail = refused[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("forward ssh-") && detail.ends_with(&format!(": {get}")),
        "{detail}"
    );

    l.d.stop();
    let yes = askpass(&l.t, "yes.sh", 0);
    l.d = l.t.start_daemon(&["--askpass", yes.to_str().unwrap()]);
    let yes = probe(&l);
    assert_eq!(yes["status"], 200, "{yes}");
    assert!(yes["body"].as_str().unwrap().contains(&l.pass));
    let asked = std::fs::read_to_string(l.t.dir.path().join("asked.txt")).unwrap();
    assert_eq!(asked.lines().count(), 2, "{asked}");
}

#[test]
fn forward_revoke_during_the_session_closes_the_door_at_once() {
    // An idle deadline far away: the open connection must close because of the revoke.
    let (t, d) = composer_env_with(|_| vec!["--header-timeout".into(), "120s".into()]);
    let l = local_with(t, d);
    let s = Sshd::start(l.t.dir.path());
    let (script, sync) = client(&s);
    l.t.ok(&["forward", "add", "build-box", "--origin", &l.origin], "");
    assert!(l.t.ok(&["forward", "list"], "").contains("build-box"));
    let mut child = Session::spawn(keyd_ssh(
        &l,
        &s,
        &["--forward", "build-box"],
        &[&py(
            &s,
            &script,
            &["hold", &l.origin, sync.to_str().unwrap()],
        )],
    ));
    wait_file(&sync.join("held"), child.child());
    l.t.ok(&["forward", "revoke", "build-box"], "");
    touch_as_remote(&sync.join("go"));
    let out = child.wait();
    let got = lines(&out);
    assert_eq!(got.len(), 3, "{}", text(&out));
    assert_eq!(got[0]["first"], 200, "{}", text(&out));
    assert_eq!(
        got[1]["closed"],
        true,
        "the open connection was closed: {}",
        text(&out)
    );
    assert_ne!(got[2]["next"], 200, "{}", text(&out));
    assert!(!got[2]["body"].as_str().unwrap_or("").contains(&l.pass));
    assert!(!s.remote_sock_dir().join("agent.sock").exists());
}

#[test]
fn the_doors_limits_hold_slow_head_and_slow_body_cut_and_cap_evicts_idle() {
    let (t, d) = composer_env_with(|_| {
        [
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-connections",
            "2",
        ]
        .map(String::from)
        .to_vec()
    });
    let mut l = local_with(t, d);
    let s = Sshd::start(l.t.dir.path());
    let (script, _) = client(&s);
    // A byte of body every 0.1 s for up to 20 s: without the deadlines the connection
    // would stay open all that time. The bound is generous (the deadline is 1 s).
    let get = format!("GET /v1/credentials/{}", l.origin);
    let put = format!("PUT /v1/credentials/{}", l.origin);
    let cmd = [
        py(&s, &script, &["slowhead", "20"]),
        py(&s, &script, &["slowbody", "20", &get]),
        py(&s, &script, &["slowbody", "20", &put]),
    ]
    .join(" && ");
    let out = keyd_ssh(&l, &s, &["--origin", &l.origin], &[&cmd])
        .output()
        .unwrap();
    let got = lines(&out);
    assert_eq!(got.len(), 3, "{}", text(&out));
    for (r, status) in got.iter().zip([None, Some(200), Some(403)]) {
        assert_eq!(r["closed"], true, "{r}");
        assert!(r["elapsed"].as_f64().unwrap() < 10.0, "{r}");
        if let Some(status) = status {
            assert_eq!(r["status"], status, "answered, not held: {r}");
        }
    }

    l.d.stop();
    l.d =
        l.t.start_daemon(&["--max-connections", "2", "--header-timeout", "30s"]);
    let out = keyd_ssh(
        &l,
        &s,
        &["--origin", &l.origin],
        &[&py(&s, &script, &["cap", "2", &l.origin])],
    )
    .output()
    .unwrap();
    let got = lines(&out).remove(0);
    assert_eq!(got["first"], json!([200, 200]), "{got}");
    assert_eq!(got["extra"], 200, "{got}");
    assert_eq!(
        got["closed"],
        json!([true, false]),
        "the longest idle gave way: {got}"
    );
}

#[test]
fn the_ssh_config_form_serves_plain_ssh() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let (script, _) = client(&s);
    ide_door(&l);
    let shown = keyd_ssh(&l, &s, &["--forward", "ide", "--print-config"], &[])
        .output()
        .unwrap();
    let block = String::from_utf8_lossy(&shown.stdout).into_owned();
    let remote = s.remote_sock_dir().join("agent.sock");
    let local = l.t.socket().parent().unwrap().join("forward-ide.sock");
    assert!(
        block.contains(&format!(
            "RemoteForward {} {}",
            remote.display(),
            local.display()
        )),
        "{block}{}",
        text(&shown)
    );
    let file = write_ide_config(&l, &s);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains(&block));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    // A second --config leaves the file as it was.
    let again = keyd_ssh(
        &l,
        &s,
        &["--forward", "ide", "--config", file.to_str().unwrap()],
        &[],
    )
    .output()
    .unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("has it already"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);
    assert_eq!(written.matches("RemoteForward").count(), 1, "{written}");

    // Plain ssh with that config: the door answers at the remote default path.
    let mut opts = s.ssh_options();
    let at = opts.iter().position(|o| o == "/dev/null").unwrap();
    opts[at] = file.display().to_string();
    let get = format!("GET /v1/credentials/{}", l.origin);
    let out = Command::new("ssh")
        .args(&opts)
        .arg(s.host())
        .arg(py(
            &s,
            &script,
            &["probe", &get, "GET /v1/credentials/other.example"],
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let got = lines(&out);
    assert_eq!(got.len(), 2, "{}", text(&out));
    assert_eq!(got[0]["status"], 200, "{}", got[0]);
    assert_eq!(got[1]["status"], 403, "{}", got[1]);
}

#[test]
fn a_door_ends_when_it_expires_or_its_ssh_is_killed() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let run_dir = l.t.socket().parent().unwrap().to_owned();
    l.t.ok(
        &[
            "forward",
            "add",
            "short",
            "--origin",
            &l.origin,
            "--expires",
            "3s",
        ],
        "",
    );
    assert!(run_dir.join("forward-short.sock").exists());
    let gone = support::wait_for(200, || !run_dir.join("forward-short.sock").exists());
    assert!(gone, "an expired door's socket stayed");
    assert!(!l.t.ok(&["forward", "list"], "").contains("short"));

    // A one-session door whose `composer-keyd ssh` is killed (no chance to revoke it).
    let (_, sync) = client(&s);
    let cmd = format!(
        "touch {d}/done; i=0; while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        d = sync.display()
    );
    let mut session = Session::spawn(keyd_ssh(&l, &s, &["--origin", &l.origin], &[&cmd]));
    wait_file(&sync.join("done"), session.child());
    let door = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("forward-ssh-"))
        .expect("the one-session door's socket");
    // SAFETY: kill(2) of the composer-keyd process this test started, alone.
    unsafe { libc::kill(session.child().id() as i32, libc::SIGKILL) };
    let gone = support::wait_for(100, || !door.exists());
    assert!(gone, "the door outlived the ssh that made it");
    touch_as_remote(&sync.join("go"));
    drop(session);
    // The killed process's control master would linger for its 30 s: closed now.
    for e in std::fs::read_dir(&run_dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".ctl") {
            let _ = Command::new("ssh")
                .arg("-S")
                .arg(e.path())
                .args(["-O", "exit", "x"])
                .stdin(Stdio::null())
                .output();
        }
    }
    assert!(l
        .t
        .ok(&["forward", "list"], "")
        .contains("No forward doors"));
}

#[test]
fn a_remote_socket_directory_planted_by_another_user_is_refused() {
    let l = local();
    let s = Sshd::start(l.t.dir.path());
    let planted = s.remote_sock_dir();
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "mkdir",
            "-m",
            "777",
        ])
        .arg(&planted)
        .output()
        .expect("setpriv (util-linux)");
    assert!(out.status.success(), "{}", text(&out));
    let out = keyd_ssh(&l, &s, &["--origin", &l.origin], &["true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("is not yours"), "{}", text(&out));
    assert!(
        std::fs::read_dir(&planted).unwrap().next().is_none(),
        "nothing was put there"
    );
    assert!(l
        .t
        .ok(&["forward", "list"], "")
        .contains("No forward doors"));
}

#[test]
fn a_project_door_serves_that_projects_credentials_whatever_project_the_remote_names() {
    use std::os::unix::fs::MetadataExt;
    let l = local();
    let dir = l.t.dir.path();
    let (shop, other) = (dir.join("shop"), dir.join("other"));
    for p in [&shop, &other] {
        std::fs::create_dir_all(p).unwrap();
    }
    let (mine, theirs, elsewhere) = (unique("shoptok"), unique("othertok"), unique("elsetok"));
    add(&l.t, "scoped.example", "bearer", Some(&shop), &[&mine]);
    add(&l.t, "scoped.example", "bearer", Some(&other), &[&theirs]);
    add(
        &l.t,
        "elsewhere.example",
        "bearer",
        Some(&other),
        &[&elsewhere],
    );
    // No --expires: a lasting door lasts 12 hours.
    l.t.ok(
        &[
            "forward",
            "add",
            "shopdoor",
            "--project",
            shop.to_str().unwrap(),
        ],
        "",
    );
    let listed = l.t.ok(&["forward", "list"], "");
    let line = listed.lines().find(|x| x.starts_with("shopdoor")).unwrap();
    let secs: u64 = line
        .split("expires in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!((12 * 3600 - 120..=12 * 3600).contains(&secs), "{listed}");
    let shop_real = std::fs::canonicalize(&shop).unwrap();
    assert!(
        line.contains(&format!("project {}", shop_real.display())),
        "{listed}"
    );
    // The local door: 0600 in the 0700 runtime dir.
    let run_dir = l.t.socket().parent().unwrap().to_owned();
    let sock = std::fs::symlink_metadata(run_dir.join("forward-shopdoor.sock")).unwrap();
    let rd = std::fs::symlink_metadata(&run_dir).unwrap();
    assert_eq!((sock.mode() & 0o777, rd.mode() & 0o777), (0o600, 0o700));

    let s = Sshd::start(dir);
    let (script, _) = client(&s);
    let q = format!("?project={}", other.display());
    let reqs = [
        "GET /v1/credentials/scoped.example".to_string(),
        format!("GET /v1/credentials/scoped.example{q}"),
        format!("GET /v1/credentials/{}", l.origin),
        format!("GET /v1/origins{q}"),
        format!("GET /v1/credentials/elsewhere.example{q}"),
        "GET /v1/credentials/nowhere.example".to_string(),
        "PUT /v1/credentials/scoped.example".to_string(),
    ];
    let mut args = vec!["probe"];
    args.extend(reqs.iter().map(String::as_str));
    let out = keyd_ssh(
        &l,
        &s,
        &["--forward", "shopdoor"],
        &[&py(&s, &script, &args)],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let got = lines(&out);
    assert_eq!(got.len(), reqs.len(), "{}", text(&out));
    let body = |i: usize| got[i]["body"].as_str().unwrap().to_owned();
    // The door's project counts, not the one the remote names.
    for i in [0, 1] {
        assert_eq!(got[i]["status"], 200, "{}", got[i]);
        assert!(
            body(i).contains(&mine) && !body(i).contains(&theirs),
            "{}",
            got[i]
        );
    }
    // An unscoped credential goes out through a project door too.
    assert_eq!(got[2]["status"], 200, "{}", got[2]);
    assert!(body(2).contains(&l.pass));
    let listed = body(3);
    assert_eq!(got[3]["status"], 200, "{listed}");
    assert!(
        listed.contains("scoped.example") && !listed.contains("elsewhere.example"),
        "{listed}"
    );
    for r in &got[4..] {
        assert!(r["status"] == 403 || r["status"] == 404, "{r}");
        let b = r["body"].as_str().unwrap();
        assert!(!b.contains(&theirs) && !b.contains(&elsewhere), "{r}");
    }

    let records = audit_mentioning(&l.t, "forward shopdoor");
    let of = |event: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["event"] == event).collect()
    };
    let released: Vec<_> = of("release")
        .iter()
        .map(|r| r["origin"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        released.contains(&"scoped.example".to_string()) && released.contains(&l.origin),
        "{records:?}"
    );
    for r in of("release") {
        assert_eq!(r["project"], json!(shop_real.display().to_string()), "{r}");
    }
    // One refusal line per refused request, each naming the door.
    let refused: Vec<_> = of("refuse")
        .iter()
        .map(|r| r["detail"].as_str().unwrap().to_owned())
        .collect();
    let want: Vec<_> = reqs[4..]
        .iter()
        .map(|r| format!("forward shopdoor: {}", r.split('?').next().unwrap()))
        .collect();
    assert_eq!(refused, want, "{records:?}");
    l.t.ok(&["forward", "revoke", "shopdoor"], "");
}

/// ssh with the config block of `--config`, as plain ssh or an IDE runs it.
fn plain_ssh(s: &Sshd, config: &Path, extra: &[&str], remote: &str) -> Output {
    let mut opts = s.ssh_options();
    let at = opts.iter().position(|o| o == "/dev/null").unwrap();
    opts[at] = config.display().to_string();
    Command::new("ssh")
        .args(&opts)
        .args(extra)
        .arg(s.host())
        .arg(remote)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn status_of(out: &Output) -> serde_json::Value {
    lines(out)
        .first()
        .map_or(json!(null), |r| r["status"].clone())
}

#[test]
fn a_stale_remote_socket_is_replaced_by_composer_keyd_ssh_and_stops_plain_ssh_unless_sshd_unlinks()
{
    let l = local();
    let mut s = Sshd::start(l.t.dir.path());
    let (script, _) = client(&s);
    ide_door(&l);
    let file = write_ide_config(&l, &s);
    let get = format!("GET /v1/credentials/{}", l.origin);
    let sock = s.remote_sock_dir().join("agent.sock");

    // sshd's default (no StreamLocalBindUnlink): composer-keyd ssh twice in a row.
    for _ in 0..2 {
        let out = keyd_ssh(
            &l,
            &s,
            &["--forward", "ide"],
            &[&py(&s, &script, &["probe", &get])],
        )
        .output()
        .unwrap();
        assert_eq!(status_of(&out), 200, "{}", text(&out));
        assert!(!sock.exists());
    }
    // Plain ssh works once and leaves the socket behind; the next plain ssh cannot bind
    // it, ssh's own StreamLocalBindUnlink notwithstanding (it is for -L).
    let probe = py(&s, &script, &["probe", &get]);
    let out = plain_ssh(&s, &file, &[], &probe);
    assert_eq!(status_of(&out), 200, "{}", text(&out));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());
    let out = plain_ssh(&s, &file, &["-o", "StreamLocalBindUnlink=yes"], &probe);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("remote port forwarding failed"),
        "{}",
        text(&out)
    );
    // composer-keyd ssh removes the stale socket itself (and its own after), as does `rm`,
    // as the block's comment says.
    let out = keyd_ssh(&l, &s, &["--forward", "ide"], &[&probe])
        .output()
        .unwrap();
    assert_eq!(status_of(&out), 200, "{}", text(&out));
    assert!(!sock.exists());
    let out = plain_ssh(&s, &file, &[], &probe);
    assert_eq!(status_of(&out), 200, "{}", text(&out));
    let rm = s.as_remote(&format!("rm {}", sock.display()));
    assert!(rm.status.success(), "{}", text(&rm));
    let out = plain_ssh(&s, &file, &[], &probe);
    assert_eq!(status_of(&out), 200, "{}", text(&out));
    let block = std::fs::read_to_string(&file).unwrap();
    assert!(
        block.contains("`StreamLocalBindUnlink yes`")
            && block.contains(&format!("`rm {}` there", sock.display())),
        "{block}"
    );

    // With `StreamLocalBindUnlink yes` in sshd_config, plain ssh replaces it.
    let dir = l.t.dir.path().join("second");
    drop(s);
    s = Sshd::start_with(&dir, "StreamLocalBindUnlink yes\n");
    let (script, _) = client(&s);
    let made = s.as_remote(&format!("mkdir -m 700 {}", s.remote_sock_dir().display()));
    assert!(made.status.success(), "{}", text(&made));
    let probe = py(&s, &script, &["probe", &get]);
    for _ in 0..2 {
        let out = plain_ssh(&s, &file, &[], &probe);
        assert_eq!(status_of(&out), 200, "{}", text(&out));
        assert!(sock.exists());
    }
    l.t.ok(&["forward", "revoke", "ide"], "");
}
