//! The agent: the store, the index and the decrypted cache behind one lock, and every operation the routes call.

use crate::audit::Audit;
use crate::credential::{Credential, Origin};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::peer::Peer;
use crate::protocol::{CredentialInfo, CredentialReply, OriginInfo, Status, PROTOCOL, VERSION};
use crate::secret::{to_json_zeroizing, Secret};
use crate::store::switchable::Switchable;
use crate::store::{SecretKey, Store, StoreError};
use policy::Confirm;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use timers::{Clock, Ttl};
use zeroize::Zeroizing;

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A credential handed over: the reply the wire carries, and its encoding, which the edge
/// makes the first time a door sends it and keeps here, with the cached credential, so that
/// a cached lookup serializes nothing and copies no secret.
pub struct Released {
    /// The origin, scope and credential, as the wire carries them.
    pub reply: CredentialReply,
    /// The encoded reply (made by the edge); zeroized when the last holder (cache or
    /// response) drops it.
    encoded: OnceLock<Zeroizing<Vec<u8>>>,
    /// Where it came from when not the local store: `team NAME vN`, for the audit record.
    pub source: Option<String>,
}

impl std::fmt::Debug for Released {
    // The encoding holds the secret, so only the reply (whose secrets print REDACTED) is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reply.fmt(f)
    }
}

impl Released {
    fn new(origin: &Origin, project: Option<String>, credential: Credential) -> Arc<Released> {
        Released::from(origin, project, credential, None)
    }

    fn from(
        origin: &Origin,
        project: Option<String>,
        credential: Credential,
        source: Option<String>,
    ) -> Arc<Released> {
        // It lives as long as the cache: built in the locked arena (out of swap and core
        // dumps); the heap copy we were given is wiped when it drops here.
        let reply = crate::secret::in_locked_arena(|| CredentialReply {
            origin: origin.clone(),
            project,
            credential: Arc::new(credential.clone()),
        });
        drop(credential);
        // Where the arena is full or absent, lock and mark the heap pages instead.
        crate::harden::protect_credential(&reply.credential);
        Arc::new(Released {
            reply,
            encoded: OnceLock::new(),
            source,
        })
    }

    /// The reply's encoding: made by `encode` the first time it is asked for, the same bytes after.
    pub fn encoded(&self, encode: impl FnOnce(&CredentialReply) -> Zeroizing<Vec<u8>>) -> &[u8] {
        self.encoded.get_or_init(|| encode(&self.reply))
    }
}

/// How the agent is set up.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Where the index lives.
    pub index_path: PathBuf,
    /// The longest a single backend call may take (`--backend-timeout`); a backend whose
    /// facts ask for more gets more (`BackendKind::call_timeout`).
    pub backend_timeout: Duration,
    /// Why this backend was chosen, for `status` (`Agent::new`; the daemon's switchable
    /// store carries its own).
    pub backend_reason: String,
}

struct Inner {
    index: Index,
    /// Decrypted credentials, filled on first use, wiped by `lock`.
    cache: hashbrown::HashMap<SecretKey, Arc<Released>, foldhash::fast::RandomState>,
    locked: bool,
    /// Bumped by every write and by `lock`, so a read that raced one does not cache a stale secret.
    generation: u64,
    /// `last_used` changed since the index was last written.
    dirty: bool,
    /// The unlock timers.
    clock: Clock,
}

/// The daemon's state. Reads take the lock briefly; writes are serialized by `writer`
/// so that the store and the index change in the same order.
pub struct Agent {
    store: Arc<Switchable>,
    cfg: AgentConfig,
    inner: Mutex<Inner>,
    writer: tokio::sync::Mutex<()>,
    started: Instant,
    /// Wakes the timer task when a deadline moves earlier (unlock, new limits).
    timer_changed: tokio::sync::Notify,
    audit: Audit,
    confirm: Confirm,
    /// Team sources read through beside the store (`team.rs`); empty when none is set up.
    teams: Arc<crate::team::sources::Sources>,
}

impl Agent {
    /// Builds an agent over a store that is never switched and a loaded index.
    pub fn new(store: Arc<dyn Store>, index: Index, cfg: AgentConfig) -> Agent {
        let fixed = Switchable::new(store, cfg.backend_reason.clone(), None);
        Agent::over(Arc::new(fixed), index, cfg)
    }

    /// Builds an agent over the daemon's switchable store (`store::open`) and a loaded
    /// index. A store that needs a passphrase starts locked.
    pub fn over(store: Arc<Switchable>, index: Index, cfg: AgentConfig) -> Agent {
        let locked = store.needs_passphrase();
        Agent {
            store,
            cfg,
            inner: Mutex::new(Inner {
                index,
                cache: hashbrown::HashMap::default(),
                locked,
                generation: 0,
                dirty: false,
                clock: Clock::new((!locked).then(Instant::now)),
            }),
            writer: tokio::sync::Mutex::new(()),
            started: Instant::now(),
            timer_changed: tokio::sync::Notify::new(),
            audit: Audit::disabled(),
            confirm: Confirm::default(),
            teams: Arc::default(),
        }
    }

    /// Sets the unlock timers (`--idle-ttl`, `--max-ttl`).
    pub fn set_ttl(&self, ttl: Ttl) {
        self.inner().clock.set_ttl(ttl);
        self.timer_changed.notify_one();
    }

    /// When the timers will lock the daemon, if they will.
    pub fn lock_deadline(&self) -> Option<Instant> {
        self.inner().clock.deadline()
    }

    /// Signalled when the deadline may have moved earlier.
    pub fn timer_changed(&self) -> &tokio::sync::Notify {
        &self.timer_changed
    }

    /// Locks if a timer has run out at `now`; checks and locks under one lock, so a
    /// release or unlock that came in first wins.
    pub fn expire(&self, now: Instant) -> bool {
        let mut inner = self.inner();
        if !inner.clock.due(now) {
            return false;
        }
        self.lock_held(&mut inner);
        true
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        #[cfg(test)]
        tests::LOCKED.with(|n| n.set(n.get() + 1));
        // Nothing panics while holding this lock except on a bug; the data stays consistent
        // because every critical section is a few field updates.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Awaits a backend call, bounded by the call time-out of the backend in use now: its
    /// facts are asked on every call, so a `migrate` that swapped the store is followed.
    async fn backend<T>(&self, call: impl Future<Output = Result<T, StoreError>>) -> Result<T> {
        let kind = self.store.kind();
        let limit = kind.call_timeout(self.cfg.backend_timeout);
        let done = tokio::time::timeout(limit, call).await;
        // Its code runs rarely: given back soon (a no-op unless the daemon's trimmer runs).
        crate::harden::backend_used();
        match done {
            Ok(r) => r.map_err(Error::from),
            Err(_) => Err(StoreError::Timeout(kind.name()).into()),
        }
    }

    /// `GET /v1/status`. Touches no timer.
    pub fn status(&self) -> Status {
        let inner = self.inner();
        let (credentials, enabled) = inner.index.counts();
        Status {
            version: VERSION.into(),
            protocol: PROTOCOL,
            backend: self.store.kind(),
            backend_reason: self.store.reason(),
            backend_detail: self.store.detail(),
            locked: inner.locked,
            credentials,
            enabled,
            uptime_secs: self.started.elapsed().as_secs(),
            pid: std::process::id(),
            age_file_exists: self.store.age_file_exists(),
            lock_in_secs: inner
                .clock
                .deadline()
                .map(|d| d.saturating_duration_since(Instant::now()).as_secs()),
            warning: if inner.locked {
                None
            } else {
                self.store.warning()
            },
            teams: self.teams.status_lines(),
        }
    }

    /// Whether any credential's policy names executables (`--allow-exe`).
    pub fn names_executables(&self) -> bool {
        self.inner().index.any(|m| !m.allow_exe.is_empty())
    }

    /// Whether the project a lookup of `origin` comes from can change its answer: some
    /// credential of it is scoped. When none is, the everyday lookup skips resolving it.
    pub(crate) fn scoped(&self, origin: &str) -> bool {
        self.inner().index.scoped(origin)
    }

    /// Every credential's metadata.
    pub fn list(&self) -> Vec<CredentialInfo> {
        self.inner().index.all()
    }

    /// The origins that apply to a project, without secrets.
    pub fn origins(&self, project: Option<&Path>) -> Vec<OriginInfo> {
        self.inner().index.applicable(project)
    }

    /// The credential that wins for `origin` looked up from `project`, by a caller we know
    /// nothing about: a credential with a policy is refused.
    pub async fn get(&self, origin: &Origin, project: Option<&Path>) -> Result<Arc<Released>> {
        self.release(origin, project, &Peer::unknown(), Through::anywhere())
            .await
    }

    /// Reads and parses one secret from the store.
    async fn read(&self, key: &SecretKey) -> Result<Option<Credential>> {
        let Some(bytes) = self.backend(self.store.get(key)).await? else {
            return Ok(None);
        };
        // serde_json's messages for a bad value can quote it, so only the position is kept.
        serde_json::from_slice(bytes.expose())
            .map(Some)
            .map_err(|e| {
                Error::Store(StoreError::Corrupt(format!(
                    "the stored secret for {} is not a credential (line {}, column {})",
                    describe(&key.origin, key.project.as_deref()),
                    e.line(),
                    e.column()
                )))
            })
    }

    async fn write(&self, key: &SecretKey, cred: &Credential) -> Result<()> {
        let bytes = to_json_zeroizing(cred);
        self.backend(self.store.set(key, &bytes)).await
    }

    fn ensure_unlocked(&self) -> Result<()> {
        if self.inner().locked {
            return Err(Error::Locked);
        }
        Ok(())
    }

    /// Writes the index as it is now. Callers hold `writer`, so saves land in order.
    async fn save_index(&self) -> Result<()> {
        let bytes = {
            let mut inner = self.inner();
            inner.dirty = false;
            inner.index.to_bytes()
        };
        let path = self.cfg.index_path.clone();
        tokio::task::spawn_blocking(move || Index::save_bytes(&path, &bytes))
            .await
            .map_err(|e| {
                tracing::error!("the index writer panicked: {e}");
                Error::Internal("the index writer failed; see the daemon's log".into())
            })??;
        Ok(())
    }

    /// Writes the index if `last_used` times changed since the last write.
    pub async fn flush(&self) -> Result<()> {
        let _w = self.writer.lock().await;
        if self.inner().dirty {
            self.save_index().await?;
        }
        Ok(())
    }

    /// Wipes every decrypted secret and refuses reads until `unlock`.
    pub fn lock(&self) {
        self.lock_held(&mut self.inner());
    }

    fn lock_held(&self, inner: &mut Inner) {
        inner.clock.locked();
        inner.locked = true;
        inner.generation += 1;
        // Dropping the cached credentials zeroizes them (Secret's Drop).
        inner.cache.clear();
        self.teams.lock_now();
        // Approvals for a program or session hold until lock.
        self.confirm.forget_approvals();
        self.store.lock();
        // Counts end with the unlock period: a release after the next unlock gets a full record.
        self.audit.flush_repeats();
    }

    /// Opens the store again; the vault checks the passphrase.
    pub async fn unlock(&self, passphrase: Option<Secret<String>>) -> Result<()> {
        let _w = self.writer.lock().await;
        if self.store.needs_passphrase() && passphrase.is_none() {
            return Err(Error::BadRequest(
                "this backend needs a passphrase to unlock".into(),
            ));
        }
        self.backend(self.store.unlock(passphrase.as_ref())).await?;
        {
            let mut inner = self.inner();
            inner.locked = false;
            inner.clock.unlocked(Instant::now());
        }
        self.timer_changed.notify_one();
        Ok(())
    }
}

/// `origin` or `origin --project DIR`, as a user would type it.
fn describe(origin: &Origin, project: Option<&str>) -> String {
    origin.as_typed(project)
}

pub use change::Put;
pub use release::Through;

mod backend;
mod change;
mod guard;
pub mod policy;
mod release;
mod team;
#[cfg(test)]
mod tests;
pub mod timers;
