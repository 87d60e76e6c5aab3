//! The daemon's server: listener intake, the per-connection peer check and limits, and the accept loop.

pub mod agent;
pub mod body;
pub mod daemon;
pub mod idle;
pub mod intake;
pub mod notify;
pub mod routes;
pub mod timers;

use agent::Agent;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

/// Every bound on what a client may make the daemon do, set in one place.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body; larger ones are refused with 413 before they are read.
    pub max_body: usize,
    /// Largest request head (hyper's read buffer); larger heads get 431.
    pub max_head: usize,
    /// Time a client has to send a complete request head, against slowloris.
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time to let open connections finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 64 * 1024,
            max_head: 16 * 1024,
            header_timeout: Duration::from_secs(5),
            max_connections: 8192,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Who is on the other end of a connection, from SO_PEERCRED.
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub uid: u32,
    pub pid: Option<i32>,
}

/// Serves `listener` until `shutdown` completes, then drains open connections.
/// Connections from another uid are closed before a byte is read.
pub async fn run(
    listener: UnixListener,
    agent: Arc<Agent>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    run_with(listener, agent, limits, Arc::default(), shutdown).await;
}

/// [`run`], recording open connections in `activity` (for `--idle-exit`).
pub async fn run_with(
    listener: UnixListener,
    agent: Arc<Agent>,
    limits: Limits,
    activity: Arc<idle::Activity>,
    shutdown: impl Future<Output = ()>,
) {
    let me = crate::paths::euid();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let busy = activity.begin();
        let peer = match stream.peer_cred() {
            Ok(c) if c.uid() == me => Peer {
                uid: c.uid(),
                pid: c.pid(),
            },
            Ok(c) => {
                tracing::warn!(
                    uid = c.uid(),
                    pid = c.pid(),
                    "refused a connection from another user"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!("refused a connection whose peer is unknown: {e}");
                continue;
            }
        };
        let agent = Arc::clone(&agent);
        let lim = Arc::clone(&limits);
        let service = service_fn(move |req| {
            let agent = Arc::clone(&agent);
            let lim = Arc::clone(&lim);
            async move {
                Ok::<_, std::convert::Infallible>(routes::handle(&agent, &lim, peer, req).await)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_head)
            .writev(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
            drop(busy);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(limits.drain_timeout) => tracing::warn!("gave up waiting for open connections"),
    }
}
