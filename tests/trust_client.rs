//! The CLI trusts only a socket that the caller or root could have put where it looks
//! (issue 11 items 1 and 7), hardens itself while it holds a secret, and ends quietly when
//! its reader goes away (issue 12).

use crate::support;

use composer_keyd::trust;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::impostor::{chmod, Sandbox, NOBODY};
use support::{TestEnv, BIN};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
const PASSPHRASE: &str = "correct horse battery staple";

/// A status reply as a daemon of `protocol` would send it, naming `pid`.
fn status(protocol: u32, pid: u32) -> serde_json::Value {
    serde_json::json!({"version": "0.1.0", "protocol": protocol, "backend": "vault",
        "backend_reason": "configured", "locked": true, "credentials": 0, "enabled": 0,
        "uptime_secs": 1, "pid": pid, "age_file_exists": true})
}

/// The victim's environment: a temp HOME, no XDG_RUNTIME_DIR and no COMPOSER_KEYD_SOCK, so
/// the socket falls back to `$TMPDIR/composer-keyd-0/` in the sandbox's sticky TMPDIR.
fn victim(sandbox: &Sandbox) -> TestEnv {
    let mut t = TestEnv::bare();
    t.env.remove("XDG_RUNTIME_DIR");
    t.env.remove("COMPOSER_KEYD_SOCK");
    t.env
        .insert("TMPDIR".into(), sandbox.tmp().to_string_lossy().into());
    t
}

/// Runs the CLI in `t`'s environment (autostart on) with `stdin`.
fn run(t: &TestEnv, args: &[&str], stdin: &str, cwd: &Path) -> Output {
    use std::io::Write;
    let mut child = t
        .command(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run composer-keyd");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The CLI failed with exactly one line that names the socket, the offending directory, its
/// owner and the fix.
fn assert_refused(o: &Output, socket: &Path, offender: &Path, owner: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "the CLI succeeded: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let expected = format!(
        "refusing to use {}: {} is owned by {owner}",
        socket.display(),
        offender.display()
    );
    assert!(err.contains(&expected), "{expected:?} not in {err:?}");
    assert!(
        err.trim_end()
            .ends_with("set XDG_RUNTIME_DIR or COMPOSER_KEYD_SOCK to a private directory"),
        "{err}"
    );
}

/// `nobody` squats the victim's fallback socket directory in a shared sticky TMPDIR.
fn squatted() -> (Sandbox, TestEnv, support::impostor::Impostor, PathBuf) {
    let s = Sandbox::new();
    let t = victim(&s);
    let dir = s.tmp().join("composer-keyd-0");
    let sock = dir.join("agent.sock");
    let imp = s.impostor(&sock, &status(1, 1), true);
    assert_eq!(std::fs::metadata(&dir).unwrap().uid(), NOBODY);
    (s, t, imp, sock)
}

#[test]
fn add_sends_nothing_to_a_squatted_socket() {
    let (_s, t, imp, sock) = squatted();
    let o = run(
        &t,
        &["add", "repo.magento.com"],
        &format!("{PUB}\n{PRIV}\n"),
        &t.home(),
    );
    assert_refused(&o, &sock, sock.parent().unwrap(), "uid 65534 (nobody)");
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}",
        String::from_utf8_lossy(&imp.received())
    );
    assert!(!stderr(&o).contains(PRIV));
}

#[test]
fn unlock_sends_nothing_to_a_squatted_socket() {
    let (_s, t, imp, sock) = squatted();
    let o = run(&t, &["unlock"], &format!("{PASSPHRASE}\n"), &t.home());
    assert_refused(&o, &sock, sock.parent().unwrap(), "uid 65534 (nobody)");
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}",
        String::from_utf8_lossy(&imp.received())
    );
}

#[test]
fn import_sends_nothing_and_keeps_auth_json() {
    let (_s, t, imp, sock) = squatted();
    let project = t.home().join("project");
    std::fs::create_dir(&project).unwrap();
    let auth = project.join("auth.json");
    let text = format!(
        "{{\"http-basic\": {{\"repo.magento.com\": {{\"username\": \"{PUB}\", \"password\": \"{PRIV}\"}}}}}}\n"
    );
    std::fs::write(&auth, &text).unwrap();
    let o = run(&t, &["import", auth.to_str().unwrap()], "", &project);
    assert_refused(&o, &sock, sock.parent().unwrap(), "uid 65534 (nobody)");
    assert!(
        imp.received().is_empty(),
        "the impostor received {:?}",
        String::from_utf8_lossy(&imp.received())
    );
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        text,
        "auth.json changed"
    );
}

/// A `sleep` standing in for any process the attacker wants dead.
fn bystander() -> std::process::Child {
    Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("start sleep")
}

fn alive(c: &mut std::process::Child) -> bool {
    matches!(c.try_wait(), Ok(None))
}

#[test]
fn a_squatter_cannot_get_a_pid_signalled() {
    let s = Sandbox::new();
    let t = victim(&s);
    let mut sleep = bystander();
    let sock = s.tmp().join("composer-keyd-0/agent.sock");
    let mut imp = s.impostor(&sock, &status(999, sleep.id()), true);
    let o = run(&t, &["status"], "", &t.home());
    // Bounded: give a signal 20 x 25 ms to land.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        assert!(alive(&mut sleep), "the bystander was killed");
    }
    assert!(imp.alive());
    assert_refused(&o, &sock, sock.parent().unwrap(), "uid 65534 (nobody)");
    assert!(imp.received().is_empty());
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn a_same_uid_impostor_cannot_get_another_pid_signalled() {
    // Our own user's socket directory, but a process that is not composer-keyd listening.
    let s = Sandbox::new();
    let t = TestEnv::bare();
    let mut sleep = bystander();
    let sock = t.socket();
    let mut imp = s.impostor(&sock, &status(999, sleep.id()), false);
    let o = run(&t, &["status"], "", &t.home());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(25));
        assert!(alive(&mut sleep), "the bystander was killed");
    }
    assert!(
        imp.alive(),
        "the impostor (not verified as composer-keyd) was killed"
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("is not a composer-keyd daemon of yours"),
        "{err}"
    );
    let _ = sleep.kill();
    let _ = sleep.wait();
}

#[test]
fn a_real_daemon_is_verified_by_its_peer_pid() {
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    let me = trust::euid();
    assert!(trust::is_our_daemon(d.pid() as i32, me));
    assert!(!trust::is_our_daemon(d.pid() as i32, me + 1));
    let stream = std::os::unix::net::UnixStream::connect(t.socket()).unwrap();
    let peer = trust::peer_cred(std::os::fd::AsFd::as_fd(&stream)).unwrap();
    assert_eq!(peer.pid, Some(d.pid() as i32));
}

/// Runs the CLI as `nobody` with `COMPOSER_KEYD_SOCK=sock`; the listener must see no
/// connection at all.
fn nobody_is_refused(s: &Sandbox, sock: &Path, listener: &UnixListener, offender: &str) {
    let cli = s.cli_copy();
    let o = s
        .as_nobody(&[
            cli.as_os_str(),
            "--no-autostart".as_ref(),
            "status".as_ref(),
        ])
        .env("COMPOSER_KEYD_SOCK", sock)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!("refusing to use {}: ", sock.display())),
        "{err}"
    );
    assert!(err.contains(offender), "{offender:?} not in {err}");
    listener.set_nonblocking(true).unwrap();
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the CLI connected"
    );
}

#[test]
fn a_non_root_caller_refuses_a_dir_of_another_user_or_group_writable() {
    let s = Sandbox::new();
    let theirs = s.dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    let sock = theirs.join("agent.sock");
    let l = UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o777);
    std::os::unix::fs::chown(&theirs, Some(1234), Some(1234)).unwrap();
    nobody_is_refused(
        &s,
        &sock,
        &l,
        &format!("{} is owned by uid 1234", theirs.display()),
    );

    let shared = s.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let sock = shared.join("agent.sock");
    let l = UnixListener::bind(&sock).unwrap();
    chmod(&sock, 0o777);
    std::os::unix::fs::chown(&shared, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&shared, 0o770);
    nobody_is_refused(
        &s,
        &sock,
        &l,
        &format!(
            "{} is writable by other users (mode 0770)",
            shared.display()
        ),
    );
}

/// Waits (bounded: 400 x 25 ms) until `pid` shows a core limit of 0 in /proc/PID/limits.
fn wait_no_core(pid: u32) -> bool {
    (0..400).any(|_| {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
        let zero = limits
            .lines()
            .find(|l| l.starts_with("Max core file size"))
            .is_some_and(|l| l.split_whitespace().skip(4).take(2).all(|v| v == "0"));
        if !zero {
            std::thread::sleep(Duration::from_millis(25));
        }
        zero
    })
}

#[test]
fn add_waiting_for_its_secret_is_not_dumpable_and_has_no_core() {
    let s = Sandbox::new();
    let cli = s.cli_copy();
    // `add` asks the daemon for its backend before it reads the secret: nobody's own
    // (trusted) stand-in answers that it is a keyring daemon.
    let mut st = status(composer_keyd::protocol::PROTOCOL, 1);
    st["backend"] = "keyring".into();
    let _daemon = s.impostor(
        &s.tmp().join(format!("composer-keyd-{NOBODY}/agent.sock")),
        &st,
        true,
    );
    let mut child = s
        .as_nobody(&[
            cli.as_os_str(),
            "--no-autostart".as_ref(),
            "add".as_ref(),
            "repo.example.org".as_ref(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let no_core = wait_no_core(pid);
    // A process that is not dumpable has its /proc/PID files owned by root, not by its uid.
    let owner = std::fs::metadata(format!("/proc/{pid}/status")).map(|m| m.uid());
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(no_core, "RLIMIT_CORE of `add` never became 0");
    assert_eq!(exe.unwrap(), cli, "the pid is the CLI's");
    assert_eq!(
        owner.unwrap(),
        0,
        "/proc/PID of `add` (running as nobody) is not root-owned: it is dumpable"
    );
}

/// Runs the CLI with its stdout a pipe whose reader is already gone.
fn with_closed_stdout(t: &TestEnv, args: &[&str], cwd: &Path) -> Output {
    let mut child = t
        .command(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut err).unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: Vec::new(),
        stderr: err,
    }
}

#[test]
fn list_log_and_scan_end_quietly_when_the_reader_goes() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    t.ok(&["add", "repo.magento.com"], &format!("{PUB}\n{PRIV}\n"));
    let state = t.home().join(".local/state/composer-keyd");
    std::fs::create_dir_all(&state).unwrap();
    let empty = t.home().join("empty-project");
    std::fs::create_dir(&empty).unwrap();
    for args in [&["--no-autostart", "list"][..], &["log"][..], &["scan"][..]] {
        let o = with_closed_stdout(&t, args, &empty);
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} printed: {err}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// Runs `serve`, which must exit on its own (bounded: 400 x 25 ms); a daemon that starts
/// instead is stopped and the test fails.
fn serve_refused(t: &TestEnv) -> Output {
    let mut child = t
        .command(BIN)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = (0..400).any(|_| {
        let done = matches!(child.try_wait(), Ok(Some(_)));
        if !done {
            std::thread::sleep(Duration::from_millis(25));
        }
        done
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve started with a directory others can write");
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_refuses_and_doctor_reports_dirs_others_can_write() {
    let t = TestEnv::with_keyring(true);
    let data = t.home().join(".local/share/composer-keyd");
    std::fs::create_dir_all(&data).unwrap();
    chmod(&data, 0o775);
    let serve = serve_refused(&t);
    let err = stderr(&serve);
    assert_eq!(serve.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "refusing to use {0}: {0} is writable by other users (mode 0775)",
            data.display()
        )),
        "{err}"
    );
    assert!(!t.socket().exists(), "the daemon bound its socket");
    let doctor = t.cli(&["doctor", "--offline"], "");
    let out = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        out.contains(&format!(
            "PROBLEM  private directory: refusing to use {}",
            data.display()
        )),
        "{out}"
    );

    // The plugin's copy, which Composer loads PHP from, may not be a symlink either.
    chmod(&data, 0o700);
    let elsewhere = t.home().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, data.join("composer-plugin")).unwrap();
    let serve = serve_refused(&t);
    let err = stderr(&serve);
    assert_eq!(serve.status.code(), Some(1), "{err}");
    assert!(err.contains("composer-plugin is a symlink"), "{err}");
}

#[test]
fn a_non_root_user_replaces_its_own_stale_non_dumpable_daemon() {
    // The stale daemon: nobody's, non-dumpable as ours is (so nobody cannot read its exe),
    // running as `composer-keyd` and speaking another protocol.
    let s = Sandbox::new();
    let cli = s.cli_copy();
    let stale_exe = s.bin().join("stale").join("composer-keyd");
    std::fs::create_dir(stale_exe.parent().unwrap()).unwrap();
    chmod(stale_exe.parent().unwrap(), 0o755);
    std::fs::copy(
        std::fs::canonicalize("/usr/bin/python3").unwrap(),
        &stale_exe,
    )
    .unwrap();
    chmod(&stale_exe, 0o755);
    let home = s.tmp().join("nobody-home");
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o700);
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    let sock = s.tmp().join(format!("composer-keyd-{NOBODY}/agent.sock"));
    let mut stale = s.impostor_as(
        &sock,
        &status(0, 1),
        true,
        &stale_exe,
        &[("IMPOSTOR_NOT_DUMPABLE", "1")],
    );
    let readable = std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "readlink",
        ])
        .arg(format!("/proc/{}/exe", stale.child.id()))
        .output()
        .unwrap();
    assert!(
        !readable.status.success(),
        "the stale daemon's exe is readable to nobody: the fallback is not exercised"
    );

    let o = s
        .as_nobody(&[cli.as_os_str(), "status".as_ref(), "--json".as_ref()])
        .env("HOME", &home)
        .output()
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    // The daemon the CLI started, stopped here whatever happened.
    let started = out["pid"].as_i64().filter(|_| out["protocol"] == 1);
    if let Some(pid) = started {
        // SAFETY: kill has no memory effects; the pid is the daemon this test caused.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let gone = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "the started daemon did not stop");
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(started.is_some(), "{out}");
    assert!(!stale.alive(), "the stale daemon still runs");
}
