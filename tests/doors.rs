//! Grant doors as an attacker tries them, against the real daemon, real other uids (setpriv) and a real second mount namespace (unshare): a host process of the granted uid cannot reach a grant through `/proc/PID/root` of the container's process, a grant is not pointed at another project through a link the granted uid owns, and a grant sees only its own status.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::TestEnv;

const NOBODY: u32 = 65534;
const TOKEN: &str = "doors-secret-7c1e";

/// One request on a fresh connection to argv[1]; prints the raw reply (empty when the daemon
/// closed the connection), then, when argv[3] says so, waits until stdin closes: its
/// namespace stays alive meanwhile.
const PY_GET: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(("GET %s HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except OSError as e:
    data = b""
sys.stdout.write(repr(data.decode()) + "\n")
sys.stdout.flush()
if sys.argv[3] == "wait":
    sys.stdin.read()
"#;

fn as_nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
    ]);
    c
}

/// A directory any uid may enter, for the test's own files.
fn open_dir(t: &TestEnv, name: &str) -> PathBuf {
    let d = t.dir.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut p = d.clone();
    loop {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        match p.parent() {
            Some(parent) if parent != Path::new("/tmp") && parent != Path::new("/") => {
                p = parent.to_path_buf()
            }
            _ => break,
        }
    }
    std::fs::canonicalize(d).unwrap()
}

/// A grant for nobody over a project with one credential scoped to it.
fn granted(t: &TestEnv) -> (PathBuf, PathBuf) {
    let project = open_dir(t, "projects/shop");
    t.ok(
        &[
            "add",
            "repo.example",
            "--type",
            "bearer",
            "--project",
            project.to_str().unwrap(),
        ],
        &format!("{TOKEN}\n"),
    );
    t.ok(
        &[
            "grant",
            "add",
            "--uid",
            &NOBODY.to_string(),
            "--project",
            project.to_str().unwrap(),
            "--name",
            "shop",
        ],
        "",
    );
    let sock = t.socket().parent().unwrap().join("grant-shop.sock");
    assert!(sock.exists());
    (project, sock)
}

/// The container: a process in a mount namespace of its own (`unshare -m`, as root), where
/// the grant's socket is bind-mounted at `inside`, running as nobody. It asks once, prints
/// the reply, and stays until its stdin closes.
struct Container {
    child: std::process::Child,
    reply: String,
}

impl Container {
    fn start(sock: &Path, inside: &Path, path: &str) -> Container {
        std::fs::write(inside, b"").unwrap();
        let script = format!(
            "mount --bind '{}' '{}' && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups /usr/bin/python3 -c \"$0\" '{}' '{path}' wait",
            sock.display(),
            inside.display(),
            inside.display(),
        );
        let mut child = Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
                PY_GET,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reply = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut reply)
            .unwrap();
        Container { child, reply }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Issue 22, medium: a host process of the granted uid reached the grant through
/// `/proc/PID/root/...` of the container's process, and SO_PEERCRED said the granted uid.
/// Now only a peer in another mount namespace than the daemon's is admitted.
#[test]
fn a_host_process_of_the_granted_uid_is_refused_through_proc_root() {
    support::require("setpriv", "util-linux");
    support::require("unshare", "util-linux");
    support::require("mount", "mount");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let (_, sock) = granted(&t);
    let inside = open_dir(&t, "container-run").join("composer-keyd.sock");
    let lookup = "/v1/credentials/repo.example";

    // The same uid inside the namespace is served.
    let c = Container::start(&sock, &inside, lookup);
    assert!(
        c.reply.contains("200 OK") && c.reply.contains(TOKEN),
        "inside: {}",
        c.reply
    );

    // The host process of that uid, through the container's /proc/PID/root: refused before
    // a byte is read.
    let shortcut = format!("/proc/{}/root{}", c.pid(), inside.display());
    let host = as_nobody()
        .args(["/usr/bin/python3", "-c", PY_GET, &shortcut, lookup, "once"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&host.stdout);
    assert!(host.status.success(), "{out}");
    assert_eq!(out.trim(), "''", "the host process got a reply: {out}");
    assert!(!out.contains(TOKEN));
    let log = t.ok(&["log", "--json"], "");
    assert!(
        log.lines().any(|l| l.contains("reject-peer")
            && l.contains("grant shop")
            && l.contains("mount namespace")),
        "{log}"
    );
    drop(c);
}

/// Issue 22, low: `grant add --project LINK` followed a link the granted uid owns, so the
/// grant covered another project. A path through a link another user controls is refused;
/// the real path, named as is, is taken.
#[test]
fn grant_add_refuses_a_project_path_through_another_users_link() {
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let mine = open_dir(&t, "projects/mine");
    let theirs = open_dir(&t, "www");
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let link = theirs.join("shop");
    std::os::unix::fs::symlink(&mine, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let uid = NOBODY.to_string();
    let add = |project: &Path| {
        t.cli(
            &[
                "grant",
                "add",
                "--uid",
                &uid,
                "--project",
                project.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = add(&link);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("which uid {NOBODY} controls"))
            && err.contains(&mine.display().to_string()),
        "{err}"
    );
    assert!(t.ok(&["grant", "list"], "").contains("No grants."));
    // Named by its real path, the same project is granted.
    let out = add(&mine);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = t.ok(&["grant", "list"], "");
    assert!(list.contains(&mine.display().to_string()), "{list}");
}

/// Issue 22, low: `GET /v1/status` through a grant showed every project's counts, the
/// daemon's pid and its backend. A grant sees its own view.
#[test]
fn a_grant_sees_its_own_status() {
    support::require("setpriv", "util-linux");
    support::require("unshare", "util-linux");
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(&[]);
    let (_, sock) = granted(&t);
    // Another project's credential and an unscoped one: not the grant's to count.
    let other = open_dir(&t, "projects/other");
    t.ok(
        &[
            "add",
            "other.example",
            "--type",
            "bearer",
            "--project",
            other.to_str().unwrap(),
        ],
        "other-token\n",
    );
    t.ok(&["add", "all.example", "--type", "bearer"], "all-token\n");
    let inside = open_dir(&t, "container-run").join("composer-keyd.sock");
    let c = Container::start(&sock, &inside, "/v1/status");
    let reply = c.reply.clone();
    drop(c);
    let body: String = {
        let raw: String = reply.trim().trim_matches('\'').to_owned();
        let raw = raw.replace("\\r\\n", "\n");
        raw.split("\n\n").nth(1).unwrap_or_default().to_owned()
    };
    let status: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {reply}"));
    assert_eq!(status["credentials"], 1, "{status}");
    assert_eq!(status["pid"], 0, "{status}");
    assert_ne!(status["pid"], d.pid(), "{status}");
    assert_eq!(status["backend_reason"], "", "{status}");
    // The user's own socket still shows everything.
    assert_eq!(t.status_json()["credentials"], 3);
    let _ = std::io::stdout().flush();
}
