//! Service-manager integration: installs, removes and inspects the systemd user units or the
//! LaunchAgent, rendered from templates embedded in the binary with absolute paths.
//!
//! `setup` calls [`manager`] and [`install`]; the CLI's `service` commands are thin over them.

#[cfg(target_os = "macos")]
mod launchd;
pub mod packaged;
pub mod render;
mod systemd;

use crate::paths;
pub use packaged::Origin;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd socket unit's file name.
pub const SOCKET_UNIT: &str = "composer-keyd.socket";
/// The systemd service unit's file name.
pub const SERVICE_UNIT: &str = "composer-keyd.service";
/// The LaunchAgent's label (its plist is `LABEL.plist`).
pub const LAUNCHD_LABEL: &str = "com.composer-keyd.agent";

/// Why a service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The OS would not say where this binary is, so no unit can name it.
    #[error("cannot find the path of this program: {0}")]
    CurrentExe(std::io::Error),
    /// The running binary's file is gone: units would name a path that does not exist.
    #[error("the binary {0} does not exist (was it replaced while running?); run the installed composer-keyd")]
    MissingBinary(PathBuf),
    /// A path with characters a unit file or plist cannot carry safely, and why.
    #[error("the path {0} {1}; it cannot be written into a unit file or plist")]
    UnsafePath(PathBuf, &'static str),
    /// No home or config directory to install into.
    #[error(transparent)]
    Path(#[from] paths::PathError),
    /// Reading or writing a unit file, plist or directory failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (`writing`, `removing`, ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `systemctl` or `launchctl` ran and failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line, as a user could run it again.
        command: String,
        /// What it printed, or how it ended.
        detail: String,
    },
}

/// A per-user service manager that can hold our socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    /// A systemd user manager (`systemctl --user`).
    Systemd,
    /// launchd's per-user GUI domain (`launchctl ... gui/UID`).
    Launchd,
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Manager::Systemd => "systemd user manager",
            Manager::Launchd => "launchd",
        })
    }
}

/// The service manager of this session, if one runs.
pub fn manager() -> Option<Manager> {
    if cfg!(target_os = "macos") {
        return Some(Manager::Launchd);
    }
    if !cfg!(target_os = "linux") || !on_path("systemctl") {
        return None;
    }
    // The user manager's private socket is the cheapest sign that it runs for us.
    let private = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(&d).join("systemd/private"));
    if private.is_some_and(|p| p.exists()) {
        return Some(Manager::Systemd);
    }
    let out = Command::new("systemctl")
        .args(["--user", "is-system-running"])
        .output()
        .ok()?;
    let state = String::from_utf8_lossy(&out.stdout);
    matches!(
        state.trim(),
        "running" | "degraded" | "starting" | "initializing" | "maintenance" | "stopping"
    )
    .then_some(Manager::Systemd)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// What `install` is asked for.
#[derive(Clone, Debug, Default)]
pub struct InstallOptions {
    /// The binary the units start; default: this one (see [`binary_path`]).
    pub bin: Option<PathBuf>,
    /// `--idle-exit SECS` for the daemon.
    pub idle_exit: Option<u64>,
    /// The socket clients use (the plist's `SockPathName`); default: [`paths::socket_path`].
    pub socket: Option<PathBuf>,
}

/// One thing install or uninstall did, or found already done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    /// A file was written (created or changed).
    Wrote {
        /// The unit file or plist.
        path: PathBuf,
    },
    /// A file already held what it should.
    Unchanged {
        /// The unit file or plist.
        path: PathBuf,
    },
    /// A file was removed.
    Removed {
        /// The unit file or plist.
        path: PathBuf,
    },
    /// A service-manager command was run.
    Ran {
        /// The command line, as a user could run it again.
        command: String,
    },
    /// Something the user should know that changed nothing.
    Note {
        /// One sentence.
        text: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Wrote { path } => write!(f, "wrote {}", path.display()),
            Step::Unchanged { path } => write!(f, "unchanged {}", path.display()),
            Step::Removed { path } => write!(f, "removed {}", path.display()),
            Step::Ran { command } => write!(f, "ran `{command}`"),
            Step::Note { text } => f.write_str(text),
        }
    }
}

/// What install or uninstall did, in order.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The manager acted on; none when no service manager runs here.
    pub manager: Option<Manager>,
    /// What was done, in order.
    pub steps: Vec<Step>,
}

impl Report {
    /// Whether anything changed (a second install changes nothing).
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s,
                Step::Wrote { .. } | Step::Removed { .. } | Step::Ran { .. }
            )
        })
    }

    fn note(&mut self, text: impl Into<String>) {
        self.steps.push(Step::Note { text: text.into() });
    }
}

/// The binary to name in the units: the running one, but by its `PATH` name when that is a
/// link to it (a package manager's stable `bin/` link survives upgrades; its target does not).
pub fn binary_path() -> Result<PathBuf, ServiceError> {
    let exe = std::env::current_exe().map_err(ServiceError::CurrentExe)?;
    if !exe.is_file() {
        return Err(ServiceError::MissingBinary(exe));
    }
    let real = exe.canonicalize().ok();
    let stable = exe.file_name().and_then(|name| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .filter(|c| c.is_absolute())
            .find(|c| c.canonicalize().ok() == real)
    });
    Ok(stable.unwrap_or(exe))
}

fn home() -> Result<PathBuf, ServiceError> {
    Ok(directories::BaseDirs::new()
        .ok_or(paths::PathError::NoHome)?
        .home_dir()
        .to_path_buf())
}

/// `$XDG_CONFIG_HOME/systemd/user`.
pub fn systemd_unit_dir() -> Result<PathBuf, ServiceError> {
    let base = directories::BaseDirs::new().ok_or(paths::PathError::NoHome)?;
    Ok(base.config_dir().join("systemd/user"))
}

/// `~/Library/LaunchAgents/com.composer-keyd.agent.plist`.
pub fn launchd_plist_path() -> Result<PathBuf, ServiceError> {
    Ok(home()?
        .join("Library/LaunchAgents")
        .join(format!("{LAUNCHD_LABEL}.plist")))
}

/// The files `install` writes for this platform, with their contents.
pub fn rendered_files(opts: &InstallOptions) -> Result<Vec<(PathBuf, String)>, ServiceError> {
    let bin = match &opts.bin {
        Some(b) if b.is_file() => b.clone(),
        Some(b) => return Err(ServiceError::MissingBinary(b.clone())),
        None => binary_path()?,
    };
    if cfg!(target_os = "macos") {
        let socket = opts.socket.clone().unwrap_or_else(paths::socket_path);
        let log = paths::state_dir()?.join("daemon.log");
        let plist = render::plist(&bin, &socket, &log, opts.idle_exit)?;
        return Ok(vec![(launchd_plist_path()?, plist)]);
    }
    let dir = systemd_unit_dir()?;
    Ok(vec![
        (dir.join(SOCKET_UNIT), render::socket_unit()),
        (
            dir.join(SERVICE_UNIT),
            render::service_unit(&bin, opts.idle_exit)?,
        ),
    ])
}

/// Writes the units (or the plist) and, when a service manager runs, loads and enables them.
/// Idempotent: a second run with the same options changes nothing.
pub fn install(opts: &InstallOptions) -> Result<Report, ServiceError> {
    let mgr = manager();
    let mut report = Report {
        manager: mgr,
        steps: Vec::new(),
    };
    // A package's units name the packaged binary already; a copy of ours would shadow them
    // and go stale on the next upgrade. Only a custom binary or --idle-exit needs our own.
    let custom = opts.bin.is_some() || opts.idle_exit.is_some();
    if let Some(dir) = packaged::packaged_dir().filter(|_| cfg!(target_os = "linux") && !custom) {
        return install_packaged(report, &dir, opts);
    }
    let files = rendered_files(opts)?;
    for (path, text) in &files {
        report.steps.push(write_if_changed(path, text)?);
    }
    let changed = report.changed();
    match mgr {
        #[cfg(target_os = "macos")]
        Some(Manager::Launchd) => launchd::load(&mut report, &files[0].0, changed, opts)?,
        Some(Manager::Systemd) => systemd::enable(&mut report, changed, opts)?,
        _ if cfg!(target_os = "linux") => report.note(
            "No systemd user manager is running in this session, so nothing was enabled. \
             The units take effect in a session with one (`systemctl --user enable --now composer-keyd.socket`). \
             Until then run `composer-keyd serve` (the CLI also starts it when needed).",
        ),
        _ => report.note(
            "No supported service manager here; run `composer-keyd serve` (the CLI also starts it when needed).",
        ),
    }
    Ok(report)
}

/// `install` when a package put the units in `dir`: drops our own copies that would shadow
/// them, then has the manager use the package's.
fn install_packaged(
    mut report: Report,
    dir: &Path,
    opts: &InstallOptions,
) -> Result<Report, ServiceError> {
    let user = systemd_unit_dir()?;
    for unit in [SOCKET_UNIT, SERVICE_UNIT] {
        remove_if_present(&mut report, &user.join(unit))?;
    }
    let changed = report.changed();
    report.note(format!(
        "using the package's units in {} (enabled for every user)",
        dir.display()
    ));
    match report.manager {
        Some(Manager::Systemd) => systemd::enable(&mut report, changed, opts)?,
        _ => report.note(
            "No systemd user manager is running in this session: the package's socket takes \
             effect in a session with one. Until then the CLI starts the daemon when needed.",
        ),
    }
    Ok(report)
}

fn remove_if_present(report: &mut Report, path: &Path) -> Result<(), ServiceError> {
    match std::fs::remove_file(path) {
        Ok(()) => report.steps.push(Step::Removed {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ServiceError::Io {
                what: "removing",
                path: path.to_path_buf(),
                source,
            })
        }
    }
    Ok(())
}

/// Stops and disables the service, then removes what `install` wrote.
pub fn uninstall() -> Result<Report, ServiceError> {
    let mgr = manager();
    let mut report = Report {
        manager: mgr,
        steps: Vec::new(),
    };
    let paths: Vec<PathBuf> = if cfg!(target_os = "macos") {
        vec![launchd_plist_path()?]
    } else {
        let dir = systemd_unit_dir()?;
        vec![dir.join(SOCKET_UNIT), dir.join(SERVICE_UNIT)]
    };
    let present = paths.iter().any(|p| p.exists());
    match mgr {
        #[cfg(target_os = "macos")]
        Some(Manager::Launchd) => launchd::unload(&mut report)?,
        Some(Manager::Systemd) if present => systemd::disable(&mut report)?,
        _ => {}
    }
    for path in &paths {
        remove_if_present(&mut report, path)?;
    }
    if mgr == Some(Manager::Systemd) && present {
        run(&mut report, "systemctl", &["--user", "daemon-reload"])?;
    }
    if let Some(dir) = packaged::packaged_dir().filter(|_| cfg!(target_os = "linux")) {
        if mgr == Some(Manager::Systemd) {
            systemd::stop(&mut report)?;
        }
        report.note(format!(
            "The package's units in {} stay, enabled for every user: \
             `systemctl --user mask {SOCKET_UNIT}` turns the socket off for you alone.",
            dir.display()
        ));
    }
    if !report.changed() {
        report.note("Nothing to remove: the service was not installed.");
    }
    Ok(report)
}

/// The service manager's view of the service.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// The manager asked; none when no service manager runs here.
    pub manager: Option<Manager>,
    /// Each file `install` writes, and whether it is there.
    pub files: Vec<FileState>,
    /// `enabled`, `disabled`, `loaded`, `not-found`, ... as the manager says it.
    pub enabled: Option<String>,
    /// The socket's state (`active`/`listening`, `inactive`, `failed`, ...).
    pub socket_state: Option<String>,
    /// The daemon's state (`active`, `inactive`, `running`, ...).
    pub service_state: Option<String>,
    /// Where the manager listens, or where `composer-keyd serve` would.
    pub socket: Option<PathBuf>,
    /// Each unit: the file systemd loads (or would), who put it there, and its state.
    pub units: Vec<UnitState>,
}

/// One systemd unit as `status` sees it.
#[derive(Clone, Debug, Serialize)]
pub struct UnitState {
    /// The unit's name, e.g. `composer-keyd.socket`.
    pub name: &'static str,
    /// The file loaded (asked of the manager), or the one it would load (judged from files).
    pub path: Option<PathBuf>,
    /// Who put that file there: the user, the administrator (/etc) or the package.
    pub origin: Option<Origin>,
    /// `active`, `inactive`, ... as the manager says; none without a manager.
    pub active: Option<String>,
}

/// A file `install` writes.
#[derive(Clone, Debug, Serialize)]
pub struct FileState {
    /// Where `install` puts it.
    pub path: PathBuf,
    /// Whether it is there now.
    pub installed: bool,
}

/// Asks the service manager about the service.
pub fn status() -> Result<Status, ServiceError> {
    let mgr = manager();
    let files: Vec<PathBuf> = if cfg!(target_os = "macos") {
        vec![launchd_plist_path()?]
    } else {
        let dir = systemd_unit_dir()?;
        vec![dir.join(SOCKET_UNIT), dir.join(SERVICE_UNIT)]
    };
    let mut st = Status {
        manager: mgr,
        files: files
            .iter()
            .map(|p| FileState {
                path: p.clone(),
                installed: p.exists(),
            })
            .collect(),
        enabled: None,
        socket_state: None,
        service_state: None,
        socket: None,
        units: Vec::new(),
    };
    if cfg!(target_os = "linux") {
        let user = systemd_unit_dir()?;
        st.units = [SOCKET_UNIT, SERVICE_UNIT]
            .into_iter()
            .map(|name| {
                let found = packaged::unit_source(&user, name);
                UnitState {
                    name,
                    path: found.as_ref().map(|f| f.0.clone()),
                    origin: found.map(|f| f.1),
                    active: None,
                }
            })
            .collect();
    }
    match mgr {
        Some(Manager::Systemd) => systemd::status(&mut st, &systemd_unit_dir()?),
        #[cfg(target_os = "macos")]
        Some(Manager::Launchd) => launchd::status(&mut st, &files[0]),
        _ => st.socket = Some(paths::socket_path()),
    }
    Ok(st)
}

fn write_if_changed(path: &Path, text: &str) -> Result<Step, ServiceError> {
    let io = |what, source| ServiceError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(Step::Unchanged {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    // Unit files and plists hold no secret; service managers expect them world-readable.
    crate::atomic::write(path, text.as_bytes(), 0o644).map_err(|e| io("writing", e))?;
    Ok(Step::Wrote {
        path: path.to_path_buf(),
    })
}

/// What a command printed, and whether it succeeded.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program args`; only a failure to start it at all is an error.
fn output(program: &str, args: &[&str]) -> Result<Output, ServiceError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ServiceError::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    Ok(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `program args`, records it in the report, and fails with its stderr if it fails.
fn run(report: &mut Report, program: &str, args: &[&str]) -> Result<(), ServiceError> {
    let command = format!("{program} {}", args.join(" "));
    let out = output(program, args)?;
    if !out.ok {
        let detail = if out.stderr.is_empty() {
            out.stdout
        } else {
            out.stderr
        };
        return Err(ServiceError::Command { command, detail });
    }
    report.steps.push(Step::Ran { command });
    Ok(())
}
