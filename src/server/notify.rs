//! sd_notify: tells a `Type=notify` service manager when the daemon is ready and when it stops.
//!
//! The protocol is one datagram per state change to the socket named by `$NOTIFY_SOCKET`
//! (a path, or an abstract name spelled with a leading `@`); a crate would add nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where state changes go; does nothing when no manager asked for them.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` and removes it from the environment, so that no process we
    /// start mistakes itself for the service's main process.
    pub fn from_env() -> Notifier {
        let value = std::env::var_os("NOTIFY_SOCKET");
        // Called at start-up before the daemon starts threads of its own (see intake).
        std::env::remove_var("NOTIFY_SOCKET");
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Notifier { target: None };
        };
        match Self::connect(value.as_bytes()) {
            Ok(target) => Notifier {
                target: Some(target),
            },
            Err(e) => {
                tracing::warn!(
                    "NOTIFY_SOCKET={} is unusable ({e}); the service manager will not hear that we are ready",
                    value.to_string_lossy()
                );
                Notifier { target: None }
            }
        }
    }

    fn connect(name: &[u8]) -> std::io::Result<(UnixDatagram, SocketAddr)> {
        let addr = match name.first() {
            Some(b'/') => SocketAddr::from_pathname(std::path::Path::new(OsStr::from_bytes(name)))?,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Some(b'@') => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(&name[1..])?
            }
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "only absolute paths and @abstract names are supported",
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        // A full queue on the manager's side must never stall the daemon.
        sock.set_nonblocking(true)?;
        Ok((sock, addr))
    }

    /// Whether a service manager listens.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends newline-separated `KEY=value` assignments; failures are logged, never fatal.
    pub fn notify(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            tracing::warn!("could not notify the service manager ({state:?}): {e}");
        } else {
            tracing::debug!("notified the service manager: {state:?}");
        }
    }

    /// `READY=1`, with a status line for `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self, status: &str) {
        self.notify(&format!("STOPPING=1\nSTATUS={status}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        let (tx, addr) = Notifier::connect(path.as_os_str().as_bytes()).unwrap();
        let n = Notifier {
            target: Some((tx, addr)),
        };
        n.ready("serving");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("composer-keyd-test-{}", std::process::id());
            let rx =
                UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
            let (tx, addr) = Notifier::connect(format!("@{name}").as_bytes()).unwrap();
            Notifier {
                target: Some((tx, addr)),
            }
            .stopping("bye");
            let len = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"STOPPING=1\nSTATUS=bye");
        }
    }

    #[test]
    fn refuses_relative_and_empty_names() {
        assert!(Notifier::connect(b"relative.sock").is_err());
        assert!(Notifier::connect(b"").is_err());
        assert!(!Notifier { target: None }.is_active());
    }
}
