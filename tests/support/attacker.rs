//! Another local user for attack tests: `nobody` (via setpriv) running /usr/bin/python3, the
//! directories it owns, and a private sticky TMPDIR for it instead of the real /tmp.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The attacker's interpreter: a system path that `nobody` can execute (not a shim under /root).
pub const PYTHON: &str = "/usr/bin/python3";

/// The other user, ready to run commands in `base` (a test's own directory).
pub struct Nobody {
    pub uid: u32,
    pub gid: u32,
    /// A private 1777 directory given to it as TMPDIR.
    pub tmp: PathBuf,
}

fn id(flag: &str, who: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, who])
        .output()
        .expect("run id(1) (coreutils)");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("there is no user `{who}` on this machine"))
}

impl Nobody {
    /// Opens `base` for traversal (not listing) by other users and makes nobody's TMPDIR in
    /// it. Fails, naming the package, when setpriv or python3 is missing, and when not root.
    pub fn new(base: &Path) -> Nobody {
        super::require("setpriv", "util-linux");
        assert!(
            Path::new(PYTHON).is_file(),
            "{PYTHON} is missing: install the Debian package `python3` (apt-get install -y python3)"
        );
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "attack tests play root against another user: run them as root"
        );
        std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o711)).unwrap();
        let tmp = base.join("nobody-tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
        Nobody {
            uid: id("-u", "nobody"),
            gid: id("-g", "nobody"),
            tmp,
        }
    }

    /// A new directory in `parent` that belongs to nobody (mode 0755): only it can write there.
    pub fn dir(&self, parent: &Path, name: &str) -> PathBuf {
        let d = parent.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    /// Runs a Python program as nobody, with a bare environment; asserts it succeeded.
    pub fn python(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                PYTHON,
                "-c",
            ])
            .arg(program)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("TMPDIR", &self.tmp)
            .env("HOME", &self.tmp)
            .current_dir("/")
            .stdin(Stdio::null())
            .output()
            .expect("run setpriv");
        assert!(
            out.status.success(),
            "the program run as nobody failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}
