//! launchd: bootstraps, boots out and queries the LaunchAgent in the user's GUI domain.

use super::{output, run, InstallOptions, Report, ServiceError, Status, LAUNCHD_LABEL};
use crate::paths;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn domain() -> String {
    format!("gui/{}", paths::euid())
}

fn target() -> String {
    format!("gui/{}/{LAUNCHD_LABEL}", paths::euid())
}

fn loaded() -> bool {
    output("launchctl", &["print", &target()]).is_ok_and(|o| o.ok)
}

/// Boots the agent out and waits (at most 5 s) until launchd has let it go.
fn boot_out(report: &mut Report) -> Result<(), ServiceError> {
    run(report, "launchctl", &["bootout", &target()])?;
    // Bounded: 50 x 100 ms; bootstrapping again too early fails with EIO.
    for _ in 0..50 {
        if !loaded() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Loads the agent (again, if its plist changed); launchd then holds the socket.
pub(super) fn load(
    report: &mut Report,
    plist: &Path,
    changed: bool,
    opts: &InstallOptions,
) -> Result<(), ServiceError> {
    // launchd creates neither the socket's directory nor the log's.
    let socket = opts.socket.clone().unwrap_or_else(paths::socket_path);
    if let Some(dir) = socket.parent() {
        paths::prepare_socket_dir(dir)?;
    }
    let state = paths::state_dir()?;
    paths::create_private_dir(&state).map_err(|source| ServiceError::Io {
        what: "creating",
        path: state.clone(),
        source,
    })?;
    let was_loaded = loaded();
    if was_loaded && !changed {
        report.note(format!("{LAUNCHD_LABEL} is already loaded"));
        return Ok(());
    }
    if was_loaded {
        boot_out(report)?;
    }
    // Clears a `launchctl disable` left from earlier, which would make bootstrap fail.
    run(report, "launchctl", &["enable", &target()])?;
    let plist = plist.to_string_lossy();
    run(report, "launchctl", &["bootstrap", &domain(), &plist])
}

/// Boots the agent out if it is loaded (launchd stops the daemon).
pub(super) fn unload(report: &mut Report) -> Result<(), ServiceError> {
    if loaded() {
        boot_out(report)?;
    }
    Ok(())
}

/// Fills in what launchd says about the agent, and the socket path from its plist.
pub(super) fn status(st: &mut Status, plist: &Path) {
    match output("launchctl", &["print", &target()]) {
        Ok(o) if o.ok => {
            st.enabled = Some("loaded".into());
            // launchd holds the socket for as long as the job is loaded.
            st.socket_state = Some("listening".into());
            st.service_state = o
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix("state = "))
                .map(str::to_owned);
        }
        _ => st.enabled = Some("not-loaded".into()),
    }
    st.socket = std::fs::read_to_string(plist)
        .ok()
        .and_then(|text| sock_path_name(&text));
}

/// The `SockPathName` string of a plist we rendered.
fn sock_path_name(plist: &str) -> Option<PathBuf> {
    let after = &plist[plist.find("<key>SockPathName</key>")?..];
    let start = after.find("<string>")? + "<string>".len();
    let len = after[start..].find("</string>")?;
    let text = after[start..start + len]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(PathBuf::from(text))
}
