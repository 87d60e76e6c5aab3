//! Running as a service: the unit files and plist, `service install`, socket activation
//! under `systemd-socket-activate`, sd_notify, and `--idle-exit`.

use crate::support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{request, require, wait_for, TestEnv, BIN};

/// Waits (at most 30 s) for a child to exit.
fn wait_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    let mut status = None;
    wait_for(600, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status
}

/// A child killed (SIGKILL) if it still runs when the test ends, even by a panic.
struct Reaped(Child);

impl std::ops::Deref for Reaped {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Reaped {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // Best effort in a destructor: it may exit on its own meanwhile.
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn sigterm(child: &Child) {
    // SAFETY: kill has no memory effects; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// Creates `dir` with mode 0700, as a service manager's DirectoryMode=0700 would.
fn private_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// The binary as the units must name it: absolute, symlinks resolved as /proc/self/exe does.
fn bin() -> PathBuf {
    Path::new(BIN).canonicalize().expect("the binary exists")
}

/// Runs `composer-keyd service install` in `t` and returns the unit directory.
fn install(t: &TestEnv, extra: &[&str]) -> (PathBuf, String) {
    let mut args = vec!["service", "install"];
    args.extend_from_slice(extra);
    let out = t.ok(&args, "");
    (t.home().join(".config/systemd/user"), out)
}

#[test]
fn install_without_a_manager_writes_units_naming_this_binary() {
    let t = TestEnv::bare();
    let (dir, out) = install(&t, &[]);
    assert!(
        out.contains("No systemd user manager is running") && out.contains("composer-keyd serve"),
        "says plainly what to do instead: {out}"
    );
    let unit = std::fs::read_to_string(dir.join("composer-keyd.service")).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec, [format!("ExecStart={} serve", bin().display())]);
    let socket = std::fs::read_to_string(dir.join("composer-keyd.socket")).unwrap();
    assert!(socket.contains("\nListenStream=%t/composer-keyd/agent.sock\n"));
    assert!(socket.contains("\nSocketMode=0600\n") && socket.contains("\nDirectoryMode=0700\n"));

    let again = t.ok(&["service", "install"], "");
    assert!(again.contains("nothing changed"), "idempotent: {again}");
    let idle = t.ok(&["service", "install", "--idle-exit", "300"], "");
    assert!(idle.contains("wrote"), "{idle}");
    let unit = std::fs::read_to_string(dir.join("composer-keyd.service")).unwrap();
    assert!(unit.contains(&format!(
        "\nExecStart={} serve --idle-exit 300\n",
        bin().display()
    )));

    let status: serde_json::Value =
        serde_json::from_str(&t.ok(&["service", "status", "--json"], "")).unwrap();
    assert_eq!(status["manager"], serde_json::Value::Null);
    assert_eq!(status["files"][0]["installed"], true);
    assert_eq!(status["socket"], t.socket().to_str().unwrap());

    let out = t.ok(&["service", "uninstall"], "");
    assert!(out.contains("removed"), "{out}");
    assert!(!dir.join("composer-keyd.service").exists());
    assert!(!dir.join("composer-keyd.socket").exists());
    let out = t.ok(&["service", "uninstall"], "");
    assert!(out.contains("Nothing to remove"), "{out}");
}

/// What `systemd-analyze verify --user` prints about `units` (it exits 0 on unknown keys).
fn verify(t: &TestEnv, units: &[PathBuf]) -> String {
    let out = t
        .command("systemd-analyze")
        .args(["verify", "--user"])
        .args(units)
        .output()
        .expect("run systemd-analyze");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn systemd_analyze_finds_nothing_to_complain_about() {
    require("systemd-analyze", "systemd");
    let t = TestEnv::bare();
    let (dir, _) = install(&t, &["--idle-exit", "600"]);
    let units = [
        dir.join("composer-keyd.socket"),
        dir.join("composer-keyd.service"),
    ];
    let said = verify(&t, &units);
    assert_eq!(said.trim(), "", "systemd-analyze complained");

    // The check can fail: the same units with one unknown key and a missing binary.
    let bad = t.home().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let text = std::fs::read_to_string(&units[1])
        .unwrap()
        .replace(&bin().display().to_string(), "/nonexistent/composer-keyd")
        .replace("Type=notify", "Type=notify\nProtectEverything=yes");
    std::fs::write(bad.join("composer-keyd.service"), text).unwrap();
    std::fs::copy(&units[0], bad.join("composer-keyd.socket")).unwrap();
    let said = verify(
        &t,
        &[
            bad.join("composer-keyd.socket"),
            bad.join("composer-keyd.service"),
        ],
    );
    assert!(said.contains("ProtectEverything"), "{said}");
    assert!(said.contains("/nonexistent/composer-keyd"), "{said}");
}

#[test]
fn plist_parses_with_plistlib_and_holds_the_socket() {
    require("python3", "python3");
    let t = TestEnv::bare();
    // Characters XML and launchd care about, to prove the escaping.
    let socket = t.home().join("a&b <c>/agent.sock");
    let log = t.home().join("state/daemon.log");
    let plist =
        composer_keyd::service::render::plist(&bin(), &socket, &log, Some(600)).expect("render");
    let file = t.home().join("com.composer-keyd.agent.plist");
    std::fs::write(&file, plist).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
        )
        .arg(&file)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "plistlib refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["Label"], "com.composer-keyd.agent");
    let args: Vec<&str> = p["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let b = bin();
    assert_eq!(args, [b.to_str().unwrap(), "serve", "--idle-exit", "600"]);
    let listener = &p["Sockets"]["Listeners"];
    assert_eq!(listener["SockPathName"], socket.to_str().unwrap());
    assert_eq!(listener["SockPathMode"], 0o600);
    assert_eq!(p["StandardErrorPath"], log.to_str().unwrap());
    assert_eq!(
        p["EnvironmentVariables"]["COMPOSER_KEYD_SOCK"],
        socket.to_str().unwrap()
    );
}

/// A datagram socket standing in for the service manager's notification socket.
struct NotifyListener {
    sock: UnixDatagram,
    /// The value for NOTIFY_SOCKET.
    name: String,
}

impl NotifyListener {
    fn at_path(path: &Path) -> NotifyListener {
        let sock = UnixDatagram::bind(path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        NotifyListener {
            sock,
            name: path.to_str().unwrap().to_owned(),
        }
    }

    #[cfg(target_os = "linux")]
    fn abstract_name() -> NotifyListener {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "ckd-notify-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        NotifyListener {
            sock,
            name: format!("@{name}"),
        }
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .sock
            .recv(&mut buf)
            .expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// The next notification, or a panic showing the daemon's log.
    fn next_or(&self, log: &Path) -> String {
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => panic!(
                "no notification within 30 s ({e}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// `-E NAME` for each variable of the test environment (systemd-socket-activate passes on
/// only a few of its own), plus `NOTIFY_SOCKET`.
fn activator_env(t: &TestEnv, notify: &NotifyListener) -> Vec<String> {
    let mut args = Vec::new();
    for k in t.env.keys() {
        args.push("-E".to_owned());
        args.push(k.clone());
    }
    args.extend(["-E".into(), format!("NOTIFY_SOCKET={}", notify.name)]);
    args.extend(["-E".into(), "RUST_LOG=debug".into()]);
    args
}

fn activation_answers_and_notifies(notify: NotifyListener, t: &TestEnv) {
    let sock = t.socket();
    private_dir(sock.parent().unwrap());
    let log = t.dir.path().join("activated.log");
    let mut child = Reaped(
        t.command("systemd-socket-activate")
            .arg("-l")
            .arg(&sock)
            .args(activator_env(t, &notify))
            .args([BIN, "serve"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start systemd-socket-activate"),
    );
    // Bounded: 200 x 50 ms until the activator listens (it binds first, then listens).
    assert!(
        wait_for(200, || UnixStream::connect(&sock).is_ok()),
        "the activator did not listen"
    );
    let reply = request(&sock, "GET", "/v1/status", None).expect("answers on the inherited socket");
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The activator execs the daemon in its own process: the pid proves who answered.
    assert_eq!(reply.json()["pid"], child.id());
    let ready = notify.next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    sigterm(&child);
    let stopping = notify.next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let status = wait_exit(&mut child).expect("the daemon exits after SIGTERM");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}: {text}");
    assert!(
        text.contains("Systemd"),
        "took the inherited socket: {text}"
    );
    assert!(
        sock.exists(),
        "a socket the daemon did not bind is not its to remove"
    );
}

#[test]
fn socket_activation_answers_and_notifies_ready_then_stopping() {
    require("systemd-socket-activate", "systemd");
    let t = TestEnv::bare();
    let notify = NotifyListener::at_path(&t.dir.path().join("notify.sock"));
    activation_answers_and_notifies(notify, &t);
}

#[cfg(target_os = "linux")]
#[test]
fn notify_socket_in_the_abstract_namespace() {
    require("systemd-socket-activate", "systemd");
    let t = TestEnv::bare();
    activation_answers_and_notifies(NotifyListener::abstract_name(), &t);
}

/// Plays systemd's socket unit: the test holds the listening socket and, for each start,
/// hands it (as fd 3, with LISTEN_FDS) to a fresh `systemd-socket-activate`, which waits
/// for a connection and then execs the daemon in its own process.
struct HeldSocket {
    listener: UnixListener,
}

impl HeldSocket {
    fn activate(&self, t: &TestEnv, notify: &NotifyListener, log: &Path) -> Reaped {
        let fd = self.listener.as_raw_fd();
        let mut cmd = t.command("sh");
        cmd.arg("-c")
            .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec systemd-socket-activate "$@""#)
            .arg("sh")
            .args(activator_env(t, notify))
            .args([BIN, "serve", "--idle-exit", "1"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap());
        // SAFETY: dup2 is async-signal-safe and touches no memory; between fork and exec it
        // puts the held socket at fd 3 (without CLOEXEC), as a service manager does.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself keeps CLOEXEC, so clear it by hand when fd is already 3.
                let rc = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Reaped(cmd.spawn().expect("start systemd-socket-activate"))
    }
}

#[test]
fn idle_exit_then_the_next_connection_starts_it_again() {
    require("systemd-socket-activate", "systemd");
    let t = TestEnv::with_keyring(true);
    let sock = t.socket();
    private_dir(sock.parent().unwrap());
    let held = HeldSocket {
        listener: UnixListener::bind(&sock).unwrap(),
    };
    let notify = NotifyListener::at_path(&t.dir.path().join("notify.sock"));

    // First start: one request, then nothing; it exits by itself, successfully.
    let log1 = t.dir.path().join("first.log");
    let mut first = held.activate(&t, &notify, &log1);
    let r = request(&sock, "GET", "/v1/status", None).unwrap_or_else(|e| {
        panic!(
            "no answer ({e}): {}",
            std::fs::read_to_string(&log1).unwrap_or_default()
        )
    });
    assert_eq!(r.json()["pid"], first.id());
    let ready = notify.next_or(&log1);
    assert!(ready.contains("READY=1"), "{ready}");
    let status = wait_exit(&mut first).expect("exits after its idle period");
    let text = std::fs::read_to_string(&log1).unwrap();
    assert!(status.success(), "{status}: {text}");
    assert!(text.contains("idle for 1s"), "{text}");
    let stopping = notify.next();
    assert!(
        stopping.contains("STOPPING=1") && stopping.contains("idle"),
        "{stopping}"
    );

    // Nothing runs now. A client connects (the held socket queues it); the next start
    // serves that very connection.
    let s2 = sock.clone();
    let waiting = std::thread::spawn(move || request(&s2, "GET", "/v1/status", None));
    let log2 = t.dir.path().join("second.log");
    let mut second = held.activate(&t, &notify, &log2);
    let r = waiting
        .join()
        .unwrap()
        .expect("the queued request is answered");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["pid"], second.id());
    assert_ne!(second.id(), first.id());
    assert!(notify.next().contains("READY=1"));

    // An open connection keeps it up, however long it is quiet (3 idle periods here).
    let mut open = UnixStream::connect(&sock).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        second.try_wait().unwrap().is_none(),
        "exited with a connection open"
    );
    use std::io::{Read, Write};
    open.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    open.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    open.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(open);

    // Locked, it stays: a fresh daemon would start unlocked.
    assert_eq!(
        request(&sock, "POST", "/v1/lock", None).unwrap().status,
        200
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        second.try_wait().unwrap().is_none(),
        "a locked daemon idled out"
    );
    let r = request(&sock, "POST", "/v1/unlock", Some("{}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let status = wait_exit(&mut second).expect("exits once unlocked and idle");
    assert!(status.success(), "{status}");
}
