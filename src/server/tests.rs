//! The in-process tier: the real server (accept loop, doors, slots, deadlines, drain, routes, agent) over the in-memory store, on a temporary socket, driven by a raw HTTP client; no sleeps (every wait is for an event, bounded by a time-out that only a failure reaches).
//!
//! Each behaviour of the connection path is checked on the main door and on a grant door
//! alike (the deadlines and the cap on a forward door too): they are one path with a rule
//! per door.

use super::door::forward::ForwardDoor;
use super::door::grant::GrantDoor;
use super::door::Door;
use super::{serve, Limits, Shared};
use crate::agent::policy::Confirm;
use crate::agent::{Agent, AgentConfig};
use crate::audit::{Audit, AuditConfig, Event};
use crate::credential::{CredentialType, Origin};
use crate::grant::Grant;
use crate::index::{new_meta, Index};
use crate::store::memory::MemoryStore;
use crate::store::{SecretKey, Which};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::oneshot;

/// Longer than any deadline below: reached only when the server misbehaves.
const NEVER: Duration = Duration::from_secs(20);

/// A server on a temporary socket, stopped through `stop`.
struct Running {
    sock: PathBuf,
    project: PathBuf,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.sock).await.unwrap()
    }

    /// The path of a lookup of `origin` from the project (a grant door ignores the query).
    fn lookup(&self, origin: &str) -> String {
        format!(
            "/v1/credentials/{origin}?project={}",
            self.project.display()
        )
    }

    /// Stops the server and waits for it; the directory (its audit log) stays until the
    /// returned guard drops.
    async fn shutdown(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(NEVER, &mut self.task)
            .await
            .expect("the server drains and returns")
            .unwrap();
        self.dir
    }
}

/// A door over an agent with three credentials: `open.example` (unscoped), `scoped.example`
/// and `confirm.example` (scoped to the project; the last needs a confirmation, given by
/// `askpass`).
async fn start(grant: bool, limits: Limits, askpass: Option<PathBuf>) -> Running {
    let kind = if grant { Kind::Grant } else { Kind::Main };
    start_door(kind, limits, askpass).await
}

/// Which door [`start_door`] serves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Main,
    Grant,
    /// A forward door (`ssh -R`) serving the project's credentials.
    Forward,
}

async fn start_door(kind: Kind, limits: Limits, askpass: Option<PathBuf>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let project = std::fs::canonicalize(project).unwrap();
    let scope = project.to_str().unwrap().to_owned();
    let store = Arc::new(MemoryStore::new());
    let mut index = Index::default();
    for (origin, scope, confirm) in [
        ("open.example", None, false),
        ("scoped.example", Some(scope.clone()), false),
        ("confirm.example", Some(scope.clone()), true),
    ] {
        let o = Origin::parse(origin).unwrap();
        let mut m = new_meta(o.clone(), scope.clone(), CredentialType::Bearer, 1);
        m.confirm = confirm;
        index.upsert(m);
        let json = format!(r#"{{"type":"bearer","token":"SECRET-{origin}"}}"#);
        store
            .set(
                &SecretKey::new(&o, scope.as_deref(), Which::Current),
                json.as_bytes(),
            )
            .unwrap();
    }
    let cfg = AgentConfig {
        index_path: dir.path().join("index.json"),
        backend_timeout: Duration::from_secs(5),
        backend_reason: "in-process tests".into(),
    };
    let audit = Audit::open(AuditConfig::in_dir(dir.path().join("state"))).unwrap();
    let agent = Agent::new(store, index, cfg)
        .with_audit(audit)
        .with_confirm(Confirm::new(askpass, NEVER));
    let sock = dir.path().join("s.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let agent = Arc::new(agent);
    let task = match kind {
        // The main door through the daemon's own entry point.
        Kind::Main => tokio::spawn(super::run(listener, agent, limits, shutdown)),
        Kind::Forward => {
            let door: Arc<dyn Door> = Arc::new(ForwardDoor::new(crate::forward::Forward {
                name: "f".into(),
                origins: Vec::new(),
                project: Some(project.clone()),
                confirm: false,
                expires_at: None,
                owner: None,
            }));
            tokio::spawn(serve(listener, door, Shared::new(agent, limits), shutdown))
        }
        Kind::Grant => {
            let door: Arc<dyn Door> = Arc::new(GrantDoor::uncontained(Grant {
                name: "g".into(),
                uid: crate::paths::euid(),
                project: project.clone(),
                include_global: false,
            }));
            tokio::spawn(serve(listener, door, Shared::new(agent, limits), shutdown))
        }
    };
    Running {
        sock,
        project,
        dir,
        stop: Some(stop),
        task,
    }
}

/// Short deadlines, so that the tests that wait for them wait little.
fn quick() -> Limits {
    Limits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        drain_timeout: NEVER,
        ..Limits::default()
    }
}

/// One response read from a keep-alive connection: status and body.
async fn response(s: &mut UnixStream) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Some((status, body));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(NEVER, s.read(&mut chunk))
            .await
            .expect("an answer or the end of the connection")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn get(s: &mut UnixStream, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    response(s).await.expect("an answer")
}

/// Whether the server ends the connection (EOF or reset) without answering.
async fn ends_unanswered(s: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(NEVER, s.read_to_end(&mut rest))
        .await
        .expect("the server ends the connection");
    read.is_err() || rest.is_empty()
}

#[tokio::test]
async fn each_door_serves_by_its_rule() {
    let main = start(false, quick(), None).await;
    let mut c = main.connect().await;
    let (status, body) = get(&mut c, &main.lookup("open.example")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("SECRET-open.example"));
    let (status, body) = get(&mut c, "/v1/status").await;
    assert_eq!(status, 200);
    let full: crate::protocol::Status = serde_json::from_str(&body).unwrap();
    assert_eq!((full.credentials, full.pid), (3, std::process::id()));
    main.shutdown().await;

    let grant = start(true, quick(), None).await;
    let mut c = grant.connect().await;
    // The project's credential, not the unscoped one (the grant does not include it).
    let (status, body) = get(&mut c, &grant.lookup("scoped.example")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("SECRET-scoped.example"));
    let (status, body) = get(&mut c, "/v1/credentials/open.example").await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("SECRET"));
    // Its own view of the status: its counts, no pid, no backend.
    let (status, body) = get(&mut c, "/v1/status").await;
    assert_eq!(status, 200);
    let own: crate::protocol::Status = serde_json::from_str(&body).unwrap();
    assert_eq!((own.credentials, own.pid), (2, 0), "{body}");
    assert!(own.backend_reason.is_empty(), "{body}");
    let (status, body) = get(&mut c, "/v1/credentials").await;
    assert_eq!(status, 403, "{body}");
    let req = "DELETE /v1/credentials/scoped.example HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await.unwrap().0, 403);
    let dir = grant.shutdown().await;
    let log = dir.path().join("state");
    let (records, _) = crate::audit::read(&log, None).unwrap();
    let release = records
        .iter()
        .find(|r| r.event == Some(Event::Release))
        .expect("the release is recorded");
    assert_eq!(release.detail.as_deref(), Some("grant g"), "{release:?}");
    assert!(records.iter().any(|r| r.event == Some(Event::Refuse)
        && r.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("grant g: DELETE"))));
}

/// A head that never completes is cut by the header deadline; a body that never completes
/// is answered (refused) and its connection ends: on both doors.
#[tokio::test]
async fn slow_heads_and_bodies_are_cut_on_every_door() {
    for kind in [Kind::Main, Kind::Grant, Kind::Forward] {
        let grant = kind != Kind::Main;
        let srv = start_door(kind, quick(), None).await;
        let mut slow_head = srv.connect().await;
        slow_head.write_all(b"GET /v1/sta").await.unwrap();
        assert!(ends_unanswered(&mut slow_head).await, "grant: {grant}");

        let mut slow_body = srv.connect().await;
        let req =
            "PUT /v1/credentials/open.example HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
        slow_body.write_all(req.as_bytes()).await.unwrap();
        let (status, body) = response(&mut slow_body).await.expect("an answer");
        // The main door waits for the body until its deadline; a grant or forward door
        // refuses a write before reading any of it.
        let expected = if grant { 403 } else { 400 };
        assert_eq!(status, expected, "grant: {grant}: {body}");
        assert!(grant || body.contains("did not arrive"), "{body}");
        assert!(ends_unanswered(&mut slow_body).await, "grant: {grant}");
        srv.shutdown().await;
    }
}

/// At the cap, the connection idle longest gives way to a new one: on both doors.
#[tokio::test]
async fn at_the_cap_the_longest_idle_gives_way_on_every_door() {
    for kind in [Kind::Main, Kind::Grant, Kind::Forward] {
        let grant = kind != Kind::Main;
        let limits = Limits {
            max_connections: 2,
            header_timeout: NEVER,
            ..quick()
        };
        let srv = start_door(kind, limits, None).await;
        let path = srv.lookup("scoped.example");
        let mut a = srv.connect().await;
        assert_eq!(get(&mut a, &path).await.0, 200);
        let mut b = srv.connect().await;
        assert_eq!(get(&mut b, &path).await.0, 200);
        // a went idle first: the third connection takes its place.
        let mut c = srv.connect().await;
        assert_eq!(get(&mut c, &path).await.0, 200, "grant: {grant}");
        assert!(
            ends_unanswered(&mut a).await,
            "grant: {grant}: a was evicted"
        );
        assert_eq!(get(&mut b, &path).await.0, 200, "b stays");
        srv.shutdown().await;
    }
}

/// At shutdown the door stops accepting, closes idle connections at once, and lets a
/// request in service (here: waiting for the user's confirmation) finish: on both doors.
#[tokio::test]
async fn shutdown_drains_every_door() {
    for grant in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("answer");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(
            made.is_ok_and(|s| s.success()),
            "mkfifo (coreutils) is needed"
        );
        let askpass = dir.path().join("askpass");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\nread answer < '{}'\nexit 0\n", fifo.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let limits = Limits {
            header_timeout: NEVER,
            ..quick()
        };
        let mut srv = start(grant, limits, Some(askpass)).await;
        let sock = srv.sock.clone();
        let mut idle = srv.connect().await;
        assert_eq!(get(&mut idle, &srv.lookup("scoped.example")).await.0, 200);
        let mut asking = srv.connect().await;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: x\r\n\r\n",
            srv.lookup("confirm.example")
        );
        asking.write_all(req.as_bytes()).await.unwrap();
        // The dialog is up once the askpass program opened the FIFO for reading: opening
        // it for writing waits until then.
        let opened = tokio::task::spawn_blocking({
            let fifo = fifo.clone();
            move || std::fs::OpenOptions::new().write(true).open(fifo).unwrap()
        });
        let mut answer = tokio::time::timeout(NEVER, opened).await.unwrap().unwrap();
        let _ = srv.stop.take().unwrap().send(());
        assert!(
            ends_unanswered(&mut idle).await,
            "grant: {grant}: idle closes at once"
        );
        // Stopped accepting: a new connection is refused or never answered.
        if let Ok(mut late) = UnixStream::connect(&sock).await {
            let _ = late
                .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            assert!(
                ends_unanswered(&mut late).await,
                "grant: {grant}: no new connection after shutdown"
            );
        }
        std::io::Write::write_all(&mut answer, b"yes\n").unwrap();
        drop(answer);
        let (status, body) = response(&mut asking)
            .await
            .expect("the request in service is answered");
        assert_eq!(status, 200, "grant: {grant}: {body}");
        assert!(body.contains("SECRET-confirm.example"));
        tokio::time::timeout(NEVER, &mut srv.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// A peer the door refuses is audited once per interval with a count, however often it
/// comes back; the listener keeps serving the others.
#[tokio::test]
async fn refused_peers_cost_the_log_one_line_per_interval() {
    let srv = start(true, quick(), None).await;
    // The in-process grant admits our own uid; a door for another uid refuses us.
    drop(srv.connect().await);
    let state = srv.dir.path().join("state");
    let sock = srv.dir.path().join("other.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let agent = Arc::new(
        Agent::new(
            Arc::new(MemoryStore::new()),
            Index::default(),
            AgentConfig {
                index_path: srv.dir.path().join("other-index.json"),
                backend_timeout: Duration::from_secs(5),
                backend_reason: "t".into(),
            },
        )
        .with_audit(Audit::open(AuditConfig::in_dir(state.clone())).unwrap()),
    );
    let other: Arc<dyn Door> = Arc::new(GrantDoor::uncontained(Grant {
        name: "other".into(),
        uid: crate::paths::euid().wrapping_add(1),
        project: srv.project.clone(),
        include_global: false,
    }));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        other,
        Shared::new(Arc::clone(&agent), quick()),
        async move {
            let _ = stopped.await;
        },
    ));
    for _ in 0..500 {
        let mut s = UnixStream::connect(&sock).await.unwrap();
        assert!(ends_unanswered(&mut s).await);
    }
    let _ = stop.send(());
    task.await.unwrap();
    agent.lock(); // ends the interval: the count is written
    let _dir = srv.shutdown().await;
    let (records, _) = crate::audit::read(&state, None).unwrap();
    let rejects: Vec<_> = records
        .iter()
        .filter(|r| r.event == Some(Event::RejectPeer))
        .collect();
    assert_eq!(rejects.len(), 2, "{rejects:#?}");
    assert_eq!(rejects[0].similar, None);
    assert_eq!(rejects[1].similar, Some(499));
    assert!(rejects[0].detail.as_deref() == Some("grant other"));
    assert!(
        !Path::new(&state.join(crate::audit::FILE_NAME))
            .metadata()
            .is_ok_and(|m| m.len() > 0),
        "refusals stay out of audit.log"
    );
}

/// A revoked grant's listener task is aborted: its open connections end at once, not after
/// a drain.
#[tokio::test]
async fn a_stopped_door_task_ends_its_connections_at_once() {
    let limits = Limits {
        header_timeout: NEVER,
        drain_timeout: NEVER,
        ..quick()
    };
    let srv = start(true, limits, None).await;
    let mut c = srv.connect().await;
    assert_eq!(get(&mut c, &srv.lookup("scoped.example")).await.0, 200);
    srv.task.abort();
    assert!(ends_unanswered(&mut c).await);
}

/// `GET /v1/origins?project=DIR` answered before routing gives what the routed path gives
/// (a query it does not take, `&x=1`, sends it there), and carries the warning horizon only
/// when an origin in the list expires (clients use it for nothing else).
#[tokio::test]
async fn origins_answer_alike_on_both_paths_and_name_the_horizon_with_an_expiry() {
    let main = start(false, quick(), None).await;
    let mut c = main.connect().await;
    let dir = main.project.to_str().unwrap().replace('/', "%2F");
    let inline = format!("/v1/origins?project={dir}");
    let routed = format!("/v1/origins?project={dir}&x=1");
    let both = async |c: &mut UnixStream| {
        let (a, inline) = get(c, &inline).await;
        let (b, routed) = get(c, &routed).await;
        assert_eq!((a, b), (200, 200), "{inline} {routed}");
        assert_eq!(inline, routed);
        serde_json::from_str::<crate::protocol::OriginList>(&inline).unwrap()
    };
    let list = both(&mut c).await;
    assert_eq!(list.origins.len(), 3, "{list:?}");
    assert_eq!(list.expiry_warning_days, None, "nothing expires");
    let body = r#"{"credential":{"type":"github-oauth","token":"gho_x"},"expires":4102444800}"#;
    let put = format!(
        "PUT /v1/credentials/github.com HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(put.as_bytes()).await.unwrap();
    assert_eq!(response(&mut c).await.unwrap().0, 200);
    let list = both(&mut c).await;
    assert_eq!(list.origins.len(), 4, "{list:?}");
    assert!(list.expiry_warning_days.is_some(), "{list:?}");
    main.shutdown().await;
}
