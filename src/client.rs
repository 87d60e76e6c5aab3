//! The CLI's HTTP client over the Unix socket, with autostart of a daemon when nothing listens.

mod api;

use crate::protocol::{ErrorBody, ErrorKind, Status, PROTOCOL};
use crate::trust::{self, CheckError, Checked, PeerCred, Placement, Untrusted};
pub use api::{credential_path, Action};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;
use zeroize::Zeroizing;

/// How the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket: it is absent, or connecting was refused.
    #[error("no composer-keyd daemon is listening on {path}: start one with `composer-keyd serve` (or drop --no-autostart)")]
    NotRunning {
        /// The socket path that was tried.
        path: PathBuf,
    },
    /// The socket could not be inspected, or connecting failed for another reason.
    #[error("cannot reach the daemon on {path}: {source}")]
    Connect {
        /// The socket path that was tried.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The connection ended mid-request (the daemon drops peers of other users); holds hyper's
    /// message.
    #[error("the daemon closed the connection ({0}); it refuses connections from other users")]
    Closed(String),
    /// The daemon answered with a typed error.
    #[error("{message}")]
    Daemon {
        /// What went wrong, for the caller to branch on.
        kind: ErrorKind,
        /// The daemon's message for the user; never holds a secret.
        message: String,
    },
    /// No reply within the client's time-out; holds that time-out.
    #[error("the daemon did not answer within {0:?}")]
    Timeout(Duration),
    /// The reply is not HTTP+JSON of the expected shape; holds the detail.
    #[error("the daemon's reply is not understood: {0}")]
    Protocol(String),
    /// `serve` could not be spawned or its socket never appeared; holds the reason.
    #[error("could not start the daemon: {0}")]
    Autostart(String),
    /// Someone other than the caller or root could have put the socket there, or another
    /// user's process listens on it: nothing was sent.
    #[error(transparent)]
    UntrustedSocket(#[from] Untrusted),
}

impl ClientError {
    /// The wire kind, when the daemon sent one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Daemon { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// A client of one daemon socket.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
    placement: Placement,
    timeout: Duration,
}

impl Client {
    /// A client for the socket at `path`; a path in one of the default socket directories
    /// gets their stricter check.
    pub fn new(path: PathBuf) -> Client {
        let placement = Placement::of(&path, &crate::paths::default_socket_dirs());
        Client {
            path,
            placement,
            timeout: Duration::from_secs(30),
        }
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends a request and decodes a JSON reply, or the daemon's typed error.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<T, ClientError> {
        Ok(self.call_with_peer(method, path_and_query, body).await?.0)
    }

    /// [`Client::call`], also returning who answered.
    async fn call_with_peer<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(T, Option<PeerCred>), ClientError> {
        let (bytes, peer) =
            tokio::time::timeout(self.timeout, self.send(method, path_and_query, body))
                .await
                .map_err(|_| ClientError::Timeout(self.timeout))??;
        let value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok((value, peer))
    }

    /// Connects only to a socket that passes the trust rule, and keeps the connection only
    /// when the peer runs as us or root (or as the socket's owner, for a socket root put in
    /// a root-owned directory). Nothing has been sent when this fails.
    async fn connect(&self) -> Result<(UnixStream, Option<PeerCred>), ClientError> {
        let trusted = match trust::check_socket(&self.path, self.placement) {
            Ok(Checked::Trusted(t)) => t,
            Ok(Checked::Missing) => {
                return Err(ClientError::NotRunning {
                    path: self.path.clone(),
                })
            }
            Err(CheckError::Untrusted(u)) => return Err(u.into()),
            Err(CheckError::Io { source, .. }) => {
                return Err(ClientError::Connect {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let stream = UnixStream::connect(&self.path).await.map_err(|source| {
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) {
                ClientError::NotRunning {
                    path: self.path.clone(),
                }
            } else {
                ClientError::Connect {
                    path: self.path.clone(),
                    source,
                }
            }
        })?;
        let me = trust::euid();
        let peer = match trust::peer_cred(std::os::fd::AsFd::as_fd(&stream)) {
            Ok(p) if trusted.admits_peer(p.uid, me) => Some(p),
            Ok(p) => return Err(trust::peer_refused(&self.path, p.uid, me).into()),
            // Where the OS has no peer credentials, the walk is the check.
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => None,
            Err(source) => {
                return Err(ClientError::Connect {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        Ok((stream, peer))
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(Zeroizing<Vec<u8>>, Option<PeerCred>), ClientError> {
        let (stream, peer) = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends with the request; its error, if any, shows in the response.
            let _ = conn.await;
        });
        let payload = match &body {
            Some(b) => Bytes::copy_from_slice(b),
            None => Bytes::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        let status = resp.status().as_u16();
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?
            .to_bytes();
        let bytes = Zeroizing::new(collected.to_vec());
        if status >= 400 {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => ClientError::Daemon {
                    kind: e.error.kind,
                    message: e.error.message,
                },
                Err(_) => ClientError::Protocol(format!("HTTP {status} without an error body")),
            });
        }
        Ok((bytes, peer))
    }

    /// Checks that a daemon answers, starting one in the background when none listens
    /// (as gpg-agent's clients do) unless `autostart` is off. Nothing is started or stopped
    /// at a socket that fails the trust rule.
    pub async fn ensure_running(&self, autostart: bool) -> Result<(), ClientError> {
        match self
            .call_with_peer::<Status>(Method::GET, "/v1/status", None)
            .await
        {
            Ok((s, _)) if s.protocol == PROTOCOL => Ok(()),
            Ok((s, peer)) if autostart => {
                // A daemon from an older or newer build: replace it, as rbw does. The pid is
                // the kernel's word for who listens, never the one in the reply.
                let pid = peer.and_then(|p| p.pid);
                tracing::warn!(
                    "the daemon (pid {}) speaks protocol {} and this CLI {PROTOCOL}; restarting it",
                    pid.map_or("unknown".into(), |p| p.to_string()),
                    s.protocol
                );
                self.stop_daemon(pid, s.protocol).await?;
                match self.call::<Status>(Method::GET, "/v1/status", None).await {
                    // The service manager already started the new binary on its socket.
                    Ok(now) if now.protocol == PROTOCOL => Ok(()),
                    _ => self.start().await,
                }
            }
            Ok((s, _)) => Err(ClientError::Protocol(format!(
                "the daemon speaks protocol {} and this CLI {PROTOCOL}; restart it",
                s.protocol
            ))),
            Err(ClientError::NotRunning { .. }) if autostart => self.start().await,
            Err(e) => Err(e),
        }
    }

    /// Sends SIGTERM to a stale daemon and waits (at most 5 s) until it is gone: its socket
    /// stops answering, or (under socket activation, where the manager keeps the socket)
    /// another process answers. Only a pid verified as a composer-keyd of ours is signalled.
    async fn stop_daemon(&self, pid: Option<i32>, protocol: u32) -> Result<(), ClientError> {
        let me = trust::euid();
        let Some(pid) = pid.filter(|&p| trust::is_our_daemon(p, me)) else {
            return Err(ClientError::Autostart(format!(
                "the process on {} speaks protocol {protocol}, not {PROTOCOL}, and is not a \
                 composer-keyd daemon of yours that this CLI can verify; stop it yourself \
                 (`systemctl --user restart composer-keyd.service`, or kill it)",
                self.path.display()
            )));
        };
        // SAFETY: kill has no memory effects. The pid is the peer of a connection that passed
        // the trust rule, and /proc shows it is a composer-keyd process of ours.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(ClientError::Autostart(format!(
                "could not stop the stale daemon (pid {pid}): {}",
                std::io::Error::last_os_error()
            )));
        }
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            // A short probe: a socket-activated replacement may be starting up.
            let probe = self.call_with_peer::<Status>(Method::GET, "/v1/status", None);
            match tokio::time::timeout(Duration::from_millis(500), probe).await {
                Ok(Err(ClientError::NotRunning { .. })) => return Ok(()),
                Ok(Err(e @ ClientError::UntrustedSocket(_))) => return Err(e),
                Ok(Ok((_, peer))) if peer.and_then(|p| p.pid) != Some(pid) => return Ok(()),
                _ => {}
            }
        }
        Err(ClientError::Autostart(format!(
            "the stale daemon (pid {pid}) did not stop within 5 s"
        )))
    }

    async fn start(&self) -> Result<(), ClientError> {
        let exe = std::env::current_exe().map_err(|e| ClientError::Autostart(e.to_string()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("serve")
            .env(crate::paths::ENV_SOCK, &self.path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd
            .spawn()
            .map_err(|e| ClientError::Autostart(e.to_string()))?;
        // Bounded wait: 100 polls of 50 ms.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ClientError::Autostart(format!(
                    "`composer-keyd serve` exited with {status}; run it in a terminal to see why"
                )));
            }
            match self.call::<Status>(Method::GET, "/v1/status", None).await {
                Ok(_) => return Ok(()),
                Err(ClientError::NotRunning { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Autostart(format!(
            "the daemon did not answer on {} within 5 s",
            self.path.display()
        )))
    }
}
