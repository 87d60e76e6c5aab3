//! Process state of the real daemon: not dumpable (its /proc files belong to root when it runs as an
//! unprivileged user), core limit 0, memory locked, open-files limit raised, memory given back.

use crate::support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use support::net::status_kb;
use support::TestEnv;

const NOBODY: u32 = 65534;

fn owner(path: impl AsRef<Path>) -> u32 {
    std::fs::metadata(path).unwrap().uid()
}

fn core_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_owned();
    line.split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn chown_tree(dir: &Path, uid: u32) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: lchown reads the NUL-terminated path we own.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            chown_tree(&e.path(), uid);
        } else {
            let c = std::ffi::CString::new(e.path().as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
        }
    }
}

/// Runs `args` as nobody, with this test's environment.
fn as_nobody(t: &TestEnv, args: &[&str], log: &Path) -> Child {
    t.command("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn unprivileged_daemon_is_not_dumpable_and_has_no_core_limit() {
    support::require("setpriv", "util-linux");
    support::require("sleep", "coreutils");
    let t = TestEnv::bare();
    let bin = t.dir.path().join("composer-keyd");
    std::fs::copy(support::BIN, &bin).unwrap();
    let log = t.dir.path().join("nobody-daemon.log");
    std::fs::write(&log, b"").unwrap();
    chown_tree(t.dir.path(), NOBODY);

    // Control: an ordinary process of nobody's has its /proc files owned by nobody.
    let mut control = as_nobody(&t, &["sleep", "30"], &t.dir.path().join("sleep.log"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(owner(format!("/proc/{}/environ", control.id())), NOBODY);
    let _ = control.kill(); // the control has served its purpose
    let _ = control.wait();

    let mut d = as_nobody(&t, &[bin.to_str().unwrap(), "serve"], &log);
    let pid = d.id();
    // Bounded: 200 x 25 ms until it says it listens.
    let ready = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening"))
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(ready, "the daemon did not start as nobody: {text}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains(&NOBODY.to_string()), "{uid_line}");
    for f in ["environ", "mem", "maps", "fd"] {
        assert_eq!(
            owner(format!("/proc/{pid}/{f}")),
            0,
            "/proc/{pid}/{f} belongs to root: the daemon is not dumpable"
        );
    }
    assert_eq!(core_limit(pid), "0 0");
    // Without CAP_IPC_LOCK and with the usual 8 MiB RLIMIT_MEMLOCK, secrets are locked page by page.
    assert!(text.contains("memory=Pages"), "{text}");
    assert!(text.contains("not_dumpable=true"), "{text}");

    // Root is another user to this daemon: refused, and the refusal is in nobody's audit log.
    // A raw connection: the CLI itself would not connect (nobody's directory fails its rule).
    let refused = support::request(&t.socket(), "GET", "/v1/status", None);
    assert!(refused.is_err(), "root was served: {refused:?}");
    // Refusals have their own file, so that no flood of them rotates releases out.
    let audit = t.home().join(".local/state/composer-keyd/refusals.log");
    let audit = std::fs::read_to_string(&audit).unwrap_or_default();
    assert!(
        audit.contains(r#""event":"reject-peer""#) && audit.contains(r#""uid":0"#),
        "{audit}"
    );

    // SAFETY: kill has no memory effects; the pid is this test's daemon.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(d.wait().unwrap().success());
}

#[test]
fn daemon_locks_its_memory_and_raises_open_files() {
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    t.ok(
        &["add", "x.example", "--type", "bearer"],
        "process-test-token\n",
    );
    let pid = d.pid();
    assert_eq!(core_limit(pid), "0 0");
    // A lookup puts the credential in the cache, which lives in the locked arena.
    let r = support::request(&t.socket(), "GET", "/v1/credentials/x.example", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let lck = status_kb(pid, "VmLck:").unwrap();
    let rss = status_kb(pid, "VmRSS:").unwrap();
    // Only the pages that hold secrets are locked, not the process (no mlockall): one or
    // two arena pages, plus a heap page per cached string that did not fit there.
    assert!(lck > 0 && lck <= 64, "VmLck {lck} kB of VmRSS {rss} kB");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<&str> = nofile.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        v[0], v[1],
        "the soft open-files limit was raised to the hard one"
    );
    assert!(d.log_text().contains("process hardened"));
}

#[test]
fn vault_unlock_leaves_scrypt_memory_neither_locked_nor_resident() {
    let mut t = TestEnv::bare();
    t.env.insert("COMPOSER_KEYD_BACKEND".into(), "vault".into());
    let d = t.start_daemon(&[]);
    // Creates the vault and unlocks it: scrypt at the real work factor (256 MiB).
    t.ok(&["unlock"], "process-test-pass\nprocess-test-pass\n");
    t.ok(
        &["add", "v.example", "--type", "bearer"],
        "process-vault-token\n",
    );
    let r = support::request(&t.socket(), "GET", "/v1/credentials/v.example", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let pid = d.pid();
    let lck = status_kb(pid, "VmLck:").unwrap();
    let rss = status_kb(pid, "VmRSS:").unwrap();
    assert!(lck <= 64, "VmLck {lck} kB after a vault unlock");
    // The work buffer alone is 262,144 kB; the daemon without it is a few MB.
    assert!(rss < 64 * 1024, "VmRSS {rss} kB after a vault unlock");
}

#[test]
fn memory_taken_by_many_connections_is_given_back_after_they_close() {
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    t.ok(
        &["add", "m.example", "--type", "bearer"],
        "process-memory-token\n",
    );
    let pid = d.pid();
    let req = b"GET /v1/credentials/m.example HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let lookup = |c: &mut std::os::unix::net::UnixStream| {
        use std::io::{Read, Write};
        c.write_all(req).unwrap();
        let mut buf = [0u8; 4096];
        assert!(c.read(&mut buf).unwrap() > 0);
    };
    let mut first = std::os::unix::net::UnixStream::connect(t.socket()).unwrap();
    lookup(&mut first);
    drop(first);
    let idle = status_kb(pid, "RssAnon:").unwrap();
    // Each open connection holds its buffers; 800 of them fit the default open-files limit
    // of this process and take several MB of the daemon's heap.
    let open: Vec<_> = (0..800)
        .map(|_| {
            let mut c = std::os::unix::net::UnixStream::connect(t.socket()).unwrap();
            lookup(&mut c);
            c
        })
        .collect();
    let held = status_kb(pid, "RssAnon:").unwrap();
    assert!(
        held > idle + 4096,
        "800 open connections: {held} kB vs {idle} kB idle"
    );
    drop(open);
    // The trimmer runs a quiet period after the last connection closed; poll, bounded.
    let mut now = held;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        now = status_kb(pid, "RssAnon:").unwrap();
        if now <= idle + 2048 {
            break;
        }
    }
    assert!(
        now <= idle + 2048,
        "anonymous RSS {now} kB 10 s after the connections closed, {idle} kB before them, {held} kB with them"
    );
}
