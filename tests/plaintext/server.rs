//! The loopback Composer repository (tests/repo_server.py) and a self-signed CA for TLS.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Debian's Python; a pyenv shim on PATH would look for its root under the temp HOME.
const PYTHON: &str = "/usr/bin/python3";

/// A running repository that accepts one username and password.
pub struct RepoServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl RepoServer {
    /// Starts the server; with `tls`, HTTPS with that certificate and key.
    pub fn start(
        dir: &Path,
        user: &str,
        password: &str,
        tls: Option<(&Path, &Path)>,
    ) -> RepoServer {
        assert!(
            Path::new(PYTHON).is_file(),
            "{PYTHON} is missing: install the Debian package `python3` (apt-get install -y python3)"
        );
        let log = dir.join(format!("repo-server-{}.log", std::process::id()));
        let mut cmd = Command::new(PYTHON);
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/repo_server.py"));
        if let Some((cert, key)) = tls {
            cmd.arg("--tls").arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the repository server");
        // The credentials go on stdin so that no argv holds them.
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "{user}\n{password}").unwrap();
        drop(stdin);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the server prints its port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port from the server: {line:?}"));
        RepoServer { child, port, log }
    }

    /// What the server accepted and refused, one line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        // The server runs until killed; an error means it is already gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A CA and a server certificate for repo.magento.com and 127.0.0.1 signed by it:
/// `(ca.pem, server.pem, server.key)`.
pub fn make_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    crate::support::require("openssl", "openssl");
    let d = dir.join("tls");
    std::fs::create_dir_all(&d).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&d)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=composer-keyd test CA",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=repo.magento.com",
    ]);
    run(&a);
    std::fs::write(
        d.join("ext"),
        "subjectAltName=DNS:repo.magento.com,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    (d.join("ca.pem"), d.join("srv.pem"), d.join("srv.key"))
}
