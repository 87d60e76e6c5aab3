//! The CLI starts a daemon when none answers, and replaces one that speaks another protocol.

use crate::support;

use std::process::Stdio;
use support::{request, TestEnv};

fn stop(t: &TestEnv) {
    let status = request(&t.socket(), "GET", "/v1/status", None)
        .unwrap()
        .json();
    let pid = status["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill has no memory effects; the pid is the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// `status --json` without --no-autostart.
fn status_with_autostart(t: &TestEnv) -> serde_json::Value {
    let out = t
        .command(support::BIN)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn starts_the_daemon_when_none_answers() {
    let t = TestEnv::with_keyring(true);
    let status = status_with_autostart(&t);
    assert_eq!(status["protocol"], 1);
    stop(&t);
    // Bounded wait until the daemon is gone (it removes its socket on SIGTERM).
    for _ in 0..200 {
        if !t.socket().exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(!t.socket().exists(), "the daemon stopped");

    // With --no-autostart, no daemon is started and the error says how to start one.
    let out = t.cli(&["status"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("composer-keyd serve"));
    assert!(!t.socket().exists(), "nothing was started");
}

#[test]
fn replaces_a_daemon_with_another_protocol() {
    let t = TestEnv::with_keyring(true);
    support::require("python3", "python3");
    let dir = t.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    // A fake daemon that answers status with protocol 0 and its own pid.
    let fake = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
print("ready", flush=True)
for _ in range(50):
    c, _ = s.accept()
    c.recv(65536)
    body = '{"version":"0.0.1","protocol":0,"backend":"keyring","backend_reason":"x","locked":false,"credentials":0,"enabled":0,"uptime_secs":1,"pid":%d}' % os.getpid()
    c.sendall(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)).encode())
    c.close()
"#;
    // The CLI signals only a process whose executable is composer-keyd: the stale daemon
    // is python3 under that name, as an older build would be.
    let python = std::fs::canonicalize("/usr/bin/python3").expect("/usr/bin/python3 (python3)");
    let stale = t.dir.path().join("composer-keyd");
    std::fs::copy(&python, &stale).unwrap();
    let mut child = t
        .command(&stale)
        .args(["-c", fake])
        .arg(t.socket())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let status = status_with_autostart(&t);
    assert_eq!(
        status["protocol"], 1,
        "the real daemon replaced the stale one"
    );
    assert!(
        child.wait().unwrap().code().is_none(),
        "the fake daemon was killed by a signal"
    );
    stop(&t);
}
