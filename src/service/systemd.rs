//! The systemd user manager: enables, disables and queries the units with `systemctl --user`.

use super::{
    output, packaged, run, InstallOptions, Report, ServiceError, Status, SERVICE_UNIT, SOCKET_UNIT,
};
use std::path::{Path, PathBuf};

/// What `systemctl --user ARGS` prints on stdout, whatever its exit status.
fn query(args: &[&str]) -> String {
    let mut full = vec!["--user"];
    full.extend_from_slice(args);
    output("systemctl", &full)
        .map(|o| o.stdout)
        .unwrap_or_default()
}

fn systemctl(report: &mut Report, args: &[&str]) -> Result<(), ServiceError> {
    let mut full = vec!["--user"];
    full.extend_from_slice(args);
    run(report, "systemctl", &full)
}

/// Reloads changed units and enables the socket; restarts a daemon that runs an old unit.
pub(super) fn enable(
    report: &mut Report,
    changed: bool,
    opts: &InstallOptions,
) -> Result<(), ServiceError> {
    if changed {
        systemctl(report, &["daemon-reload"])?;
    }
    // A package enables the socket for every user with a link in its own unit directory;
    // `enable` would add a second link in the user's, so such a socket is only started.
    let enabled = matches!(
        query(&["is-enabled", SOCKET_UNIT]).as_str(),
        "enabled" | "enabled-runtime" | "static" | "indirect" | "alias"
    );
    let listening = query(&["is-active", SOCKET_UNIT]) == "active";
    if !enabled {
        systemctl(report, &["enable", "--now", SOCKET_UNIT])?;
    } else if !listening {
        systemctl(report, &["start", SOCKET_UNIT])?;
    } else if !changed {
        report.note(format!("{SOCKET_UNIT} is already enabled and listening"));
    }
    if changed && query(&["is-active", SERVICE_UNIT]) == "active" {
        // A running daemon keeps the unit it started with until it restarts.
        systemctl(report, &["try-restart", SERVICE_UNIT])?;
    }
    let wanted = opts
        .socket
        .clone()
        .unwrap_or_else(crate::paths::socket_path);
    let listened = std::env::var_os("XDG_RUNTIME_DIR")
        .map(|d| PathBuf::from(d).join("composer-keyd/agent.sock"));
    if listened.as_ref() != Some(&wanted) {
        report.note(format!(
            "systemd listens on %t/composer-keyd/agent.sock, but this shell's clients use {} \
             (COMPOSER_KEYD_SOCK or --socket); unset it to use the service",
            wanted.display()
        ));
    }
    Ok(())
}

/// Stops and disables both units.
pub(super) fn disable(report: &mut Report) -> Result<(), ServiceError> {
    systemctl(report, &["disable", "--now", SOCKET_UNIT, SERVICE_UNIT])
}

/// Stops both units, leaving whatever enables them (a package's link) in place.
pub(super) fn stop(report: &mut Report) -> Result<(), ServiceError> {
    systemctl(report, &["stop", SOCKET_UNIT, SERVICE_UNIT])
}

/// Fills in what systemd says about the units; `user_dir` is the user's unit directory.
pub(super) fn status(st: &mut Status, user_dir: &Path) {
    let or_missing = |s: String| if s.is_empty() { "not-found".into() } else { s };
    st.enabled = Some(or_missing(query(&["is-enabled", SOCKET_UNIT])));
    st.socket_state = Some(or_missing(query(&["is-active", SOCKET_UNIT])));
    st.service_state = Some(or_missing(query(&["is-active", SERVICE_UNIT])));
    for unit in &mut st.units {
        unit.active = Some(or_missing(query(&["is-active", unit.name])));
        let path = query(&["show", "--property=FragmentPath", "--value", unit.name]);
        if !path.is_empty() {
            unit.origin = Some(packaged::origin_of(Path::new(&path), user_dir));
            unit.path = Some(PathBuf::from(path));
        }
    }
    // "Listen=/run/user/1000/composer-keyd/agent.sock (Stream)", one line per socket.
    let listen = query(&["show", "--property=Listen", "--value", SOCKET_UNIT]);
    st.socket = listen
        .lines()
        .next()
        .map(|l| l.trim_end_matches(" (Stream)").trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from);
}
