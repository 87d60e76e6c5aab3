//! Test fixtures with real components: a private D-Bus session with gnome-keyring under a temp HOME, and the real daemon.
//!
//! Every fixture fails (never skips) when a tool is missing, naming the Debian package.

#![allow(dead_code)]

pub mod attacker;
pub mod bao_team;
pub mod docker;
pub mod impostor;
pub mod net;
pub mod openbao;
pub mod sshd;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_composer-keyd");

/// Panics, naming the Debian package, when `tool` is not on PATH.
pub fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is missing: install the Debian package `{package}` (apt-get install -y {package})"
    );
}

/// A temp HOME with XDG dirs, plus the environment every process in the test gets.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
    bus: Option<Child>,
    keyring: Option<Child>,
}

/// Polls `f` every 50 ms, at most `tries` times; whether it came true.
pub fn wait_for(tries: u32, mut f: impl FnMut() -> bool) -> bool {
    (0..tries).any(|_| {
        let done = f();
        if !done {
            std::thread::sleep(Duration::from_millis(50));
        }
        done
    })
}

impl TestEnv {
    /// A bare environment (no D-Bus) whose vault uses a low scrypt work factor, for speed.
    pub fn fast_vault() -> TestEnv {
        let mut t = TestEnv::bare();
        t.env
            .insert("COMPOSER_KEYD_TEST_SCRYPT_LOG_N".into(), "12".into());
        t
    }

    /// `GET /v1/status` as JSON.
    pub fn status_json(&self) -> serde_json::Value {
        request(&self.socket(), "GET", "/v1/status", None)
            .unwrap()
            .json()
    }

    /// A temp HOME with no D-Bus session at all.
    pub fn bare() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("ckd-test-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        let run = dir.path().join("run");
        for d in [&home, &run] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let mut env = BTreeMap::new();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        env.insert("HOME".into(), s(&home));
        env.insert("XDG_RUNTIME_DIR".into(), s(&run));
        env.insert("XDG_CONFIG_HOME".into(), s(&home.join(".config")));
        env.insert("XDG_DATA_HOME".into(), s(&home.join(".local/share")));
        env.insert("XDG_STATE_HOME".into(), s(&home.join(".local/state")));
        env.insert("XDG_CACHE_HOME".into(), s(&home.join(".cache")));
        env.insert(
            "COMPOSER_KEYD_SOCK".into(),
            s(&run.join("composer-keyd/agent.sock")),
        );
        // The suite may itself run in a container (CI does); the daemon it tests is a host's.
        env.insert("COMPOSER_KEYD_IN_CONTAINER".into(), "0".into());
        env.insert(
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        );
        TestEnv {
            dir,
            env,
            bus: None,
            keyring: None,
        }
    }

    /// A temp HOME with a private session bus and gnome-keyring, unlocked with a test
    /// password when `unlocked`, else left locked.
    pub fn with_keyring(unlocked: bool) -> TestEnv {
        require("dbus-daemon", "dbus");
        require("dbus-send", "dbus");
        require("gnome-keyring-daemon", "gnome-keyring");
        let mut t = TestEnv::bare();
        let bus_path = t.dir.path().join("bus");
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--address=unix:path={}", bus_path.display()))
            .envs(&t.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("dbus-daemon prints its address");
        t.env
            .insert("DBUS_SESSION_BUS_ADDRESS".into(), line.trim().to_owned());
        t.bus = Some(bus);

        let mut args = vec!["--foreground", "--components=secrets"];
        if unlocked {
            args.push("--unlock");
        }
        let mut kr = Command::new("gnome-keyring-daemon")
            .args(&args)
            .envs(&t.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start gnome-keyring-daemon");
        {
            let mut stdin = kr.stdin.take().unwrap();
            if unlocked {
                stdin.write_all(b"testpw").unwrap();
            }
        }
        t.keyring = Some(kr);
        // Wait (bounded: 50 x 100 ms) until the Secret Service name has an owner.
        let owned = (0..50).any(|_| {
            let out = t
                .command("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .expect("dbus-send");
            let yes = String::from_utf8_lossy(&out.stdout).contains("boolean true");
            if !yes {
                std::thread::sleep(Duration::from_millis(100));
            }
            yes
        });
        assert!(owned, "gnome-keyring did not claim org.freedesktop.secrets");
        t
    }

    /// The gnome-keyring-daemon's pid, to stop and resume it.
    pub fn keyring_pid(&self) -> Option<u32> {
        self.keyring.as_ref().map(Child::id)
    }

    pub fn home(&self) -> PathBuf {
        PathBuf::from(&self.env["HOME"])
    }

    pub fn socket(&self) -> PathBuf {
        PathBuf::from(&self.env["COMPOSER_KEYD_SOCK"])
    }

    /// A command with exactly this test's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear().envs(&self.env);
        c
    }

    /// Runs the CLI (without autostart) in `cwd` with extra environment variables.
    pub fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(BIN)
            .arg("--no-autostart")
            .args(args)
            .current_dir(cwd)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run composer-keyd")
    }

    /// Starts `import` in `cwd` and returns it held at its test pause `point`
    /// (`COMPOSER_KEYD_TEST_PAUSE`), for the test to kill there.
    pub fn import_paused_at(&self, cwd: &Path, point: &str) -> Child {
        let mut child = self
            .command(BIN)
            .args(["--no-autostart", "import"])
            .current_dir(cwd)
            .env("COMPOSER_KEYD_TEST_PAUSE", point)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        // Bounded: the import reaches its pause or ends; either way stderr yields a line or EOF.
        for _ in 0..50 {
            line.clear();
            if err.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if line.contains(&format!("test hook: paused at {point}")) {
                return child;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{point}: the import never paused (last line {line:?})");
    }

    /// Runs the CLI with `stdin` and no autostart.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(BIN)
            .arg("--no-autostart")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run composer-keyd");
        // A command that fails before reading stdin (a bad argument) closes it: its output says
        // why, so a broken pipe here is no failure of its own.
        let wrote = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        if let Err(e) = wrote {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        child.wait_with_output().expect("wait for composer-keyd")
    }

    /// Starts the CLI (no autostart) with `stdin` and leaves it running, output discarded.
    pub fn spawn_cli(&self, args: &[&str], stdin: &str) -> Child {
        let mut c = self
            .command(BIN)
            .arg("--no-autostart")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run composer-keyd");
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c
    }

    /// `GET /v1/credentials/{origin}?project=DIR`, as the plugin sends it.
    pub fn lookup(&self, origin: &str, project: Option<&Path>) -> Reply {
        let q = project.map_or(String::new(), |p| format!("?project={}", p.display()));
        request(
            &self.socket(),
            "GET",
            &format!("/v1/credentials/{origin}{q}"),
            None,
        )
        .expect("the daemon answers")
    }

    /// The credential released for `origin` from `project`, asserting it is released.
    pub fn credential(&self, origin: &str, project: Option<&Path>) -> serde_json::Value {
        let r = self.lookup(origin, project);
        assert_eq!(r.status, 200, "{origin}: {}", r.body);
        r.json()["credential"].clone()
    }

    /// Runs the CLI and asserts success, returning stdout.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "composer-keyd {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Starts `composer-keyd serve` and waits until it answers.
    pub fn start_daemon(&self, extra: &[&str]) -> Daemon {
        let log = self.dir.path().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = self
            .command(BIN)
            .arg("serve")
            .args(extra)
            .env("RUST_LOG", self.env.get("RUST_LOG").map_or("debug", |s| s))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the daemon");
        let mut d = Daemon {
            child,
            log,
            socket: self.socket(),
        };
        d.wait_ready();
        d
    }

    /// Every file under the test dir whose bytes contain `needle`, except the keyring's own
    /// encrypted file and the daemon logs (checked separately).
    pub fn files_containing(&self, needle: &str) -> Vec<PathBuf> {
        let mut hits = Vec::new();
        walk(self.dir.path(), &mut |p| {
            let name = p.to_string_lossy();
            if name.contains("/keyrings/") || name.ends_with(".log") {
                return;
            }
            if let Ok(bytes) = std::fs::read(p) {
                if contains(&bytes, needle.as_bytes()) {
                    hits.push(p.to_path_buf());
                }
            }
        });
        hits
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for c in [self.keyring.as_mut(), self.bus.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Calls `f` on every regular file below `dir` (symlinks are not followed).
pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), f);
        } else if ft.is_file() {
            f(&e.path());
        }
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A running daemon, stopped with SIGTERM when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub socket: PathBuf,
}

impl Daemon {
    fn wait_ready(&mut self) {
        // Bounded: 200 x 25 ms.
        for _ in 0..200 {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the daemon exited with {st}: {}", self.log_text());
            }
            if request(&self.socket, "GET", "/v1/status", None).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the daemon did not answer: {}", self.log_text());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded: 400 x 50 ms) until the daemon's log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        assert!(
            wait_for(400, || self.log_text().contains(needle)),
            "{needle:?} never appeared in the log: {}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill has no memory effects; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for the daemon")
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The error kind of a JSON error body.
    pub fn kind(&self) -> String {
        self.json()["error"]["kind"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// A program other than the test's own, for policies that name executables.
pub const PYTHON: &str = "/usr/bin/python3";

/// `GET /v1/credentials/ORIGIN` from Python over the socket: the whole response.
pub const PY_GET: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(("GET /v1/credentials/%s HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n" % sys.argv[2]).encode())
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode())
"#;

/// A lookup of `origin` made by [`PYTHON`] instead of this test: its whole response.
pub fn python_get(t: &TestEnv, origin: &str) -> String {
    require("python3", "python3");
    let out = t
        .command(PYTHON)
        .args(["-c", PY_GET])
        .arg(t.socket())
        .arg(origin)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 request on a fresh connection (Connection: close).
pub fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let body = body.unwrap_or("");
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_request(sock, raw.as_bytes())
}

/// Sends raw bytes and parses the single response.
pub fn raw_request(sock: &Path, bytes: &[u8]) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(bytes)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok(Reply { status, body })
}
