//! `service install` under a real systemd user manager: the hardened units start the daemon
//! on the first connection, it reaches the Secret Service and writes its data dir, systemd
//! hears READY=1, and with `--idle-exit` systemd starts it again after it has left.
//!
//! No systemd runs as PID 1 here, so the test starts `systemd --user` in a private mount
//! namespace where /run/systemd/system exists (the check a user manager makes at start).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use support::{request, require, wait_for, TestEnv};

const PUB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const PRIV: &str = "0f9e8d7c6b5a49382716f5e4d3c2b1a0";
const PW: &str = "correct horse battery staple";

fn systemctl(t: &TestEnv, args: &[&str]) -> Output {
    t.command("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .expect("run systemctl")
}

/// What `systemctl --user ARGS` prints, trimmed.
fn ask(t: &TestEnv, args: &[&str]) -> String {
    String::from_utf8_lossy(&systemctl(t, args).stdout)
        .trim()
        .to_owned()
}

/// A `systemd --user` in its own mount namespace; stopped (SIGTERM) when dropped.
struct UserManager {
    child: Child,
}

impl UserManager {
    fn start(t: &TestEnv) -> UserManager {
        require("unshare", "util-linux");
        require("systemctl", "systemd");
        let systemd = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("systemd's manager binary is missing: install the Debian package `systemd`");
        // Root can unshare a mount namespace directly; anyone else needs a user namespace.
        // SAFETY: geteuid has no preconditions.
        let ns: &[&str] = if unsafe { libc::geteuid() } == 0 {
            &["--mount", "--propagation", "private"]
        } else {
            &["--map-root-user", "--mount", "--propagation", "private"]
        };
        // Start only an empty target, not default.target, and mask the host's session bus
        // and keyring units: the fixture's bus and its unlocked gnome-keyring are the
        // session's. (dbus.socket would point DBUS_SESSION_BUS_ADDRESS at a bus of its own,
        // where a locked keyring gets activated.)
        let runtime_units = Path::new(&t.env["XDG_RUNTIME_DIR"]).join("systemd/user");
        std::fs::create_dir_all(&runtime_units).unwrap();
        std::fs::write(
            runtime_units.join("ckd-test.target"),
            "[Unit]\nDescription=composer-keyd test session\n",
        )
        .unwrap();
        for unit in [
            "dbus.socket",
            "dbus.service",
            "gnome-keyring-daemon.socket",
            "gnome-keyring-daemon.service",
        ] {
            std::os::unix::fs::symlink("/dev/null", runtime_units.join(unit)).unwrap();
        }
        let child = t
            .command("unshare")
            .args(ns)
            .args(["sh", "-c"])
            .arg(
                "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec \"$0\" --user --unit=ckd-test.target",
            )
            .arg(systemd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(t.dir.path().join("manager.log")).unwrap())
            .spawn()
            .expect("start unshare");
        let mut m = UserManager { child };
        let private = Path::new(&t.env["XDG_RUNTIME_DIR"]).join("systemd/private");
        // Bounded: 400 x 50 ms.
        let up = wait_for(400, || {
            assert!(
                m.child.try_wait().unwrap().is_none(),
                "systemd --user exited: {}",
                std::fs::read_to_string(t.dir.path().join("manager.log")).unwrap_or_default()
            );
            private.exists() && systemctl(t, &["show-environment"]).status.success()
        });
        assert!(up, "systemd --user did not come up");
        // As a desktop session does (dbus-update-activation-environment --systemd).
        let bus = format!(
            "DBUS_SESSION_BUS_ADDRESS={}",
            t.env["DBUS_SESSION_BUS_ADDRESS"]
        );
        assert!(systemctl(t, &["set-environment", &bus]).status.success());
        m
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the pid is our own child's (unshare and sh exec).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // Bounded: 200 x 50 ms for the manager to stop its units, then SIGKILL.
        if !wait_for(200, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            // Best effort in a destructor: the process may have exited meanwhile.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Settings of the installed service unit that this host cannot apply at all: each is tried
/// alone on a unit running /bin/true, and those that fail are switched off for this test in
/// a runtime drop-in (the installed file stays as `service install` wrote it).
fn relax_for_this_host(t: &TestEnv, unit: &str) -> Vec<String> {
    let skip = [
        "Type",
        "ExecStart",
        "ExecStartPre",
        "Restart",
        "TimeoutStopSec",
    ];
    let service = unit
        .split("[Service]")
        .nth(1)
        .and_then(|s| s.split("\n[").next())
        .expect("a [Service] section");
    let settings: Vec<&str> = service
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter(|l| !skip.iter().any(|k| l.starts_with(&format!("{k}="))))
        .collect();
    let home = t.home();
    for d in [
        ".config/composer-keyd",
        ".local/share/composer-keyd",
        ".local/state/composer-keyd",
    ] {
        std::fs::create_dir_all(home.join(d)).unwrap();
    }
    let runtime = PathBuf::from(&t.env["XDG_RUNTIME_DIR"]).join("systemd/user");
    std::fs::create_dir_all(&runtime).unwrap();
    for (i, s) in settings.iter().enumerate() {
        let probe = format!("[Service]\nType=oneshot\nExecStart=/bin/true\n{s}\n");
        std::fs::write(runtime.join(format!("ckd-probe-{i}.service")), probe).unwrap();
    }
    assert!(systemctl(t, &["daemon-reload"]).status.success());
    let mut failing = Vec::new();
    for (i, s) in settings.iter().enumerate() {
        let name = format!("ckd-probe-{i}.service");
        systemctl(t, &["start", &name]);
        if ask(t, &["show", "--property=Result", "--value", &name]) != "success" {
            failing.push((*s).to_owned());
        }
        std::fs::remove_file(runtime.join(&name)).unwrap();
    }
    let dropin = runtime.join("composer-keyd.service.d");
    std::fs::create_dir_all(&dropin).unwrap();
    let mut conf = String::from("[Service]\n");
    for s in &failing {
        let (key, value) = s.split_once('=').unwrap();
        let off = if ["yes", "true", "strict", "full"].contains(&value) {
            "no"
        } else {
            ""
        };
        conf.push_str(&format!("{key}={off}\n"));
    }
    std::fs::write(dropin.join("host-limits.conf"), conf).unwrap();
    assert!(systemctl(t, &["daemon-reload"]).status.success());
    failing
}

fn main_pid(t: &TestEnv) -> u32 {
    ask(
        t,
        &[
            "show",
            "--property=MainPID",
            "--value",
            "composer-keyd.service",
        ],
    )
    .parse()
    .expect("a MainPID")
}

/// A directory that PrivateTmp= leaves visible to the service, holding the test's temp dirs
/// and a copy of the binary: the cargo target dir, unless the checkout itself sits in /tmp or
/// /var/tmp, then a fresh directory under the real HOME. Removed when dropped.
struct Outside {
    root: PathBuf,
    tmp: PathBuf,
    bin: PathBuf,
}

impl Outside {
    fn new() -> Outside {
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let hidden = |p: &Path| p.starts_with("/tmp") || p.starts_with("/var/tmp");
        let parent = if hidden(&target) {
            let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set"));
            assert!(
                !hidden(&home),
                "both the checkout and HOME are under /tmp: PrivateTmp= would hide them"
            );
            home.join(".cache")
        } else {
            target
        };
        std::fs::create_dir_all(&parent).unwrap();
        let root = tempfile::Builder::new()
            .prefix("ckd-systemd-")
            .tempdir_in(&parent)
            .unwrap()
            .keep();
        let tmp = root.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let bin = root.join("composer-keyd");
        std::fs::copy(support::BIN, &bin).unwrap();
        Outside { root, tmp, bin }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // Best effort in a destructor; the tree holds only this test's files.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn a_real_user_manager_runs_the_hardened_units() {
    // PrivateTmp= hides /tmp and /var/tmp from the daemon: keep the test's HOME, bus, runtime
    // dir and the binary the unit runs elsewhere. This is the only test in this binary, so
    // nothing races on the variable.
    let base = Outside::new();
    std::env::set_var("TMPDIR", &base.tmp);
    let t = TestEnv::with_keyring(true);
    let _manager = UserManager::start(&t);
    // `service install` writes its own executable's path into ExecStart=.
    let installer = |args: &[&str]| -> String {
        let out = t.command(&base.bin).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    let out = installer(&["service", "install"]);
    assert!(
        out.contains("ran `systemctl --user enable --now composer-keyd.socket`"),
        "{out}"
    );
    let unit_path = t.home().join(".config/systemd/user/composer-keyd.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let relaxed = relax_for_this_host(&t, &unit);
    eprintln!("settings this host cannot apply (switched off for the test): {relaxed:?}");
    for must in ["NoNewPrivileges=yes", "SystemCallFilter=@system-service"] {
        assert!(!relaxed.iter().any(|r| r == must), "{must} failed alone");
    }

    // The socket unit made the socket, private.
    let sock = t.socket();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);

    // The first connection starts the daemon; it stores in gnome-keyring over D-Bus and
    // writes its index, all from inside the sandbox.
    t.ok(
        &["add", "repo.magento.com", "--type", "http-basic"],
        &format!("{PUB}\n{PRIV}\n"),
    );
    let r = request(&sock, "GET", "/v1/credentials/repo.magento.com", None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credential"]["password"], PRIV);
    assert!(t
        .home()
        .join(".local/share/composer-keyd/index.json")
        .exists());

    // `migrate` writes the vault (data dir) and config.toml (config dir) from the sandbox.
    let out = t.ok(&["migrate", "--to", "vault"], &format!("{PW}\n{PW}\n"));
    assert!(out.contains("age file"), "{out}");
    assert!(t.home().join(".config/composer-keyd/config.toml").exists());
    let r = request(&sock, "GET", "/v1/credentials/repo.magento.com", None).unwrap();
    assert_eq!(r.json()["credential"]["password"], PRIV, "{}", r.body);
    t.ok(&["migrate", "--to", "keyring"], &format!("{PW}\n"));
    let r = request(&sock, "GET", "/v1/credentials/repo.magento.com", None).unwrap();
    assert_eq!(r.json()["credential"]["password"], PRIV, "{}", r.body);

    // systemd heard READY=1 (Type=notify) and applied the sandbox.
    assert_eq!(ask(&t, &["is-active", "composer-keyd.service"]), "active");
    let text = ask(
        &t,
        &[
            "show",
            "--property=StatusText",
            "--value",
            "composer-keyd.service",
        ],
    );
    assert!(text.starts_with("serving on"), "{text}");
    let pid = main_pid(&t);
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(proc_status.contains("\nNoNewPrivs:\t1\n"), "{proc_status}");
    assert!(proc_status.contains("\nSeccomp:\t2\n"), "{proc_status}");

    let st: serde_json::Value =
        serde_json::from_str(&t.ok(&["service", "status", "--json"], "")).unwrap();
    assert_eq!(st["manager"], "systemd");
    assert_eq!(st["enabled"], "enabled");
    assert_eq!(st["socket_state"], "active");
    assert_eq!(st["service_state"], "active");
    assert_eq!(st["socket"], sock.to_str().unwrap());
    let again = installer(&["service", "install"]);
    assert!(again.contains("nothing changed"), "{again}");

    // With --idle-exit the daemon leaves when idle, and systemd starts it again.
    let out = installer(&["service", "install", "--idle-exit", "1"]);
    assert!(out.contains("try-restart composer-keyd.service"), "{out}");
    let first = request(&sock, "GET", "/v1/status", None).unwrap().json()["pid"].clone();
    // Bounded: 600 x 50 ms.
    assert!(
        wait_for(600, || ask(&t, &["is-active", "composer-keyd.service"])
            == "inactive"),
        "the daemon did not leave after its idle period"
    );
    assert_eq!(ask(&t, &["is-active", "composer-keyd.socket"]), "active");
    assert_eq!(
        ask(
            &t,
            &[
                "show",
                "--property=Result",
                "--value",
                "composer-keyd.service"
            ]
        ),
        "success"
    );
    let r = request(&sock, "GET", "/v1/credentials/repo.magento.com", None).unwrap();
    assert_eq!(r.json()["credential"]["password"], PRIV, "{}", r.body);
    let second = request(&sock, "GET", "/v1/status", None).unwrap().json()["pid"].clone();
    assert_ne!(first, second, "a new daemon answers");

    let out = installer(&["service", "uninstall"]);
    assert!(out.contains("disable --now"), "{out}");
    assert!(!unit_path.exists());
    assert!(
        UnixStream::connect(&sock).is_err(),
        "nothing listens any more"
    );
    assert_ne!(ask(&t, &["is-active", "composer-keyd.socket"]), "active");
}
