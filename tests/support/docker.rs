//! Docker for the container tests: a dockerd (started when none answers, stopped when the last test using it is done) and the offline test image built by scripts/debian-root, cached by tag.

use super::require;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The packages of the test image.
const PACKAGES: &[&str] = &[
    "php-cli",
    "php-zip",
    "unzip",
    "composer",
    "git",
    "ca-certificates",
];

/// A reachable Docker daemon; one this process started is stopped when the last handle drops.
pub struct Docker {
    started: Mutex<Option<Child>>,
    pub image: String,
}

static SHARED: Mutex<Weak<Docker>> = Mutex::new(Weak::new());

/// The shared daemon with the test image imported.
pub fn docker() -> Arc<Docker> {
    require("docker", "docker.io");
    require("dockerd", "docker.io");
    require("debootstrap", "debootstrap");
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = shared.upgrade() {
        return d;
    }
    let started = if answers() { None } else { Some(start()) };
    let started = Mutex::new(started);
    let image = match image() {
        Ok(i) => i,
        Err(e) => {
            stop(&started);
            panic!("{e}");
        }
    };
    let d = Arc::new(Docker { started, image });
    *shared = Arc::downgrade(&d);
    d
}

fn answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn log_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ckd-dockerd-{}.log", std::process::id()))
}

/// Removes `/var/run/docker.pid` when the pid it names is not a dockerd's. A dockerd killed
/// with its pid namespace (a suite run in `unshare --pid`, as CI's is) leaves the file, and
/// its pid, small and reused in the next namespace, can then be any live process: dockerd
/// refuses to start over it ("pid file found, ensure docker is not running").
fn remove_stale_pid_file() {
    let file = Path::new("/var/run/docker.pid");
    let Ok(text) = std::fs::read_to_string(file) else {
        return;
    };
    let comm = text
        .trim()
        .parse::<u32>()
        .ok()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok());
    if comm.as_deref().map(str::trim) != Some("dockerd") {
        let _ = std::fs::remove_file(file);
    }
}

fn start() -> Child {
    remove_stale_pid_file();
    let log = log_path();
    let mut child = Command::new("dockerd")
        .args(["--iptables=false", "--bridge=none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start dockerd (Debian package docker.io)");
    // Bounded: 300 x 100 ms.
    for _ in 0..300 {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "dockerd exited with {st}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if answers() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("dockerd did not answer `docker info`");
}

fn stop(started: &Mutex<Option<Child>>) {
    if let Some(mut c) = started.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = std::fs::remove_file(log_path());
        // SIGTERM lets dockerd stop its containerd and shims; bounded wait, then SIGKILL.
        // SAFETY: kill has no memory effects; the pid is our own child's, not yet reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        stop(&self.started);
    }
}

/// The image tag, imported from scripts/debian-root's cached tarball when missing. The tag
/// carries the tarball's key, so a changed package list makes a new image.
fn image() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/debian-root");
    let out = Command::new(&script)
        .args(PACKAGES)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed", script.display()));
    }
    let tarball = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let key = tarball
        .rsplit('-')
        .next()
        .and_then(|k| k.strip_suffix(".tar"))
        .ok_or_else(|| format!("unexpected tarball name {tarball}"))?;
    let tag = format!("composer-keyd-test:php-{key}");
    let have = Command::new("docker")
        .args(["image", "inspect", &tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !have.success() {
        let st = Command::new("docker")
            .args(["import", &tarball, &tag])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err(format!("docker import {tarball} failed"));
        }
    }
    Ok(tag)
}

/// A named container, removed (with its anonymous volumes) when dropped.
pub struct Container(pub String);

impl Container {
    pub fn new(prefix: &str) -> Container {
        let n: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            .into();
        Container(format!("ckd-{prefix}-{}-{n}", std::process::id()))
    }

    /// `docker inspect` of it, as text.
    pub fn inspect(&self) -> String {
        let out = docker_cmd(&["inspect", &self.0]);
        assert!(out.status.success(), "docker inspect {}", self.0);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Its whole filesystem (`docker export`), for a search for secrets.
    pub fn filesystem(&self) -> Vec<u8> {
        let out = docker_cmd(&["export", &self.0]);
        assert!(out.status.success(), "docker export {}", self.0);
        out.stdout
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker_cmd(&["rm", "-f", "-v", &self.0]);
    }
}

pub fn docker_cmd(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker (Debian package docker.io)")
}
