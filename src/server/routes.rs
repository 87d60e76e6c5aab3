//! Request routing: maps `/v1` paths to agent calls, decodes bodies within limits, and encodes replies and typed errors.

use super::body::WipeBody;
use super::door::Door;
use super::limits::Limits;
use super::project;
use crate::agent::{Agent, Released, Through};
use crate::audit::{printable, printable_max, Event, Record};
use crate::credential::{CredentialType, Origin};
use crate::error::Error;
use crate::peer::Peer;
use crate::protocol::{
    Ack, ErrorBody, ErrorDetail, MigrateRequest, PasswdRequest, PutCredential, PutReply,
    UnlockReply, UnlockRequest,
};
use crate::secret::to_json_zeroizing;
use crate::team::sources::Freshness;
use bytes::Buf;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

use super::project::MAX_PROJECT_LEN;

/// Serves one request. Never panics on input; every failure is a typed JSON error.
pub async fn handle(
    agent: &Agent,
    door: &dyn Door,
    limits: &Limits,
    peer: &Peer,
    req: Request<Incoming>,
) -> Response<WipeBody> {
    let (head, body) = req.into_parts();
    let mut note = Record::default();
    match route(agent, door, limits, peer, &head, body, &mut note).await {
        Ok(resp) => {
            // Releases are recorded by `route` itself; this is every other change.
            if note.event.is_some() {
                about(&head, door, &mut note);
                note.time = crate::audit::now();
                agent.audit().record(&peer.audit(note));
            }
            resp
        }
        Err(e) => {
            let kind = e.kind();
            let request = printable(&format!("{} {}", head.method, head.uri.path()));
            about(&head, door, &mut note);
            let rec = Record {
                kind: Some(kind),
                detail: Some(request.clone()),
                reason: Some(printable_max(&e.to_string(), 1000)),
                origin: note.origin.take(),
                project: note.project.take(),
                ..Record::new(Event::Refuse)
            };
            // Said in the daemon's log as often as it is written in the audit log.
            if agent.audit().refusal(peer.audit(rec)) {
                tracing::info!(%request, pid = ?peer.pid, kind = ?kind, "refused: {}", printable(&e.to_string()));
            }
            let mut resp = error_response(&e);
            if matches!(e, Error::TimedOut(_)) {
                // The rest of the body may still come; the connection cannot be reused.
                resp.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// Fills in the origin and project a credential request named, for its audit record. Done
/// only when a record is written, so a repeated release parses nothing twice; a bad origin
/// is left out (the refusal says what was wrong with it).
fn about(head: &Parts, door: &dyn Door, note: &mut Record) {
    let (segs, n) = segments(head.uri.path());
    if let ["v1", "credentials", o, ..] = &segs[..n] {
        note.origin = Origin::from_segment(o).ok().map(|o| o.to_string());
        note.project = match door.project() {
            Some(p) => Some(p.display().to_string()),
            None => Query::parse(head.uri.query()).ok().and_then(|q| q.project),
        };
    }
}

/// Path segments told apart; the last one keeps the rest of a longer path, which no route
/// matches.
const MAX_SEGMENTS: usize = 6;

/// The segments of `path` after its leading `/` and without trailing ones, in place.
fn segments(path: &str) -> ([&str; MAX_SEGMENTS], usize) {
    let mut out = [""; MAX_SEGMENTS];
    let mut n = 0;
    let trimmed = path.trim_end_matches('/');
    // A byte loop: on paths this short, `split` costs more in set-up than in splitting.
    let Some(mut rest) = trimmed.strip_prefix('/') else {
        return (out, 0);
    };
    loop {
        if n + 1 == MAX_SEGMENTS {
            out[n] = rest;
            return (out, n + 1);
        }
        match rest.bytes().position(|b| b == b'/') {
            Some(i) => {
                out[n] = &rest[..i];
                rest = &rest[i + 1..];
                n += 1;
            }
            None => {
                out[n] = rest;
                return (out, n + 1);
            }
        }
    }
}

/// Fills in what an audit record says about a credential route.
fn noted(note: &mut Record, event: Event, scope: Option<&str>) {
    note.event = Some(event);
    note.scope = scope.map(str::to_owned);
}

/// Encodes an error as `{"error": {"kind", "message"}}` with its status.
pub fn error_response(e: &Error) -> Response<WipeBody> {
    let kind = e.kind();
    let body = ErrorBody {
        error: ErrorDetail {
            kind,
            message: e.to_string(),
        },
    };
    json(
        StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    )
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<WipeBody> {
    body_response(status, WipeBody::new(to_json_zeroizing(value)))
}

/// hyper writes the content-length itself, from the body's exact size.
fn body_response(status: StatusCode, body: WipeBody) -> Response<WipeBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn ok<T: Serialize>(value: &T) -> Result<Response<WipeBody>, Error> {
    Ok(json(StatusCode::OK, value))
}

/// The requests answered without a future, before hyper first polls the service: the
/// everyday lookup (`cached_lookup`) and the plugin's `GET /v1/origins?project=DIR`
/// (`cached_origins`). `None` for every other request: [`handle`] serves those.
pub fn answer_now(
    agent: &Agent,
    projects: Option<&project::Memo>,
    peer: &Peer,
    req: &Request<Incoming>,
) -> Option<Response<WipeBody>> {
    if req.method() != Method::GET {
        return None;
    }
    let path = req.uri().path();
    match path.strip_prefix("/v1/credentials/") {
        Some(origin) => cached_lookup(agent, projects, peer, origin, req.uri().query()),
        None if path == "/v1/origins" => cached_origins(agent, projects, req.uri().query()),
        None => None,
    }
}

/// The everyday lookup: `GET /v1/credentials/{origin}`, with no query or only the
/// plugin's `?project=DIR`, for a host name as Composer spells it ([`Origin::canonical`])
/// whose secret is cached and has no policy, with no team source set up when a project is
/// named. The project is resolved only when one of the origin's credentials is scoped
/// (else it cannot change the winner), and then only inline ([`project::resolve_cached`]:
/// walked, or known from the door's memo while nothing on its way changed). `None` sends the request to [`handle`], which gives it the
/// same answer and the same audit record.
fn cached_lookup(
    agent: &Agent,
    projects: Option<&project::Memo>,
    peer: &Peer,
    origin: &str,
    query: Option<&str>,
) -> Option<Response<WipeBody>> {
    let origin = Origin::canonical(origin)?;
    let Some(query) = query else {
        let hit = agent.cached_open(origin, None)?;
        return Some(released(agent, peer, origin, hit, None));
    };
    // With team sources, a team entry for the project outranks a local unscoped one, and
    // only the full path asks the teams.
    if agent.has_teams() {
        return None;
    }
    let named = plain_project(query)?;
    let hit = match agent.scoped(origin) {
        false => agent.cached_open(origin, None)?,
        true => {
            let resolved = project::resolve_cached(&named, projects)?;
            agent.cached_open(origin, Some(&resolved))?
        }
    };
    Some(released(agent, peer, origin, hit, Some(named.as_str())))
}

/// `GET /v1/origins`, with no query or only `?project=DIR`, when no team source is set up
/// (the teams' origins are asked for on the routed path) and the project resolves inline:
/// the list the routed path gives, on the main door (which lists every origin). A list
/// with an origin that expires carries the warning horizon from config.toml as the routed
/// path reads it, through [`crate::config::expiry_warning_days_cached`]; when that cannot
/// tell without I/O, the routed path answers.
fn cached_origins(
    agent: &Agent,
    projects: Option<&project::Memo>,
    query: Option<&str>,
) -> Option<Response<WipeBody>> {
    if agent.has_teams() {
        return None;
    }
    let named = match query {
        None => None,
        Some(q) => Some(plain_project(q)?),
    };
    let project = match &named {
        None => None,
        Some(n) => Some(project::resolve_cached(n, projects)?),
    };
    let origins = agent.origins(project.as_deref());
    let expiry_warning_days = match origins.iter().any(|o| o.expires.is_some()) {
        false => None,
        true => Some(crate::config::expiry_warning_days_cached()?),
    };
    Some(json(
        StatusCode::OK,
        &crate::protocol::OriginList {
            origins,
            expiry_warning_days,
            // Answered here only when no team source is set up.
            teams: false,
        },
    ))
}

/// The project of a query that is exactly `project=DIR`, decoded as [`Query::parse`] would
/// and within its rules; `None` sends the request down the routed path, which also says
/// what is wrong with a bad one.
fn plain_project(query: &str) -> Option<project::Named> {
    let raw = query.strip_prefix("project=")?;
    // '+' means a space to form decoding, and '&' another parameter: the routed path's.
    if raw.is_empty() || raw.bytes().any(|b| b == b'&' || b == b'+') {
        return None;
    }
    project::Named::decode(raw)
}

/// The reply to a lookup that released `hit` for `origin`; the connection's first release
/// of it is written to the audit log before the reply goes out.
fn released(
    agent: &Agent,
    peer: &Peer,
    origin: &str,
    hit: Arc<Released>,
    project: Option<&str>,
) -> Response<WipeBody> {
    let scope = hit.reply.project.as_deref();
    tracing::debug!(origin, scope = ?scope, pid = ?peer.pid, uid = peer.uid, "released");
    agent.audit().record_release(peer.conn, origin, scope, || {
        peer.audit(Record {
            origin: Some(origin.to_owned()),
            scope: scope.map(str::to_owned),
            project: project.map(str::to_owned),
            // A team's entry names its source and KV version.
            detail: hit.source.clone(),
            ..Record::new(Event::Release)
        })
    });
    body_response(StatusCode::OK, WipeBody::shared(hit))
}

async fn route(
    agent: &Agent,
    door: &dyn Door,
    limits: &Limits,
    peer: &Peer,
    head: &Parts,
    body: Incoming,
    note: &mut Record,
) -> Result<Response<WipeBody>, Error> {
    let path = head.uri.path();
    let query = Query::parse(head.uri.query())?;
    let (segs, n) = segments(path);
    let method = &head.method;
    let unknown = || Error::UnknownRoute(printable(&format!("{method} {path}")));
    door.permits(method, &segs[..n])?;
    match (method, &segs[..n]) {
        (&Method::GET, ["v1", "status"]) => ok(&door.status(agent)),
        (&Method::GET, ["v1", "origins"]) => {
            let project = lookup_project(door, &query).await;
            let mut origins = agent.origins(project.as_deref());
            let team = agent.team_origins(project.as_deref(), &origins).await;
            origins.extend(team);
            // Only what the door would hand out: its scopes, and origins it would look up.
            origins.retain(|o| {
                door.within(o.project.as_deref()).is_ok()
                    && door
                        .permits(method, &["v1", "credentials", o.origin.as_str()])
                        .is_ok()
            });
            // Read per list (once per Composer run), so an edit of config.toml holds at once;
            // only for a list it means something to (clients warn about origins that expire).
            let expiry_warning_days = origins
                .iter()
                .any(|o| o.expires.is_some())
                .then(crate::config::expiry_warning_days);
            ok(&crate::protocol::OriginList {
                origins,
                expiry_warning_days,
                teams: agent.has_teams(),
            })
        }
        (&Method::GET, ["v1", "credentials"]) => ok(&crate::protocol::CredentialList {
            credentials: agent.list(),
        }),
        (&Method::GET, ["v1", "credentials", o]) => {
            let origin = Origin::from_segment(o)?;
            let project = lookup_project(door, &query).await;
            let within = |scope: Option<&str>| door.within(scope);
            let through = Through {
                within: &within,
                confirms: door.confirms(),
            };
            let hit = if query.fresh != Freshness::Cached && agent.has_teams() {
                agent
                    .release_with_teams(&origin, project.as_deref(), peer, through, query.fresh)
                    .await?
            } else {
                agent
                    .release(&origin, project.as_deref(), peer, through)
                    .await?
            };
            let shown = match door.project() {
                Some(p) => Some(p.display().to_string()),
                None => query.project,
            };
            Ok(released(
                agent,
                peer,
                origin.as_str(),
                hit,
                shown.as_deref(),
            ))
        }
        (&Method::PUT, ["v1", "credentials", o]) => {
            let origin = Origin::from_segment(o)?;
            let project = query.scope_project().await;
            let body = read_body(body, &head.headers, limits).await?;
            let put: PutCredential = decode_put(&body)?;
            let put = agent.put(&origin, project, put, peer).await?;
            tracing::info!(origin = %origin, scope = ?put.info.project, outcome = ?put.outcome, "stored");
            if let Some(change) = &put.policy {
                agent.audit().record(&peer.audit(Record {
                    origin: Some(put.info.origin.to_string()),
                    scope: put.info.project.clone(),
                    detail: Some(change.clone()),
                    ..Record::new(Event::Policy)
                }));
            }
            noted(note, Event::Store, put.info.project.as_deref());
            ok(&PutReply::from(put))
        }
        (&Method::DELETE, ["v1", "credentials", o]) => {
            let origin = Origin::from_segment(o)?;
            let project = query.scope_project().await;
            let info = agent.delete(&origin, project.as_deref()).await?;
            noted(note, Event::Remove, info.project.as_deref());
            ok(&info)
        }
        (&Method::POST, ["v1", "credentials", o, action]) => {
            let origin = Origin::from_segment(o)?;
            let project = query.scope_project().await;
            let p = project.as_deref();
            let (event, info) = match *action {
                "disable" => (Event::Disable, agent.set_enabled(&origin, p, false).await?),
                "enable" => (Event::Enable, agent.set_enabled(&origin, p, true).await?),
                "rollback" => (Event::Rollback, agent.rollback(&origin, p, peer).await?),
                _ => return Err(unknown()),
            };
            noted(note, event, info.project.as_deref());
            ok(&info)
        }
        (&Method::POST, ["v1", "forwards", "reload"]) => {
            let forwards = door.forwards().ok_or_else(|| {
                Error::Internal("forward doors are not served by this daemon".into())
            })?;
            let n = forwards.reload()?;
            tracing::info!(forwards = n, "forward doors reloaded");
            ok(&Ack { ok: true })
        }
        (&Method::POST, ["v1", "grants", "reload"]) => {
            let grants = door
                .grants()
                .ok_or_else(|| Error::Internal("grants are not served by this daemon".into()))?;
            let n = grants.reload()?;
            tracing::info!(grants = n, "grants reloaded");
            ok(&Ack { ok: true })
        }
        (&Method::POST, ["v1", "lock"]) => {
            agent.lock();
            tracing::info!(pid = ?peer.pid, "locked");
            noted(note, Event::Lock, None);
            ok(&Ack { ok: true })
        }
        (&Method::POST, ["v1", "unlock"]) => {
            let body = read_body(body, &head.headers, limits).await?;
            let unlock: UnlockRequest = if body.is_empty() {
                UnlockRequest::default()
            } else {
                decode(&body)?
            };
            agent.unlock(unlock.passphrase).await?;
            tracing::info!(pid = ?peer.pid, "unlocked");
            noted(note, Event::Unlock, None);
            let warning = agent.status().warning;
            note.reason = warning.as_deref().map(crate::audit::printable);
            ok(&UnlockReply { ok: true, warning })
        }
        (&Method::POST, ["v1", "passwd"]) => {
            let req: PasswdRequest = decode(&read_body(body, &head.headers, limits).await?)?;
            agent
                .passwd(req.passphrase, req.new_passphrase, peer)
                .await?;
            tracing::info!(pid = ?peer.pid, "vault passphrase changed");
            noted(note, Event::Passwd, None);
            ok(&Ack { ok: true })
        }
        (&Method::POST, ["v1", "migrate"]) => {
            let req: MigrateRequest = decode(&read_body(body, &head.headers, limits).await?)?;
            let reply = agent.migrate(req.to, req.passphrase, peer).await?;
            tracing::info!(pid = ?peer.pid, from = %reply.from, to = %reply.to, copied = reply.copied, removed = reply.removed, "migrated");
            noted(note, Event::Migrate, None);
            note.detail = Some(format!(
                "{} -> {}: {} copied, {} removed, {} kept, {} missing",
                reply.from, reply.to, reply.copied, reply.removed, reply.kept, reply.missing
            ));
            ok(&reply)
        }
        _ => Err(unknown()),
    }
}

/// The project a lookup is made from: the door's own, else the one the request names.
async fn lookup_project(door: &dyn Door, query: &Query) -> Option<PathBuf> {
    match door.project() {
        Some(p) => Some(p.to_path_buf()),
        None => query.lookup_project().await,
    }
}

/// Reads the whole body into a zeroizing buffer within `limits.body_timeout`, refusing
/// early what is over the size limit. hyper bounds only the head's read time; without this
/// deadline a head and one byte of body would hold a connection for ever.
async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    tokio::time::timeout(
        limits.body_timeout,
        read_body_unbounded(body, headers, limits),
    )
    .await
    .map_err(|_| {
        Error::TimedOut(format!(
            "the request body did not arrive within {} ms",
            limits.body_timeout.as_millis()
        ))
    })?
}

async fn read_body_unbounded(
    mut body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let too_large = || {
        Error::TooLarge(format!(
            "the request body is over {} bytes",
            limits.max_body
        ))
    };
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let len: usize = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::BadRequest("bad Content-Length".into()))?;
        if len > limits.max_body {
            return Err(too_large());
        }
    }
    let mut out = Zeroizing::new(Vec::new());
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| Error::BadRequest(format!("reading the body failed: {e}")))?;
        if let Ok(mut data) = frame.into_data() {
            if out.len() + data.remaining() > limits.max_body {
                return Err(too_large());
            }
            out.extend_from_slice(data.chunk());
            // Wipe hyper's copy too when we hold the only reference to it.
            if let Ok(mut owned) = std::mem::take(&mut data).try_into_mut() {
                owned.zeroize();
            }
        }
    }
    Ok(out)
}

#[derive(Deserialize)]
struct TypeProbe {
    credential: Option<TypeField>,
}

#[derive(Deserialize)]
struct TypeField {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Decodes a `PUT` body, naming an unknown credential type as such.
fn decode_put(body: &[u8]) -> Result<PutCredential, Error> {
    let probe: TypeProbe = decode(body)?;
    match probe.credential.and_then(|c| c.kind) {
        None => {
            return Err(Error::BadRequest(
                "the body needs a credential with a type".into(),
            ))
        }
        Some(t) if CredentialType::parse(&t).is_none() => {
            let shown: String = t.chars().take(40).filter(|c| !c.is_control()).collect();
            return Err(crate::credential::CredentialError::UnknownType(shown).into());
        }
        Some(_) => {}
    }
    decode(body)
}

/// Decodes JSON without ever quoting the input back: serde's messages for a bad value
/// can hold the value, which may be a secret.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let safe = [
            "missing field",
            "unknown field",
            "unknown variant",
            "duplicate field",
        ];
        let what: Cow<str> = match e.classify() {
            serde_json::error::Category::Data if safe.iter().any(|s| msg.starts_with(s)) => {
                Cow::Owned(msg.split(" at line").next().unwrap_or_default().to_owned())
            }
            serde_json::error::Category::Data => "a field has the wrong type".into(),
            serde_json::error::Category::Eof => "the JSON ends early".into(),
            _ => "the body is not valid JSON".into(),
        };
        Error::BadRequest(format!("{what} (line {}, column {})", e.line(), e.column()))
    })
}

/// Query parameters we know; others are ignored.
struct Query {
    project: Option<String>,
    /// How a lookup trusts the team cache: `fresh=1` reads team entries through (the
    /// plugin's first lookup of an origin in a run), `refresh=1` even while the engine rests
    /// (a repository refused the entry). Local credentials are not affected.
    fresh: Freshness,
}

impl Query {
    fn parse(q: Option<&str>) -> Result<Query, Error> {
        let mut project = None;
        let mut fresh = Freshness::Cached;
        for (k, v) in form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
            match (&*k, &*v) {
                ("refresh", "1") => fresh = Freshness::Refresh,
                ("fresh", "1") if fresh == Freshness::Cached => fresh = Freshness::RunStart,
                _ => {}
            }
            if k == "project" && !v.is_empty() {
                if v.len() > MAX_PROJECT_LEN || v.contains('\0') || !v.starts_with('/') {
                    return Err(Error::BadRequest(
                        "project must be an absolute path of at most 4096 bytes".into(),
                    ));
                }
                project = Some(v.into_owned());
            }
        }
        Ok(Query { project, fresh })
    }

    /// The project a lookup comes from, resolved through symlinks when it exists
    /// ([`project::resolve`]: inline when that cannot block, else on a blocking thread).
    async fn lookup_project(&self) -> Option<PathBuf> {
        Some(project::resolve(self.project.as_ref()?).await)
    }

    /// The exact scope a change addresses, canonical when the directory exists.
    async fn scope_project(&self) -> Option<String> {
        self.lookup_project()
            .await
            .map(|p| p.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_never_quotes_values() {
        let e = decode_put(br#"{"credential":{"type":"bearer","token":12345678}}"#).unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
        let e = decode_put(br#"{"credential":{"type":"http-basic","username":"hunter2"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("missing field `password`"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        let e = decode_put(br#"{"credential":{"type":"ftp","token":"x"}}"#).unwrap_err();
        assert_eq!(e.kind(), crate::protocol::ErrorKind::UnsupportedType);
        let e = decode_put(b"{nope").unwrap_err();
        assert_eq!(e.kind(), crate::protocol::ErrorKind::BadRequest);
    }

    #[test]
    fn segments_split_as_splitn_did() {
        // The former implementation, kept as the reference.
        fn reference(path: &str) -> Vec<&str> {
            let mut v: Vec<&str> = path
                .trim_end_matches('/')
                .splitn(MAX_SEGMENTS + 1, '/')
                .skip(1)
                .collect();
            v.truncate(MAX_SEGMENTS);
            v
        }
        for path in [
            "/",
            "",
            "//",
            "/v1",
            "/v1/",
            "/v1/status",
            "/v1/credentials/repo.magento.com",
            "/v1/credentials/repo.magento.com/enable//",
            "//v1//status",
            "/a/b/c/d/e/f/g/h",
            "/a/b/c/d/e/f",
            "/a/b/c/d/e/f/",
        ] {
            let (segs, n) = segments(path);
            assert_eq!(segs[..n].to_vec(), reference(path), "{path:?}");
        }
    }

    #[test]
    fn query_rules() {
        assert!(Query::parse(Some("project=relative")).is_err());
        assert!(Query::parse(Some("project=%2Fa%00b")).is_err());
        let q = Query::parse(Some("project=%2Fsrv%2Fmy%20shop&x=1")).unwrap();
        assert_eq!(q.project.as_deref(), Some("/srv/my shop"));
        assert_eq!(q.fresh, Freshness::Cached);
        for (query, fresh) in [
            ("project=%2Fa&fresh=1", Freshness::RunStart),
            ("fresh=1&refresh=1", Freshness::Refresh),
            ("refresh=1&fresh=1", Freshness::Refresh),
            ("fresh=0", Freshness::Cached),
        ] {
            assert_eq!(Query::parse(Some(query)).unwrap().fresh, fresh, "{query}");
        }
    }
}
