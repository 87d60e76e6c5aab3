//! Grant sockets: one listener per grant in the registry, admitting only the granted uid, serving only reads of the granted project's credentials, each release and refusal audited under the grant's name.
//!
//! A grant never touches the main socket's rule (same uid only); it is a second door with
//! its own, narrower rule. The project a request names is ignored: the granted project is
//! the one looked up (a container sees the project under another path anyway).

use super::body::WipeBody;
use super::routes::error_response;
use super::Limits;
use crate::agent::Agent;
use crate::audit::{printable, Event, Record};
use crate::credential::Origin;
use crate::error::Error;
use crate::grant::{Grant, Registry};
use crate::peer::Peer;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::task::{AbortHandle, JoinSet};

/// Connections served at once through one grant.
const MAX_CONNECTIONS: usize = 64;

/// The running grant listeners, following the registry.
pub struct Manager {
    agent: Arc<Agent>,
    limits: Arc<Limits>,
    main_socket: PathBuf,
    registry: PathBuf,
    running: Mutex<HashMap<String, (Grant, AbortHandle)>>,
}

static MANAGER: OnceLock<Arc<Manager>> = OnceLock::new();

/// Starts the grants of the registry; later changes arrive through [`reload`].
pub fn start(agent: Arc<Agent>, limits: Limits, main_socket: PathBuf) -> Option<Arc<Manager>> {
    let registry = match crate::grant::registry_path() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("grants are off: {e}");
            return None;
        }
    };
    let m = Arc::new(Manager {
        agent,
        limits: Arc::new(limits),
        main_socket,
        registry,
        running: Mutex::default(),
    });
    if let Err(e) = m.reload() {
        tracing::warn!("grants: {e}");
    }
    let _ = MANAGER.set(Arc::clone(&m));
    Some(m)
}

/// `POST /v1/grants/reload` on the main socket: follow the registry now.
pub fn reload() -> Result<usize, Error> {
    MANAGER
        .get()
        .ok_or_else(|| Error::Internal("grants are not served by this daemon".into()))?
        .reload()
}

impl Manager {
    /// Stops revoked or changed grants (their connections too) and starts new ones.
    pub fn reload(&self) -> Result<usize, Error> {
        let reg = Registry::load(&self.registry).map_err(|e| Error::Internal(e.to_string()))?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|name, (g, handle)| {
            let keep = reg.grants.contains(g);
            if !keep {
                handle.abort();
                let _ = std::fs::remove_file(crate::grant::socket_path(&self.main_socket, name));
                tracing::info!(grant = %name, "grant stopped");
            }
            keep
        });
        for g in reg.grants {
            if running.contains_key(&g.name) {
                continue;
            }
            let listener = self.bind(&g)?;
            let task = tokio::spawn(serve(
                listener,
                Arc::new(g.clone()),
                Arc::clone(&self.agent),
                Arc::clone(&self.limits),
            ));
            tracing::info!(grant = %g.name, uid = g.uid, project = %g.project.display(), "grant serving");
            running.insert(g.name.clone(), (g, task.abort_handle()));
        }
        Ok(running.len())
    }

    /// The grant's socket, reachable by anyone who can reach the file: the 0700 directory
    /// keeps host processes out, a bind mount lets the container in, and the peer check
    /// admits only the granted uid.
    fn bind(&self, g: &Grant) -> Result<tokio::net::UnixListener, Error> {
        let path = crate::grant::socket_path(&self.main_socket, &g.name);
        let fail =
            |e: std::io::Error| Error::Internal(format!("grant socket {}: {e}", path.display()));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
            _ => {}
        }
        let std_listener = std::os::unix::net::UnixListener::bind(&path).map_err(fail)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(fail)?;
        std_listener.set_nonblocking(true).map_err(fail)?;
        tokio::net::UnixListener::from_std(std_listener).map_err(fail)
    }

    /// Stops every grant and removes its socket (at daemon exit).
    pub fn stop_all(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (name, (_, handle)) in running.drain() {
            handle.abort();
            let _ = std::fs::remove_file(crate::grant::socket_path(&self.main_socket, &name));
        }
    }
}

fn audit(agent: &Agent, peer: &Peer, g: &Grant, mut rec: Record) {
    rec.time = crate::audit::now();
    let what = rec.detail.take();
    rec.detail = Some(match what {
        Some(w) => format!("grant {}: {w}", g.name),
        None => format!("grant {}", g.name),
    });
    agent.audit().record(&peer.audit(rec));
}

async fn serve(
    listener: tokio::net::UnixListener,
    g: Arc<Grant>,
    agent: Arc<Agent>,
    limits: Arc<Limits>,
) {
    // Dropping the set (when the grant is revoked) ends its open connections too.
    let mut conns = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(grant = %g.name, "accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        let Ok(c) = stream.peer_cred() else { continue };
        let peer = Peer::connected(c.uid(), c.pid());
        if c.uid() != g.uid {
            let rec = Record {
                reason: Some(format!(
                    "the peer is uid {}, the grant is for uid {}",
                    c.uid(),
                    g.uid
                )),
                ..Record::new(Event::RejectPeer)
            };
            audit(&agent, &peer, &g, rec);
            continue;
        }
        if conns.len() >= MAX_CONNECTIONS {
            continue;
        }
        let (g, agent, limits) = (Arc::clone(&g), Arc::clone(&agent), Arc::clone(&limits));
        let peer = Arc::new(peer);
        let io = TokioIo::new(super::stall::StallGuard::new(stream, limits.write_timeout));
        let service = service_fn(move |req| {
            let (g, agent, peer) = (Arc::clone(&g), Arc::clone(&agent), Arc::clone(&peer));
            async move { Ok::<_, std::convert::Infallible>(handle(&agent, &g, &peer, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_head.max(8192))
            .serve_connection(io, service);
        conns.spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn handle<B>(agent: &Agent, g: &Grant, peer: &Peer, req: Request<B>) -> Response<WipeBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut rec = Record::default();
    match route(agent, g, peer, &method, &path, &mut rec).await {
        Ok(resp) => {
            if rec.event.is_some() {
                audit(agent, peer, g, rec);
            }
            resp
        }
        Err(e) => {
            let refused = Record {
                kind: Some(e.kind()),
                detail: Some(printable(&format!("{method} {path}"))),
                reason: Some(printable(&e.to_string())),
                origin: rec.origin.take(),
                project: Some(g.project.display().to_string()),
                ..Record::new(Event::Refuse)
            };
            audit(agent, peer, g, refused);
            error_response(&e)
        }
    }
}

async fn route(
    agent: &Agent,
    g: &Grant,
    peer: &Peer,
    method: &Method,
    path: &str,
    rec: &mut Record,
) -> Result<Response<WipeBody>, Error> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    if method != Method::GET {
        return Err(Error::Forbidden(format!(
            "grant {} serves only reads of its project's credentials",
            g.name
        )));
    }
    let project = Some(g.project.as_path());
    match segments.as_slice() {
        ["v1", "status"] => Ok(json(&agent.status())),
        ["v1", "origins"] => {
            let mut origins = agent.origins(project);
            origins.retain(|o| g.covers(o.project.as_deref()));
            Ok(json(&crate::protocol::OriginList { origins }))
        }
        ["v1", "credentials", o] => {
            let origin = super::routes::parse_origin(o)?;
            rec.origin = Some(origin.to_string());
            rec.project = Some(g.project.display().to_string());
            let not_granted = || {
                Error::NotFound(format!(
                    "{origin} (nothing scoped to {} is granted)",
                    g.project.display()
                ))
            };
            // Checked before the release: what would win must be inside the grant.
            let scope = winning_scope(agent, &origin, g).ok_or_else(not_granted)?;
            if !g.covers(scope.as_deref()) {
                return Err(not_granted());
            }
            let released = agent.release(&origin, project, peer).await?;
            if !g.covers(released.reply.project.as_deref()) {
                return Err(not_granted());
            }
            rec.event = Some(Event::Release);
            rec.scope = released.reply.project.clone();
            let len = released.json.len();
            Ok(body(StatusCode::OK, WipeBody::shared(released), len))
        }
        _ => Err(Error::Forbidden(format!(
            "grant {} serves only reads of its project's credentials",
            g.name
        ))),
    }
}

/// The scope of the credential that wins for `origin` from the granted project: the most
/// specific of those that apply.
fn winning_scope(agent: &Agent, origin: &Origin, g: &Grant) -> Option<Option<String>> {
    agent
        .origins(Some(&g.project))
        .into_iter()
        .filter(|o| &o.origin == origin)
        .max_by_key(|o| o.project.as_ref().map_or(0, |p| p.len() + 1))
        .map(|o| o.project)
}

fn json<T: serde::Serialize>(value: &T) -> Response<WipeBody> {
    let bytes = crate::secret::to_json_zeroizing(value);
    let len = bytes.len();
    body(StatusCode::OK, WipeBody::new(bytes), len)
}

fn body(status: StatusCode, b: WipeBody, len: usize) -> Response<WipeBody> {
    let mut resp = Response::new(b);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
