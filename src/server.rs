//! The daemon's server: one connection path (accept, the door's peer check, slots, deadlines, drain, audit) for every door, listener intake, and the limits.

pub mod body;
pub mod daemon;
pub mod door;
pub mod forward;
pub mod grant;
pub mod idle;
pub mod intake;
pub mod limits;
pub mod listeners;
pub mod notify;
pub mod project;
pub mod routes;
pub mod slots;
pub mod stall;

use crate::agent::Agent;
pub use crate::peer::Peer;
use body::WipeBody;
use door::Door;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
pub use limits::Limits;
use slots::{Slot, Slots};
use stall::StallGuard;
use std::convert::Infallible;
use std::future::Future;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::task::JoinSet;

/// What every door of one daemon shares: the agent, the limits, and the activity record
/// `--idle-exit` watches.
#[derive(Clone)]
pub struct Shared {
    /// The domain core every door asks.
    pub agent: Arc<Agent>,
    /// Every bound, the same on every door.
    pub limits: Arc<Limits>,
    /// Open connections, for `--idle-exit`.
    pub activity: Arc<idle::Activity>,
}

impl Shared {
    /// `agent` under `limits`, with its own activity record.
    pub fn new(agent: Arc<Agent>, limits: Limits) -> Shared {
        Shared {
            agent,
            limits: Arc::new(limits),
            activity: Arc::default(),
        }
    }
}

/// Serves `listener` as the main door until `shutdown` completes, then drains open
/// connections. Connections from another uid are closed before a byte is read.
pub async fn run(
    listener: UnixListener,
    agent: Arc<Agent>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let door: Arc<dyn Door> = Arc::new(door::Main::default());
    serve(listener, door, Shared::new(agent, limits), shutdown).await;
}

/// Serves `listener` through `door` until `shutdown` completes: the one connection path of
/// every door. The door admits or refuses each peer before a byte is read (a refusal is
/// audited, rate-limited); an admitted one takes a place among the door's slots (at the cap
/// the longest-idle connection gives way) and is served by [`serve_connection`]. At
/// shutdown no new connection is taken, idle ones close, and those inside a request have
/// `drain_timeout` to finish; dropping the loop (a grant revoked) ends them at once.
pub async fn serve(
    listener: UnixListener,
    door: Arc<dyn Door>,
    shared: Shared,
    shutdown: impl Future<Output = ()>,
) {
    let Shared {
        agent,
        limits,
        activity,
    } = shared;
    let slots = Slots::new(door.capacity(&limits));
    let label = door.label();
    // The connections are this task's: aborting it (a revoked grant) aborts them.
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
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
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let busy = activity.begin();
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("refused a connection whose peer is unknown: {e}");
                continue;
            }
        };
        let peer = Peer::connected(cred.uid(), cred.pid()).through(label.clone());
        if let Err(reason) = door.admit(cred.uid(), cred.pid(), stream.as_fd()) {
            let who = match cred.uid() == crate::paths::euid() {
                true => "",
                false => " from another user",
            };
            let rec = crate::audit::Record {
                reason: Some(reason),
                ..crate::audit::Record::new(crate::audit::Event::RejectPeer)
            };
            let rec = peer.audit(rec);
            // Said in the daemon's log as often as it is written in the audit log.
            let reason = rec.reason.clone().unwrap_or_default();
            if agent.audit().refusal(rec) {
                tracing::warn!(uid = cred.uid(), pid = cred.pid(), door = ?label, "refused a connection{who} ({reason})");
            }
            continue;
        }
        if agent.names_executables() {
            // A policy compares the executable at accept with the one at release;
            // without such a policy it is read at the first release, for its record.
            peer.exe();
        }
        // Admitted before a place is taken, so a refused peer never evicts anyone.
        let slot = tokio::select! {
            s = slots.acquire() => s,
            () = &mut shutdown => break,
        };
        let conn = serve_connection(
            stream,
            Arc::clone(&door),
            Arc::clone(&agent),
            Arc::clone(&limits),
            peer,
            slot,
        );
        conns.spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(busy);
        });
    }
    drop(listener);
    slots.close_all();
    let drained = async { while conns.join_next().await.is_some() {} };
    tokio::select! {
        () = drained => tracing::debug!(door = ?label, "all connections drained"),
        () = tokio::time::sleep(limits.drain_timeout) => tracing::warn!(door = ?label, "gave up waiting for open connections"),
    }
}

/// Serves one accepted connection with the daemon's limits until the peer is done, a limit
/// ends it, or its `slot` is asked to close: at the cap, or at shutdown.
///
/// The header deadline is the daemon's own rather than hyper's `header_read_timeout`,
/// which arms a timer for every request: one timer per connection waits for
/// `header_timeout` after the connection last became idle ([`Slot::idle_since`]: accepted,
/// or its last reply handed to hyper). When it fires on an idle connection, the connection
/// is dropped, whether it is sending a head slowly or sending nothing; a connection inside
/// a request is never cut by it (the body deadline and the backend's time-out bound that).
pub async fn serve_connection<S>(
    stream: S,
    door: Arc<dyn Door>,
    agent: Arc<Agent>,
    limits: Arc<Limits>,
    peer: Peer,
    slot: Slot,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // However the connection ends (closed, timed out, dropped at exit), its counts are written.
    let _counts = CountsOnClose {
        agent: Arc::clone(&agent),
        conn: peer.conn,
    };
    let peer = Arc::new(peer);
    let lim = Arc::clone(&limits);
    let slot = Arc::new(slot);
    let in_service = Arc::clone(&slot);
    let service = service_fn(move |req| {
        let busy = in_service.busy();
        if door.everyday() {
            if let Some(resp) = routes::answer_now(&agent, door.projects(), &peer, &req) {
                drop(busy);
                return Answer::Now(std::future::ready(Ok(resp)));
            }
        }
        let agent = Arc::clone(&agent);
        let lim = Arc::clone(&lim);
        let peer = Arc::clone(&peer);
        let door = Arc::clone(&door);
        Answer::Routed(Box::pin(async move {
            let resp = routes::handle(&agent, &*door, &lim, &peer, req).await;
            drop(busy);
            resp
        }))
    });
    let io = TokioIo::new(StallGuard::new(stream, limits.write_timeout));
    let conn = http1::Builder::new()
        // hyper panics below its 8 KiB minimum.
        .max_buf_size(limits.max_head.max(8192))
        .writev(true)
        // Otherwise hyper reads the socket while a request is in service, to notice a peer
        // that hung up: the read buffer is then still shared with the request's headers,
        // so every request cost a fresh 8 KiB buffer, wiped on free. A peer that hangs up
        // mid-request now gets its answer written to a closed socket instead; a confirm
        // prompt runs to its answer or time-out, as ssh-agent's does.
        .half_close(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let header = limits.header_timeout;
    let deadline = tokio::time::sleep(header);
    tokio::pin!(deadline);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => return r,
            // An idle connection closes at once; one inside a request answers it first.
            () = slot.closing(), if !asked_to_close => {
                asked_to_close = true;
                conn.as_mut().graceful_shutdown();
            }
            () = deadline.as_mut() => match slot.idle_since() {
                Some(since) if since + header <= tokio::time::Instant::now() => {
                    tracing::debug!("no request head within the header time-out: closing");
                    return Ok(());
                }
                Some(since) => deadline.as_mut().reset(since + header),
                // Inside a request: look again once a whole period has passed.
                None => deadline.as_mut().reset(tokio::time::Instant::now() + header),
            },
        }
    }
}

/// A request's answer as hyper awaits it. The everyday lookup is answered before hyper
/// first polls it, so it moves no routing future around; every other request is routed in
/// a boxed future, the one allocation it adds to work that reads stores and bodies.
enum Answer {
    Now(std::future::Ready<Result<Response<WipeBody>, Infallible>>),
    Routed(Pin<Box<dyn Future<Output = Response<WipeBody>> + Send>>),
}

impl Future for Answer {
    type Output = Result<Response<WipeBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Now(ready) => Pin::new(ready).poll(cx),
            Answer::Routed(fut) => fut.as_mut().poll(cx).map(Ok),
        }
    }
}

/// Writes a connection's counts of repeated releases to the audit log when dropped.
struct CountsOnClose {
    agent: Arc<Agent>,
    conn: u64,
}

impl Drop for CountsOnClose {
    fn drop(&mut self) {
        self.agent.audit().close(self.conn);
    }
}

#[cfg(test)]
mod tests;
