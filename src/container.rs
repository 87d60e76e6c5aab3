//! Container wiring: the host's socket and a plugin-ready COMPOSER_HOME, bind-mounted into plain Docker, Compose, DDEV, Warden and docker-magento containers.
//!
//! The plugin must be a *global* plugin to see Composer's first request (a project-local one
//! activates after the metadata and dists were fetched), and the image stays untouched, so
//! the container gets a COMPOSER_HOME of its own: a directory in composer-keyd's data dir
//! that `shim install` prepared, mounted read-only. The cache moves to the container's
//! `/tmp` because that home cannot be written. Nothing secret is in any of it: the plugin
//! asks the daemon over the mounted socket for each run.

use std::path::{Path, PathBuf};

/// Where the host's socket appears inside the container (a root-owned directory, which the
/// client-side trust rule accepts for a socket bind-mounted by root).
pub const SOCKET_TARGET: &str = "/run/composer-keyd.sock";
/// Where the prepared COMPOSER_HOME appears inside the container.
pub const HOME_TARGET: &str = "/opt/composer-keyd/composer-home";
/// Composer's cache inside the container: the mounted home is read-only.
pub const CACHE_TARGET: &str = "/tmp/composer-cache";
/// The prepared COMPOSER_HOME's name inside composer-keyd's data dir.
pub const HOME_DIR_NAME: &str = "container-home";
/// The first line of every file this module writes; a file without it is the user's.
pub const MARKER: &str = "# Written by `composer-keyd container`; rerun it to update.";

/// The container setups `composer-keyd container` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `docker run` flags.
    Docker,
    /// A compose override file for `docker compose -f compose.yaml -f <override>`.
    Compose,
    /// DDEV merges every `.ddev/docker-compose.*.yaml`.
    Ddev,
    /// Warden merges `.warden/warden-env.yml` into its environment.
    Warden,
    /// Mark Shust's docker-magento: an override for its compose files.
    DockerMagento,
}

impl Mode {
    /// The services that run Composer in this setup.
    pub fn default_services(self) -> &'static [&'static str] {
        match self {
            Mode::Docker => &[],
            Mode::Compose => &["app"],
            Mode::Ddev => &["web"],
            Mode::Warden => &["php-fpm", "php-debug"],
            Mode::DockerMagento => &["phpfpm"],
        }
    }

    /// The file `--write` writes, relative to the project; `None` for plain Docker.
    pub fn file(self) -> Option<&'static str> {
        match self {
            Mode::Docker => None,
            Mode::Compose | Mode::DockerMagento => Some("compose.composer-keyd.yaml"),
            Mode::Ddev => Some(".ddev/docker-compose.composer-keyd.yaml"),
            Mode::Warden => Some(".warden/warden-env.yml"),
        }
    }

    /// Where the project is mounted in the container, when the setup fixes it.
    pub fn project_target(self) -> Option<&'static str> {
        match self {
            Mode::Docker | Mode::Compose => None,
            Mode::Ddev | Mode::Warden | Mode::DockerMagento => Some("/var/www/html"),
        }
    }
}

/// Why wiring could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The file exists and was not written by us: overwriting it would lose the user's work.
    #[error(
        "{0} exists and was not written by composer-keyd; merge the printed wiring into it by hand"
    )]
    Foreign(PathBuf),
    /// Writing a wiring file failed.
    #[error("writing {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Plain Docker has no file to write.
    #[error("plain `docker run` has no file to write; pass the printed flags")]
    NoFile,
    /// The file or its directory is a link, or not a plain file or directory: another user
    /// could have planted it to redirect the write or the read.
    #[error("refusing {path}: {why}")]
    Unsafe {
        /// The directory or file.
        path: PathBuf,
        /// What it is instead.
        why: &'static str,
    },
}

/// Our wiring files are a few KiB; a larger "file of ours" is not one.
const MAX_OURS: u64 = 1 << 20;

/// What a container needs, as host paths.
#[derive(Clone, Debug)]
pub struct Wiring {
    /// The daemon's socket on the host.
    pub socket: PathBuf,
    /// The COMPOSER_HOME prepared by `shim install` for containers.
    pub home: PathBuf,
    /// The project on the host.
    pub project: PathBuf,
    /// The container user's uid.
    pub uid: u32,
    /// The container user's gid.
    pub gid: u32,
}

/// The container COMPOSER_HOME inside composer-keyd's data dir.
pub fn container_home(data_dir: &Path) -> PathBuf {
    data_dir.join(HOME_DIR_NAME)
}

/// The global composer.json a fresh container home starts with. Turning Packagist off here
/// only affects the global install of the plugin (a path repository), never projects:
/// Composer does not merge a home's repositories into a project.
pub fn initial_home_manifest() -> &'static str {
    "{\n    \"repositories\": [{\"packagist.org\": false}]\n}\n"
}

impl Wiring {
    /// The environment the container's Composer needs; none of it is secret.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("COMPOSER_KEYD_SOCK", SOCKET_TARGET),
            ("COMPOSER_HOME", HOME_TARGET),
            ("COMPOSER_CACHE_DIR", CACHE_TARGET),
        ]
    }

    /// `(host, container, read_only)` bind mounts.
    pub fn mounts(&self) -> Vec<(String, String, bool)> {
        vec![
            (
                self.socket.display().to_string(),
                SOCKET_TARGET.to_owned(),
                false,
            ),
            (
                self.home.display().to_string(),
                HOME_TARGET.to_owned(),
                true,
            ),
        ]
    }

    /// `docker run` flags, one per line, shell-quoted. The project is mounted at its host
    /// path so that credentials scoped to it match inside the container too.
    pub fn docker_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (host, target, ro) in self.mounts() {
            let ro = if ro { ",readonly" } else { "" };
            out.push(format!(
                "--mount {}",
                shell_quote(&format!("type=bind,source={host},target={target}{ro}"))
            ));
        }
        let project = self.project.display().to_string();
        out.push(format!(
            "--mount {}",
            shell_quote(&format!("type=bind,source={project},target={project}"))
        ));
        out.push(format!("--workdir {}", shell_quote(&project)));
        for (k, v) in self.env() {
            out.push(format!("--env {}", shell_quote(&format!("{k}={v}"))));
        }
        out.push(format!("--user {}:{}", self.uid, self.gid));
        out
    }

    /// A compose override adding the mounts and environment to `services`.
    pub fn compose_override(&self, services: &[String]) -> String {
        let mut y = format!("{MARKER}\n# Mounts the composer-keyd socket and a plugin-ready COMPOSER_HOME; no secret is in it.\nservices:\n");
        for s in services {
            y.push_str(&format!("  {}:\n    volumes:\n", yaml_str(s)));
            for (host, target, ro) in self.mounts() {
                y.push_str(&format!(
                    "      - type: bind\n        source: {}\n        target: {}\n",
                    yaml_str(&host),
                    yaml_str(&target)
                ));
                if ro {
                    y.push_str("        read_only: true\n");
                }
            }
            y.push_str("    environment:\n");
            for (k, v) in self.env() {
                y.push_str(&format!("      {k}: {}\n", yaml_str(v)));
            }
        }
        y
    }

    /// Writes `mode`'s file under the project (atomically, 0644), refusing to replace a file
    /// that composer-keyd did not write.
    pub fn write(&self, mode: Mode, services: &[String]) -> Result<PathBuf, ContainerError> {
        let rel = mode.file().ok_or(ContainerError::NoFile)?;
        let path = self.project.join(rel);
        let io = |source| ContainerError::Io {
            path: path.clone(),
            source,
        };
        // `.ddev` or `.warden`: a real directory, never a link (which another user could point
        // at a directory of root's); made here with mkdir, which follows no link.
        if let Some(dir) = path.parent().filter(|d| *d != self.project) {
            match std::fs::symlink_metadata(dir) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(unsafe_path(dir, "it is a symbolic link"))
                }
                Ok(m) if !m.is_dir() => return Err(unsafe_path(dir, "it is not a directory")),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir(dir).map_err(io)?;
                }
                Err(e) => return Err(io(e)),
            }
        }
        match read_ours(&path) {
            Ok(Some(old)) if !old.starts_with(MARKER) => return Err(ContainerError::Foreign(path)),
            Ok(_) => {}
            Err(e) => return Err(e.into_error(&path)),
        }
        // atomic::write refuses a directory on the way that another user owns or can write.
        crate::atomic::write(&path, self.compose_override(services).as_bytes(), 0o644)
            .map_err(io)?;
        Ok(path)
    }
}

fn unsafe_path(path: &Path, why: &'static str) -> ContainerError {
    ContainerError::Unsafe {
        path: path.to_path_buf(),
        why,
    }
}

/// Why an existing wiring file could not be read.
enum ReadError {
    Unsafe(&'static str),
    Io(std::io::Error),
}

impl ReadError {
    fn into_error(self, path: &Path) -> ContainerError {
        match self {
            ReadError::Unsafe(why) => unsafe_path(path, why),
            ReadError::Io(source) => ContainerError::Io {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}

/// The file at `path` when it is a plain file of at most [`MAX_OURS`] bytes; `None` when
/// there is none. Opened `O_NOFOLLOW|O_NONBLOCK`: a link is refused, and a FIFO cannot
/// hang the open; anything but a regular file (a device such as /dev/zero) is refused.
fn read_ours(path: &Path) -> Result<Option<String>, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Unsafe("it is a symbolic link"))
        }
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::Unsafe("it is not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_OURS + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_OURS {
        return Err(ReadError::Unsafe(
            "it is larger than any file composer-keyd writes",
        ));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The socketless form (Docker Desktop on macOS cannot mount a host socket): the
/// credentials go into one `docker compose exec` process's environment for one run.
pub fn exec_form(service: &str) -> String {
    format!(
        "composer-keyd exec -- docker compose exec -e COMPOSER_AUTH {} composer install",
        shell_quote(service)
    )
}

/// Overrides [`in_container`]'s guess: `1` or `0`. A development container that runs its
/// own daemon (a CI job, a dev box) is a host for composer-keyd's purposes.
pub const ENV_IN_CONTAINER: &str = "COMPOSER_KEYD_IN_CONTAINER";

/// Whether this process runs in a container whose daemon is on the host: `COMPOSER_KEYD_IN_CONTAINER`
/// when set, else Docker's `/.dockerenv`, Podman's `/run/.containerenv`, or the `container`
/// variable systemd-nspawn and others set.
pub fn in_container() -> bool {
    match std::env::var(ENV_IN_CONTAINER).as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || std::env::var_os("container").is_some_and(|v| !v.is_empty())
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A YAML double-quoted scalar: JSON's string escapes are a subset of YAML's.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiring() -> Wiring {
        Wiring {
            socket: "/run/user/1000/composer-keyd/agent.sock".into(),
            home: "/home/u/.local/share/composer-keyd/container-home".into(),
            project: "/home/u/my shop".into(),
            uid: 1000,
            gid: 1000,
        }
    }

    #[test]
    fn docker_args_quote_paths_and_mount_home_read_only() {
        let a = wiring().docker_args();
        assert!(
            a.contains(
                &"--mount 'type=bind,source=/home/u/my shop,target=/home/u/my shop'".to_owned()
            ),
            "{a:?}"
        );
        assert!(a.contains(&"--mount type=bind,source=/home/u/.local/share/composer-keyd/container-home,target=/opt/composer-keyd/composer-home,readonly".to_owned()), "{a:?}");
        assert!(a.contains(&"--env COMPOSER_KEYD_SOCK=/run/composer-keyd.sock".to_owned()));
        assert!(a.contains(&"--user 1000:1000".to_owned()));
    }

    #[test]
    fn compose_override_names_each_service() {
        let y = wiring().compose_override(&["php-fpm".into(), "php-debug".into()]);
        assert!(y.starts_with(MARKER));
        assert!(y.contains("  \"php-fpm\":\n") && y.contains("  \"php-debug\":\n"));
        assert_eq!(y.matches("read_only: true").count(), 2);
        assert!(y.contains("COMPOSER_KEYD_SOCK: \"/run/composer-keyd.sock\""));
    }

    #[test]
    fn write_refuses_a_users_own_file_and_replaces_ours() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = wiring();
        w.project = dir.path().to_path_buf();
        std::fs::create_dir_all(dir.path().join(".warden")).unwrap();
        let theirs = dir.path().join(".warden/warden-env.yml");
        std::fs::write(&theirs, "services: {}\n").unwrap();
        let err = w.write(Mode::Warden, &["php-fpm".into()]).unwrap_err();
        assert!(matches!(err, ContainerError::Foreign(_)), "{err}");
        assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "services: {}\n");

        let p = w.write(Mode::Ddev, &["web".into()]).unwrap();
        assert_eq!(
            p,
            dir.path().join(".ddev/docker-compose.composer-keyd.yaml")
        );
        w.write(Mode::Ddev, &["web".into()]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("\"web\":"));
    }

    /// As another user would plant it: the link itself belongs to nobody (when run as root).
    fn plant_link(target: &Path, link: &Path) {
        std::os::unix::fs::symlink(target, link).unwrap();
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::lchown(link, Some(65534), Some(65534)).unwrap();
        }
    }

    #[test]
    fn write_follows_no_planted_link_and_reads_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = wiring();
        w.project = dir.path().join("project");
        std::fs::create_dir(&w.project).unwrap();
        // `.ddev` linked to a directory of root's (here: one of ours the link points at).
        let elsewhere = dir.path().join("root-owned");
        std::fs::create_dir(&elsewhere).unwrap();
        plant_link(&elsewhere, &w.project.join(".ddev"));
        let err = w.write(Mode::Ddev, &["web".into()]).unwrap_err();
        assert!(matches!(err, ContainerError::Unsafe { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            std::fs::read_dir(&elsewhere).unwrap().count(),
            0,
            "wrote through the link"
        );

        // `.warden/warden-env.yml` linked to /dev/zero, or a FIFO: refused at once, unread.
        let warden = w.project.join(".warden");
        std::fs::create_dir(&warden).unwrap();
        let file = warden.join("warden-env.yml");
        plant_link(Path::new("/dev/zero"), &file);
        let err = w.write(Mode::Warden, &["php-fpm".into()]).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::remove_file(&file).unwrap();
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let w2 = w.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                w2.write(Mode::Warden, &["php-fpm".into()])
                    .map_err(|e| e.to_string()),
            );
        });
        let res = rx.recv_timeout(std::time::Duration::from_secs(5));
        if res.is_err() {
            // Let the stuck open finish before failing.
            let _ = std::fs::OpenOptions::new().write(true).open(&file);
        }
        let res = res.expect("write hung on a FIFO");
        assert!(res.unwrap_err().contains("not a regular file"));
        std::fs::remove_file(&file).unwrap();

        // A file of ours that grew past any size we write is not read whole.
        let mut big = MARKER.as_bytes().to_vec();
        big.resize(MAX_OURS as usize + 2, b'#');
        std::fs::write(&file, &big).unwrap();
        let err = w.write(Mode::Warden, &["php-fpm".into()]).unwrap_err();
        assert!(err.to_string().contains("larger"), "{err}");
        std::fs::remove_file(&file).unwrap();
        // And the ordinary case still writes.
        w.write(Mode::Warden, &["php-fpm".into()]).unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().starts_with(MARKER));
    }

    #[test]
    fn shell_quote_escapes_single_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote("web"), "web");
    }
}
