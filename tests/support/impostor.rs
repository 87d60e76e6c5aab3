//! Another real user for the client-trust tests: a sandbox `nobody` can reach, and an
//! impostor daemon (python3) that records every byte it is sent and answers like a daemon.

use super::require;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The uid and gid `setpriv --reuid=nobody --regid=nogroup` gives on Debian.
pub const NOBODY: u32 = 65534;

/// The impostor: serves `/v1/status` from a file, answers `PUT /v1/credentials/ORIGIN` with
/// `created`, anything else with `{}`; appends every byte received to the record file.
const IMPOSTOR_PY: &str = r#"
import json, os, socket, sys, threading, urllib.parse
sock_path, record_path, status_path = sys.argv[1], sys.argv[2], sys.argv[3]
if os.environ.get("IMPOSTOR_NOT_DUMPABLE"):
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, as the real daemon does
os.makedirs(os.path.dirname(sock_path), mode=0o700, exist_ok=True)
record = open(record_path, "ab", buffering=0)
lock = threading.Lock()
status = open(status_path, "rb").read()
def reply(method, target):
    path = target.split("?", 1)[0]
    if path == "/v1/status":
        return status
    if method == "PUT" and path.startswith("/v1/credentials/"):
        origin = urllib.parse.unquote(path[len("/v1/credentials/"):])
        return json.dumps({"outcome": "created", "info": {"origin": origin,
            "type": "http-basic", "project": None, "label": None, "enabled": True,
            "created": 0, "rotated": None, "last_used": None, "has_previous": False}}).encode()
    return b"{}"
def recv(c):
    data = c.recv(65536)
    if not data:
        raise EOFError
    with lock:
        record.write(data)
    return data
def serve(c):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                buf += recv(c)
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            while len(rest) < length:
                rest += recv(c)
            buf = rest[length:]
            body = reply(method, target)
            c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    except (EOFError, OSError, ValueError):
        pass
    finally:
        c.close()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
if os.path.lexists(sock_path):
    os.unlink(sock_path)
s.bind(sock_path)
os.chmod(sock_path, 0o777)
s.listen(64)
open(sock_path + ".ready", "w").close()
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// A root-owned directory `nobody` can traverse (0755), with `tmp/` (1777) for its TMPDIR
/// and `bin/` holding the programs it runs (the worktree may be unreadable to it).
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        require("setpriv", "util-linux");
        assert!(
            Path::new("/usr/bin/python3").is_file(),
            "/usr/bin/python3 is missing: install the Debian package `python3` (apt-get install -y python3)"
        );
        let dir = tempfile::Builder::new()
            .prefix("ckd-trust-")
            .tempdir()
            .expect("temp dir");
        chmod(dir.path(), 0o755);
        let s = Sandbox { dir };
        std::fs::create_dir(s.tmp()).unwrap();
        chmod(&s.tmp(), 0o1777);
        std::fs::create_dir(s.bin()).unwrap();
        chmod(&s.bin(), 0o755);
        std::fs::write(s.bin().join("impostor.py"), IMPOSTOR_PY).unwrap();
        chmod(&s.bin().join("impostor.py"), 0o644);
        s
    }

    /// The private sticky TMPDIR shared by the attacker and the victim.
    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// A copy of the binary under test that `nobody` can execute.
    pub fn cli_copy(&self) -> PathBuf {
        let dst = self.bin().join("composer-keyd");
        if !dst.exists() {
            std::fs::copy(super::BIN, &dst).unwrap();
            chmod(&dst, 0o755);
        }
        dst
    }

    /// `argv` as `nobody:nogroup`, with no supplementary groups.
    pub fn as_nobody(&self, argv: &[&std::ffi::OsStr]) -> Command {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.tmp())
            .env("TMPDIR", self.tmp())
            .current_dir(self.dir.path());
        c
    }

    /// Starts an impostor on `socket`, as `nobody` when `as_nobody`, else as the caller,
    /// answering `/v1/status` with `status` (JSON).
    pub fn impostor(&self, socket: &Path, status: &serde_json::Value, as_nobody: bool) -> Impostor {
        self.impostor_as(
            socket,
            status,
            as_nobody,
            Path::new("/usr/bin/python3"),
            &[],
        )
    }

    /// [`Sandbox::impostor`] run by the interpreter `python` (e.g. a copy under another
    /// name) with extra environment `env`.
    pub fn impostor_as(
        &self,
        socket: &Path,
        status: &serde_json::Value,
        as_nobody: bool,
        python: &Path,
        env: &[(&str, &str)],
    ) -> Impostor {
        let n = std::fs::read_dir(self.tmp()).unwrap().count();
        let record = self.tmp().join(format!("record-{n}"));
        let status_file = self.bin().join(format!("status-{n}.json"));
        std::fs::write(&status_file, status.to_string()).unwrap();
        chmod(&status_file, 0o644);
        let script = self.bin().join("impostor.py");
        let argv: Vec<&std::ffi::OsStr> = vec![
            python.as_os_str(),
            script.as_os_str(),
            socket.as_os_str(),
            record.as_os_str(),
            status_file.as_os_str(),
        ];
        let mut cmd = if as_nobody {
            self.as_nobody(&argv)
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        let child = cmd
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the impostor");
        let mut imp = Impostor {
            child,
            record,
            socket: socket.to_path_buf(),
        };
        let ready = PathBuf::from(format!("{}.ready", socket.display()));
        // Bounded: 400 x 25 ms.
        for _ in 0..400 {
            if let Ok(Some(st)) = imp.child.try_wait() {
                panic!("the impostor exited with {st}");
            }
            if ready.exists() {
                return imp;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the impostor did not listen on {}", socket.display());
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// A running impostor daemon, killed when dropped.
pub struct Impostor {
    pub child: Child,
    pub record: PathBuf,
    pub socket: PathBuf,
}

impl Impostor {
    /// Every byte the impostor received so far.
    pub fn received(&self) -> Vec<u8> {
        std::fs::read(&self.record).expect("the impostor's record file")
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
