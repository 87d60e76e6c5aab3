//! Unit tests of the agent's logic over the in-memory store.

use super::*;
use crate::credential::CredentialType;
use crate::protocol::{ErrorKind, PutCredential, PutOutcome};
use crate::store::memory::MemoryStore;
use crate::store::Which;

thread_local! {
    /// How many times this thread took the agent's lock.
    pub(super) static LOCKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// (locks taken, winners resolved) by `f` on this thread.
async fn counted<T>(f: impl std::future::Future<Output = T>) -> (T, usize, usize) {
    let (l0, r0) = (LOCKED.get(), crate::index::RESOLVED.get());
    let out = f.await;
    (out, LOCKED.get() - l0, crate::index::RESOLVED.get() - r0)
}

/// A lookup resolves the winner once per pass and takes the lock as often as the cache
/// needs: once on a hit, twice on a miss (once to resolve, once to cache what was read).
#[tokio::test]
async fn a_lookup_resolves_once_and_locks_as_the_cache_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _store) = agent(dir.path());
    let o = Origin::parse("repo.example").unwrap();
    a.put(&o, None, put(basic("u", "p")), &Peer::unknown())
        .await
        .unwrap();
    a.lock();
    a.unlock(None).await.unwrap();
    let (hit, locks, resolved) = counted(a.get(&o, None)).await;
    assert_eq!(username(&hit.unwrap()), "u");
    assert_eq!((locks, resolved), (2, 1), "a miss");
    let (hit, locks, resolved) = counted(a.get(&o, None)).await;
    assert_eq!(username(&hit.unwrap()), "u");
    assert_eq!((locks, resolved), (1, 1), "a hit");
}

fn agent(dir: &Path) -> (Agent, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let cfg = AgentConfig {
        index_path: dir.join("index.json"),
        backend_timeout: Duration::from_secs(2),
        backend_reason: "test".into(),
    };
    (Agent::new(store.clone(), Index::default(), cfg), store)
}

fn basic(u: &str, p: &str) -> Credential {
    Credential::from_fields(CredentialType::HttpBasic, vec![u.into(), p.into()]).unwrap()
}

fn put(c: Credential) -> PutCredential {
    PutCredential {
        credential: c,
        label: None,
        rotate: false,
        no_clobber: false,
        confirm: None,
        allow_exe: None,
        expires: None,
        confirm_scope: None,
    }
}

fn origin() -> Origin {
    Origin::parse("repo.magento.com").unwrap()
}

fn username(r: &Released) -> String {
    match &*r.reply.credential {
        Credential::HttpBasic { username, .. } => username.expose().clone(),
        _ => panic!("not http-basic"),
    }
}

#[tokio::test]
async fn scopes_reach_the_right_project() {
    let d = tempfile::tempdir().unwrap();
    let (a, _) = agent(d.path());
    let o = origin();
    a.put(&o, None, put(basic("global", "g")), &Peer::unknown())
        .await
        .unwrap();
    a.put(
        &o,
        Some("/p/acme".into()),
        put(basic("acme", "a")),
        &Peer::unknown(),
    )
    .await
    .unwrap();
    a.put(
        &o,
        Some("/p/globex".into()),
        put(basic("globex", "b")),
        &Peer::unknown(),
    )
    .await
    .unwrap();
    let get = |p: &'static str| a.get(&o, Some(Path::new(p)));
    assert_eq!(username(&get("/p/acme").await.unwrap()), "acme");
    assert_eq!(username(&get("/p/globex/sub").await.unwrap()), "globex");
    assert_eq!(username(&get("/elsewhere").await.unwrap()), "global");
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "global");
    // The index on disk reloads to the same three entries.
    let back = Index::load(&d.path().join("index.json")).unwrap();
    assert_eq!(back.counts(), (3, 3));
}

#[tokio::test]
async fn disable_enable_rotate_rollback_remove() {
    let d = tempfile::tempdir().unwrap();
    let (a, store) = agent(d.path());
    let o = origin();
    let r = a
        .put(&o, None, put(basic("k1", "s1")), &Peer::unknown())
        .await
        .unwrap();
    assert_eq!(r.outcome, PutOutcome::Created);
    assert_eq!(
        a.put(&o, None, put(basic("k1", "s1")), &Peer::unknown())
            .await
            .unwrap()
            .outcome,
        PutOutcome::Unchanged
    );
    a.set_enabled(&o, None, false).await.unwrap();
    assert_eq!(
        a.get(&o, None).await.unwrap_err().kind(),
        ErrorKind::Disabled
    );
    a.set_enabled(&o, None, true).await.unwrap();

    let mut rot = put(basic("k2", "s2"));
    rot.rotate = true;
    let r = a.put(&o, None, rot, &Peer::unknown()).await.unwrap();
    assert_eq!(r.outcome, PutOutcome::Rotated);
    assert!(r.info.has_previous && r.info.rotated.is_some());
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "k2");
    a.rollback(&o, None, &Peer::unknown()).await.unwrap();
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "k1");

    a.delete(&o, None).await.unwrap();
    assert_eq!(
        a.get(&o, None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let k = SecretKey::new(&o, None, Which::Previous);
    assert!(
        store.get(&k).unwrap().is_none(),
        "previous secret removed too"
    );
}

#[tokio::test]
async fn no_clobber_reports_conflict() {
    let d = tempfile::tempdir().unwrap();
    let (a, _) = agent(d.path());
    let o = origin();
    a.put(&o, None, put(basic("k1", "s1")), &Peer::unknown())
        .await
        .unwrap();
    let mut p = put(basic("k1", "other"));
    p.no_clobber = true;
    assert_eq!(
        a.put(&o, None, p, &Peer::unknown()).await.unwrap().outcome,
        PutOutcome::Conflict
    );
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "k1");
}

#[tokio::test]
async fn lock_wipes_and_refuses() {
    let d = tempfile::tempdir().unwrap();
    let (a, _) = agent(d.path());
    let o = origin();
    a.put(&o, None, put(basic("k", "s")), &Peer::unknown())
        .await
        .unwrap();
    a.lock();
    assert!(a.status().locked);
    assert_eq!(a.get(&o, None).await.unwrap_err().kind(), ErrorKind::Locked);
    let err = a
        .put(&o, None, put(basic("x", "y")), &Peer::unknown())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    a.unlock(None).await.unwrap();
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "k");
}

#[tokio::test]
async fn unavailable_backend_is_typed_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (a, store) = agent(d.path());
    let o = origin();
    a.put(&o, None, put(basic("k", "s")), &Peer::unknown())
        .await
        .unwrap();
    a.lock();
    a.unlock(None).await.unwrap();
    store.set_unavailable(true);
    let err = a.get(&o, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    let err = a
        .put(&o, None, put(basic("k", "t")), &Peer::unknown())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BackendUnavailable);
    store.set_unavailable(false);
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "k");
}

#[tokio::test]
async fn rotate_without_credential_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let (a, _) = agent(d.path());
    let mut p = put(basic("k", "s"));
    p.rotate = true;
    let err = a
        .put(&origin(), None, p, &Peer::unknown())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = a
        .rollback(&origin(), None, &Peer::unknown())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// A store of a chosen kind whose unlock takes 200 ms.
struct Slow(crate::protocol::BackendKind);

impl Store for Slow {
    fn kind(&self) -> crate::protocol::BackendKind {
        self.0
    }

    fn get<'a>(&'a self, _: &'a SecretKey) -> crate::store::Call<'a, Option<Secret<Vec<u8>>>> {
        crate::store::ready(Ok(None))
    }

    fn set<'a>(&'a self, _: &'a SecretKey, _: &'a [u8]) -> crate::store::Call<'a, ()> {
        crate::store::ready(Ok(()))
    }

    fn delete<'a>(&'a self, _: &'a SecretKey) -> crate::store::Call<'a, ()> {
        crate::store::ready(Ok(()))
    }

    fn unlock<'a>(&'a self, _: Option<&'a Secret<String>>) -> crate::store::Call<'a, ()> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        })
    }
}

/// Issue 27: the call time-out is the backend's in use at each call, not the one at start,
/// so a store swapped by `migrate` for the age file gets the age file's room.
#[tokio::test]
async fn the_call_time_out_follows_the_backend_in_use() {
    use crate::protocol::BackendKind;
    let d = tempfile::tempdir().unwrap();
    let store = Arc::new(Switchable::new(
        Arc::new(Slow(BackendKind::Memory)),
        "test".into(),
        None,
    ));
    let cfg = AgentConfig {
        index_path: d.path().join("index.json"),
        backend_timeout: Duration::from_millis(50),
        backend_reason: "test".into(),
    };
    let agent = Agent::over(Arc::clone(&store), Index::default(), cfg);
    let e = agent.unlock(None).await.unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreError::Timeout("memory store"))),
        "{e}"
    );
    store.replace(Arc::new(Slow(BackendKind::AgeFile)), "migrated".into());
    agent.unlock(None).await.unwrap();
}

/// A door's rule adds to the credential's: its scopes refuse before anything is asked or
/// read, and a door that confirms asks even for an open credential.
#[tokio::test]
async fn a_doors_rule_adds_to_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _store) = agent(dir.path());
    let o = Origin::parse("repo.example").unwrap();
    a.put(&o, None, put(basic("u", "p")), &Peer::unknown())
        .await
        .unwrap();
    let nowhere = |_: Option<&str>| -> Result<()> { Err(Error::NotFound("not here".into())) };
    let through = Through {
        within: &nowhere,
        confirms: false,
    };
    let e = a
        .release(&o, None, &Peer::unknown(), through)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let anywhere = |_: Option<&str>| -> Result<()> { Ok(()) };
    let asking = Through {
        within: &anywhere,
        confirms: true,
    };
    // No askpass program: a confirmation is refused.
    let e = a
        .release(&o, None, &Peer::unknown(), asking)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden, "{e}");
    assert!(e.to_string().contains("confirmation"), "{e}");
    assert_eq!(username(&a.get(&o, None).await.unwrap()), "u");
}
