//! Approvals that remember (`--confirm=program|session`): with a test askpass that counts
//! its invocations, one prompt per program (or session) until `lock`, one prompt for a burst
//! of concurrent lookups, and `--confirm=each` asking every time as before.

use crate::support;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::TestEnv;

const TOKEN: &str = "approval-secret-token-7373";

/// An askpass that says yes after `delay` and logs one line per invocation.
fn counting_askpass(t: &TestEnv, delay: &str) -> (PathBuf, PathBuf) {
    let log = t.dir.path().join("asked.log");
    let p = t.dir.path().join("askpass.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\necho \"$1\" >> {}\nsleep {delay}\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (p, log)
}

fn prompts(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// A lookup from another program (Python): the response's status line.
fn py_get(t: &TestEnv, origin: &str) -> String {
    let reply = support::python_get(t, origin);
    reply.split("\r\n").next().unwrap_or_default().to_owned()
}

fn released(t: &TestEnv, origin: &str) {
    let r = t.lookup(origin, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credential"]["token"], TOKEN);
}

#[test]
fn program_asks_once_per_program_until_lock() {
    let t = TestEnv::with_keyring(true);
    let (askpass, log) = counting_askpass(&t, "0");
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm=program"],
        &format!("{TOKEN}\n"),
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    assert_eq!(list[0]["confirm_scope"], "program", "{list}");

    for _ in 0..10 {
        released(&t, "x.example");
    }
    assert_eq!(prompts(&log), 1, "ten lookups from one program, one prompt");
    assert!(py_get(&t, "x.example").contains(" 200 "));
    assert_eq!(prompts(&log), 2, "another program asks again");
    assert!(py_get(&t, "x.example").contains(" 200 "));
    assert_eq!(prompts(&log), 2, "and is remembered too");

    t.ok(&["lock"], "");
    t.ok(&["unlock"], "");
    released(&t, "x.example");
    assert!(py_get(&t, "x.example").contains(" 200 "));
    assert_eq!(prompts(&log), 4, "lock forgot both");

    // The audit log says what each approval covered.
    let approvals: Vec<serde_json::Value> = t
        .ok(&["log", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "approve")
        .collect();
    assert_eq!(approvals.len(), 4, "{approvals:?}");
    assert!(approvals.iter().all(|r| r["detail"]
        .as_str()
        .is_some_and(|d| d.contains("x.example") && d.contains("until lock"))));
    assert!(approvals
        .iter()
        .any(|r| r["detail"].as_str().unwrap().contains("python")));
}

/// [`py_get`] from a new session as `remember::session_of` sees one: a new process session
/// (`setsid`), and when the caller has a login session (`/proc/self/sessionid` set by
/// pam_loginuid), a new one of those too, since `setsid` keeps the login session id and that
/// is what `session_of` uses first. Writing `/proc/self/loginuid` (as pam_loginuid does at
/// login) is what gives a process a new login session id; the kernel takes it only from the
/// process itself, hence shell builtins (`read`, `echo`) and `exec`, and it needs the root
/// this suite runs as. Under `unshare --pid --fork` (CI) the caller's session leader is
/// outside the namespace and `session_of` names the process tree instead; the `setsid`
/// process leads a session inside the namespace, so that differs too.
fn py_get_in_new_session(t: &TestEnv, origin: &str) -> String {
    support::require("setsid", "util-linux");
    const NEW_SESSION: &str = r#"set -e
# /proc files end without a newline, so `read` fails at EOF while still setting the name.
s=4294967295
read s < /proc/self/sessionid || true
if [ "$s" != 4294967295 ]; then
    read uid < /proc/self/loginuid || [ -n "$uid" ]
    echo "$uid" > /proc/self/loginuid
fi
exec setsid --wait "$@"
"#;
    let out = t
        .command("sh")
        .args([
            "-c",
            NEW_SESSION,
            "sh",
            support::PYTHON,
            "-c",
            support::PY_GET,
        ])
        .arg(t.socket())
        .arg(origin)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "no lookup from a new session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reply.split("\r\n").next().unwrap_or_default().to_owned()
}

#[test]
fn session_asks_again_for_the_same_program_in_a_new_session() {
    let t = TestEnv::with_keyring(true);
    let (askpass, log) = counting_askpass(&t, "0");
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm=session"],
        &format!("{TOKEN}\n"),
    );
    for _ in 0..3 {
        assert!(py_get(&t, "x.example").contains(" 200 "));
    }
    assert_eq!(prompts(&log), 1, "one session, one prompt");
    assert!(py_get_in_new_session(&t, "x.example").contains(" 200 "));
    assert_eq!(
        prompts(&log),
        2,
        "the same program in a new session asks again, as `program` would not"
    );
    assert!(py_get(&t, "x.example").contains(" 200 "));
    assert_eq!(prompts(&log), 2, "the first session's approval still holds");

    // Each approval names the session it covered, and they differ.
    let sessions = approvals(&t);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_ne!(sessions[0], sessions[1]);
    assert!(sessions.iter().all(|d| d.contains(" in ")), "{sessions:?}");
}

#[test]
fn sixteen_concurrent_lookups_wait_on_one_dialog() {
    let t = TestEnv::with_keyring(true);
    // The dialog stays open long enough for every lookup to arrive while it is.
    let (askpass, log) = counting_askpass(&t, "1");
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm=session"],
        &format!("{TOKEN}\n"),
    );
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| t.lookup("x.example", None)))
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
        }
    });
    assert_eq!(prompts(&log), 1, "16 concurrent lookups, one dialog");
    released(&t, "x.example");
    assert_eq!(prompts(&log), 1, "the session's approval holds");
}

#[test]
fn each_asks_every_time_as_before() {
    let t = TestEnv::with_keyring(true);
    let (askpass, log) = counting_askpass(&t, "0");
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    // The literal `--confirm=each`, which bare `--confirm` means.
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm=each"],
        &format!("{TOKEN}\n"),
    );
    let list: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    // `each` is the default scope, which `list` leaves out.
    assert!(
        list[0]["confirm"] == true
            && matches!(list[0]["confirm_scope"].as_str(), None | Some("each")),
        "{list}"
    );
    for _ in 0..3 {
        released(&t, "x.example");
    }
    assert_eq!(prompts(&log), 3);
    // Each yes is an `approve` record of that release alone, beside the release it let out.
    let approved = approvals(&t);
    assert_eq!(approved.len(), 3, "{approved:?}");
    assert!(
        approved
            .iter()
            .all(|d| d.contains("x.example") && d.contains("for this release only")),
        "{approved:?}"
    );
    // Widening to `program` is a policy change the user confirms (one prompt), then holds.
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm=program"],
        &format!("{TOKEN}\n"),
    );
    assert_eq!(prompts(&log), 4, "the policy change was confirmed");
    for _ in 0..3 {
        released(&t, "x.example");
    }
    assert_eq!(prompts(&log), 5);
    let approved = approvals(&t);
    assert_eq!(
        approved.len(),
        4,
        "the policy change is not a release: {approved:?}"
    );
    assert!(approved[3].contains("until lock"), "{approved:?}");
}

/// The `detail` of every `approve` record in the audit log, oldest first.
fn approvals(t: &TestEnv) -> Vec<String> {
    t.ok(&["log", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["event"] == "approve")
        .map(|r| r["detail"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// With no askpass, a daemon run in the foreground of a terminal asks on it (`/dev/tty`):
/// `script` gives it a pseudo-terminal, and the test types the answers.
#[test]
fn without_askpass_a_foreground_daemon_asks_on_its_terminal() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    support::require("script", "bsdutils");
    let t = TestEnv::with_keyring(true);
    let mut child = t
        .command("script")
        .args(["-qfec", &format!("{} serve", support::BIN), "/dev/null"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script (Debian package bsdutils)");
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().unwrap();
    let seen = screen.clone();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let up = support::wait_for(200, || {
        support::request(&t.socket(), "GET", "/v1/status", None).is_ok_and(|r| r.status == 200)
    });
    assert!(up, "the daemon under script did not start");
    let pid = t.status_json()["pid"].as_i64().unwrap() as i32;
    t.ok(
        &["add", "x.example", "--type", "bearer", "--confirm"],
        &format!("{TOKEN}\n"),
    );
    let asked = |n: usize| {
        support::wait_for(200, || {
            String::from_utf8_lossy(&screen.lock().unwrap())
                .matches("Allow? [y/N]")
                .count()
                >= n
        })
    };
    let answers = [("y\n", 200), ("n\n", 403)];
    for (i, (answer, status)) in answers.into_iter().enumerate() {
        std::thread::scope(|s| {
            let lookup = s.spawn(|| t.lookup("x.example", None));
            assert!(asked(i + 1), "no prompt on the terminal");
            stdin.write_all(answer.as_bytes()).unwrap();
            stdin.flush().unwrap();
            let r = lookup.join().unwrap();
            assert_eq!(r.status, status, "{}", r.body);
        });
    }
    let shown = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    assert!(shown.contains("x.example"), "{shown}");
    assert!(!shown.contains(TOKEN));
    // SAFETY: the pid is the daemon this test started (its status said so).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    support::wait_for(200, || {
        // SAFETY: signal 0 only asks whether that pid still exists.
        unsafe { libc::kill(pid, 0) != 0 }
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let _ = drain.join();
}

#[test]
fn a_session_approval_ends_after_confirm_for() {
    let t = TestEnv::with_keyring(true);
    let (askpass, log) = counting_askpass(&t, "0");
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    t.ok(
        &[
            "add",
            "x.example",
            "--type",
            "bearer",
            "--confirm=session",
            "--confirm-for",
            "1s",
        ],
        &format!("{TOKEN}\n"),
    );
    released(&t, "x.example");
    released(&t, "x.example");
    assert_eq!(prompts(&log), 1);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    released(&t, "x.example");
    assert_eq!(prompts(&log), 2, "the approval ran out after 1 s");
    let out = t.cli(
        &[
            "add",
            "y.example",
            "--type",
            "bearer",
            "--confirm-for",
            "1h",
        ],
        "t\n",
    );
    assert!(
        !out.status.success(),
        "--confirm-for needs --confirm=session"
    );
}
