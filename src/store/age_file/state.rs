//! The vault's sidecar, `vault-state.json`: the generation last written and the wrong-passphrase back-off, kept outside the vault.
//!
//! vault.age carries its own generation inside the encryption; the sidecar records the
//! newest one this data directory has seen, so a vault.age older than that is an old copy
//! put back. The back-off lives here too, so that restarting the daemon does not reset it.
//! Nothing in it is secret.

use super::AgeFileStore;
use crate::atomic::{self, Stage};
use crate::paths;
use crate::store::StoreError;
use crate::testhook;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The sidecar's file name, next to vault.age.
pub const FILE_NAME: &str = "vault-state.json";

/// The longest back-off after a wrong passphrase.
pub const MAX_DELAY: Duration = Duration::from_secs(16);

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct State {
    /// The generation of the newest vault.age written here.
    #[serde(default)]
    pub generation: u64,
    /// Wrong passphrases since the last right one.
    #[serde(default)]
    pub failures: u32,
    /// No passphrase is tried before this time (seconds since the epoch).
    #[serde(default)]
    pub not_before: u64,
}

/// What reading the sidecar found.
pub(super) enum Found {
    Missing,
    Damaged(String),
    Ok(State),
}

impl Found {
    /// The state to build on: a missing or damaged file starts from nothing.
    pub fn state(&self) -> State {
        match self {
            Found::Ok(s) => s.clone(),
            _ => State::default(),
        }
    }
}

pub(super) fn read(path: &Path) -> Found {
    match std::fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Found::Missing,
        Err(e) => Found::Damaged(format!("cannot read it ({e})")),
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(s) => Found::Ok(s),
            Err(e) => Found::Damaged(format!("it is not valid ({e})")),
        },
    }
}

/// Replaces the sidecar atomically, mode 0600.
pub(super) fn write(path: &Path, state: &State, at: &mut dyn FnMut(Stage)) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    bytes.push(b'\n');
    atomic::write_with(path, &bytes, 0o600, at)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The back-off after the `failures`th wrong passphrase in a row: 1, 2, 4, 8, then 16 s.
pub(super) fn delay(failures: u32) -> Duration {
    Duration::from_secs(1 << failures.saturating_sub(1).min(4)).min(MAX_DELAY)
}

impl State {
    /// How long until a passphrase may be tried. A clock set back cannot make it longer than
    /// the longest back-off.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.not_before.saturating_sub(now_secs())).min(MAX_DELAY)
    }

    /// Counts a wrong passphrase; returns the back-off it starts.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let d = delay(self.failures);
        self.not_before = now_secs() + d.as_secs();
        d
    }

    /// Clears the back-off after a right passphrase.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.not_before = 0;
    }
}

impl AgeFileStore {
    /// Runs a passphrase check under the back-off kept in the sidecar: while the back-off of
    /// an earlier wrong passphrase runs (even one tried before a restart), a try is refused at
    /// once, unchecked, with the time left (`Backoff`); a wrong passphrase now starts a
    /// back-off that doubles up to 16 s. Nothing sleeps, so no lock is held through it.
    pub(super) fn with_backoff<T>(
        &self,
        check: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let sp = self.state_path();
        let before = read(&sp).state();
        let wait = before.wait();
        if !wait.is_zero() {
            tracing::warn!(
                failures = before.failures,
                "a wrong passphrase was tried recently: refused this try unchecked, {wait:?} left"
            );
            return Err(StoreError::Backoff(wait));
        }
        let result = check();
        // Read again: the check may have written the generation.
        let mut now = read(&sp).state();
        match &result {
            Err(StoreError::WrongPassphrase) => {
                let delay = now.failed();
                self.save_state(&now);
                tracing::warn!(
                    failures = now.failures,
                    "wrong passphrase; tries in the next {delay:?} are refused"
                );
            }
            Ok(_) if now.failures > 0 || now.not_before > 0 => {
                now.succeeded();
                self.save_state(&now);
            }
            _ => {}
        }
        result
    }

    /// Writes the sidecar. A failure is logged, not returned: the vault itself is written,
    /// and the next unlock repairs a generation that lags behind.
    pub(super) fn save_state(&self, s: &State) {
        if let Some(dir) = self.path.parent() {
            let _ = paths::create_private_dir(dir);
        }
        let path = self.state_path();
        let result = write(&path, s, &mut |stage| {
            testhook::pause(match stage {
                Stage::TempCreated => "state-temp-created",
                Stage::BeforeRename => "state-before-rename",
                Stage::AfterRename => "state-after-rename",
            })
        });
        if let Err(e) = result {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    /// Makes sure the sidecar exists before a new vault.age goes in place (creation and
    /// upgrade), so that a crash right after that rename leaves a sidecar behind the vault,
    /// which is repaired silently, not a missing one, which is reported.
    pub(super) fn ensure_state(&self) {
        if let found @ (Found::Missing | Found::Damaged(_)) = read(&self.state_path()) {
            self.save_state(&found.state());
        }
    }
}
