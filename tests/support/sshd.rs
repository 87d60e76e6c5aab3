//! A real sshd on loopback with a second real local user (`remoteu`) as the remote side: host and user keys in the test's own directory, the user made once (idempotently) and its test state removed at the end.
//!
//! Tests that use it take [`Sshd::start`]'s lock: they share one remote user, whose
//! forwarded socket path (`/tmp/composer-keyd-UID/agent.sock`) is one per user.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// The remote side's user.
pub const USER: &str = "remoteu";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running sshd admitting `remoteu` with the test's key.
pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pid: Option<i32>,
    _turn: MutexGuard<'static, ()>,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn id(flag: &str) -> u32 {
    let out = run(Command::new("id").args([flag, USER]));
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Makes `remoteu` unless it exists: a home, bash, not locked but with no password (a
/// locked account is refused with UsePAM off).
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", USER])
            .output()
            .expect("run useradd (Debian package `passwd`)");
        // Another test binary may have made it meanwhile.
        let raced = String::from_utf8_lossy(&out.stderr).contains("already exists");
        assert!(
            out.status.success() || raced,
            "useradd {USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    run(Command::new("usermod").args(["-p", "*", USER]));
}

impl Sshd {
    /// Starts sshd on a free loopback port, admitting `remoteu` with a key made here.
    /// Fails, naming the package, when OpenSSH is missing, and when not root.
    pub fn start(base: &Path) -> Sshd {
        Sshd::start_with(base, "")
    }

    /// [`Sshd::start`] with `extra` lines in its sshd_config.
    pub fn start_with(base: &Path, extra: &str) -> Sshd {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            Path::new("/usr/sbin/sshd").is_file(),
            "/usr/sbin/sshd is missing: install the Debian package `openssh-server` (apt-get install -y openssh-server)"
        );
        super::require("ssh", "openssh-client");
        super::require("ssh-keygen", "openssh-client");
        super::require("useradd", "passwd");
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "the sshd tests make a second user: run them as root"
        );
        ensure_user();
        let (uid, gid) = (id("-u"), id("-g"));
        let home = PathBuf::from(format!("/home/{USER}"));
        let dir = base.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        for k in ["hostkey", "userkey"] {
            let _ = std::fs::remove_file(dir.join(k));
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(k)));
        }
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap();
        std::fs::copy(dir.join("userkey.pub"), ssh_dir.join("authorized_keys")).unwrap();
        for (p, mode) in [(&ssh_dir, 0o700), (&ssh_dir.join("authorized_keys"), 0o600)] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // sshd's own defaults otherwise, as on most servers: in particular no
        // StreamLocalBindUnlink, so a stale remote socket is the product's to deal with.
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pf}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             AllowUsers {USER}\nAllowStreamLocalForwarding yes\n{extra}",
            hk = dir.join("hostkey").display(),
            pf = dir.join("sshd.pid").display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        run(Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log")));
        let mut s = Sshd {
            port,
            key: dir.join("userkey"),
            dir,
            uid,
            gid,
            home,
            pid: None,
            _turn: turn,
        };
        let up = super::wait_for(100, || {
            s.pid = std::fs::read_to_string(s.dir.join("sshd.pid"))
                .ok()
                .and_then(|p| p.trim().parse().ok());
            s.pid.is_some() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "sshd did not start: {}", s.log());
        s.reset_remote();
        s
    }

    /// ssh's options for this server (key, no host-key prompt, no agent, quiet), then
    /// `-p PORT`; the host is `remoteu@127.0.0.1`.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            "-i".into(),
            self.key.display().to_string(),
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=no".into(),
            "-o".into(),
            "UserKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            self.port.to_string(),
        ]
    }

    /// The host argument.
    pub fn host(&self) -> String {
        format!("{USER}@127.0.0.1")
    }

    /// The forwarded socket's directory for remoteu over this sshd (no runtime dir: no PAM).
    pub fn remote_sock_dir(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/composer-keyd-{}", self.uid))
    }

    /// Runs a shell command as remoteu on this machine (not over ssh), in its home.
    pub fn as_remote(&self, script: &str) -> Output {
        Command::new("setpriv")
            .args([
                "--reuid",
                USER,
                "--regid",
                USER,
                "--init-groups",
                "sh",
                "-c",
            ])
            .arg(script)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv (util-linux)")
    }

    /// Removes what tests leave in remoteu's home and /tmp (Composer's home and cache,
    /// projects, the socket directory), keeping the account and its shell files.
    pub fn reset_remote(&self) {
        for rel in [
            ".config/composer",
            ".composer",
            ".cache/composer",
            ".local/share/composer",
            "proj",
        ] {
            let _ = std::fs::remove_dir_all(self.home.join(rel));
        }
        let _ = std::fs::remove_dir_all(self.remote_sock_dir());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

/// How many processes have `parent` as their parent.
fn children(parent: i32) -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    rd.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // After the command name in parentheses: state, then the parent's pid.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace().nth(1) == Some(&*parent.to_string())
        })
        .count()
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // Its sessions end first (bounded), so none outlives it as a zombie no one reaps.
            super::wait_for(100, || children(pid) == 0);
            // SAFETY: kill(2) of the sshd this fixture started (its PidFile).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = std::fs::remove_file(self.home.join(".ssh/authorized_keys"));
        self.reset_remote();
    }
}
