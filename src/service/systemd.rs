//! The systemd user manager: enables, disables and queries the units with `systemctl --user`.

use super::{output, run, InstallOptions, Report, ServiceError, Status, SERVICE_UNIT, SOCKET_UNIT};
use std::path::PathBuf;

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
    let enabled = query(&["is-enabled", SOCKET_UNIT]) == "enabled";
    let listening = query(&["is-active", SOCKET_UNIT]) == "active";
    if !(enabled && listening) {
        systemctl(report, &["enable", "--now", SOCKET_UNIT])?;
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

/// Fills in what systemd says about the units.
pub(super) fn status(st: &mut Status) {
    let or_missing = |s: String| if s.is_empty() { "not-found".into() } else { s };
    st.enabled = Some(or_missing(query(&["is-enabled", SOCKET_UNIT])));
    st.socket_state = Some(or_missing(query(&["is-active", SOCKET_UNIT])));
    st.service_state = Some(or_missing(query(&["is-active", SERVICE_UNIT])));
    // "Listen=/run/user/1000/composer-keyd/agent.sock (Stream)", one line per socket.
    let listen = query(&["show", "--property=Listen", "--value", SOCKET_UNIT]);
    st.socket = listen
        .lines()
        .next()
        .map(|l| l.trim_end_matches(" (Stream)").trim())
        .filter(|l| !l.is_empty())
        .map(PathBuf::from);
}
