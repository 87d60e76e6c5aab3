//! `doctor` inside a container: says which part of the wiring is missing (no socket mounted, a socket that refuses this uid, no plugin) and what fixes it on the host.

use super::Report;
use composer_keyd::client::ClientError;
use composer_keyd::container::{HOME_TARGET, SOCKET_TARGET};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub const WIRE: &str = "on the host, in the project: `composer-keyd container docker|compose|ddev|warden|docker-magento --write`, then recreate the container";

/// Reports a daemon that does not answer, seen from inside a container.
pub fn unreachable(r: &mut Report, socket: &Path, err: &ClientError) {
    let me = composer_keyd::paths::euid();
    let meta = match std::fs::metadata(socket) {
        Ok(m) => m,
        Err(_) => {
            let detail = if std::env::var_os("COMPOSER_KEYD_SOCK").is_none() {
                format!(
                    "no socket is mounted: COMPOSER_KEYD_SOCK is not set and nothing is at {}",
                    socket.display()
                )
            } else {
                format!(
                    "no socket is mounted at {} (COMPOSER_KEYD_SOCK)",
                    socket.display()
                )
            };
            r.problem("container", detail, WIRE);
            return;
        }
    };
    let refused = match err {
        ClientError::Closed(_) => true,
        ClientError::Connect { source, .. } => {
            source.kind() == std::io::ErrorKind::PermissionDenied
        }
        _ => false,
    };
    if refused && meta.uid() != me {
        r.problem(
            "container",
            format!(
                "a socket is mounted at {} but the daemon refuses this uid: Composer runs as uid {me} here, the daemon serves only uid {} (root in a container is uid 0 on the host)",
                socket.display(),
                meta.uid()
            ),
            format!("run Composer in the container as uid {} (`--user {}`, or the setup's user option), or use `composer-keyd container --no-socket` on the host", meta.uid(), meta.uid()),
        );
    } else {
        r.problem(
            "container",
            format!(
                "a socket is mounted at {} but no daemon answers on it: {err}",
                socket.display()
            ),
            "start the daemon on the host (`composer-keyd status`), then recreate the container: a bind mount keeps a socket the daemon has since replaced",
        );
    }
}

/// After the plugin check: where the plugin is missing in a container, the fix is the
/// mounted home, not `shim install` inside the container.
pub fn plugin_hint(r: &Report, before: usize) {
    if r.problems > before {
        let home = std::env::var_os("COMPOSER_HOME");
        if home.as_deref() != Some(Path::new(HOME_TARGET).as_os_str()) {
            r.note(
                "container",
                format!("the plugin is not loaded: COMPOSER_HOME is not the mounted {HOME_TARGET}; {WIRE}"),
            );
        } else {
            r.note("container", format!("the plugin is not loaded from {HOME_TARGET}: it is not readable by uid {} or was not prepared; {WIRE}", composer_keyd::paths::euid()));
        }
    }
}

/// A note that the socket path is the container's, for the report's header.
pub fn socket_note(r: &Report, socket: &Path) {
    if socket != Path::new(SOCKET_TARGET) {
        r.note(
            "container",
            format!("running in a container; the socket is {} (the wiring mounts it at {SOCKET_TARGET})", socket.display()),
        );
    } else {
        r.note("container", "running in a container");
    }
}
