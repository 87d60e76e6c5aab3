//! Choosing the daemon's backend: `COMPOSER_KEYD_BACKEND`, config.toml or a probe, opened through the seam (`backend.rs`) and wrapped as the switchable store `migrate` changes.

use super::backend::{self, Places};
use super::switchable::Switchable;
use super::{Store, StoreError};
use crate::config::{self, BackendChoice, SetBy};
use crate::protocol::BackendKind;
use std::sync::Arc;
use std::time::Duration;

/// Why no backend could be set up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The backend choice could not be read (a bad `COMPOSER_KEYD_BACKEND` or config.toml).
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The data directory for the age file could not be worked out.
    #[error(transparent)]
    Path(#[from] crate::paths::PathError),
    /// The chosen backend cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Picks the backend and says why: `COMPOSER_KEYD_BACKEND`, else config.toml, else auto.
/// Auto takes the OS keyring when it answers within `probe_timeout`, else the age file.
pub async fn open(probe_timeout: Duration) -> Result<Arc<Switchable>, OpenError> {
    let (choice, source) = config::backend()?;
    let places = Places::of_user()?;
    let set = match &source {
        SetBy::Env => format!("{}={choice}", config::ENV_BACKEND),
        SetBy::File(p) => format!("backend = \"{choice}\" in {}", p.display()),
        SetBy::Default => "auto, the default".into(),
    };
    let (store, reason, detail): (Arc<dyn Store>, String, Option<String>) = match choice {
        BackendChoice::Backend(kind) => (backend::open(kind, &places)?, set, None),
        BackendChoice::Auto => auto(&places, &set, probe_timeout).await?,
    };
    Ok(Arc::new(
        Switchable::new(store, reason, Some(places)).with_detail(detail),
    ))
}

/// A few words for why the keyring did not answer; the error itself (a D-Bus address, a
/// zbus message) is the detail, for `doctor -v` and the log.
fn short_reason(e: &StoreError) -> &'static str {
    let StoreError::Unavailable { reason, .. } = e else {
        return match e {
            StoreError::Timeout(_) => "it did not answer in time",
            _ => "it refused",
        };
    };
    let r = reason.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
    if has(&[
        "org.freedesktop.secrets",
        "serviceunknown",
        "was not provided",
    ]) {
        "no Secret Service on the session bus"
    } else if has(&[
        "failed to connect",
        "no such file",
        "dbus_session_bus_address",
        "address",
    ]) {
        "no D-Bus session bus"
    } else if has(&["locked", "access refused"]) {
        "the keyring is locked or refused access"
    } else if has(&["no platform store"]) {
        "no platform keyring"
    } else {
        "the keyring is unavailable"
    }
}

/// `auto`: the first of [`BackendKind::AUTO`] whose probe answers within `limit`, else the
/// last one; with the reason, and the detail of the last probe that failed.
async fn auto(
    places: &Places,
    set: &str,
    limit: Duration,
) -> Result<(Arc<dyn Store>, String, Option<String>), OpenError> {
    let (last, tried) = BackendKind::AUTO.split_last().expect("auto has a choice");
    let mut failed = None;
    for &kind in tried {
        match probe(kind, places, limit).await {
            Ok(store) => return Ok((store, format!("{set}: the {} answered", kind.name()), None)),
            Err(why) => failed = Some((kind, why)),
        }
    }
    let store = backend::open(*last, places)?;
    Ok(match failed {
        Some((kind, (short, detail))) => (
            store,
            format!(
                "{set}: no {} answered ({short}), so the {}",
                kind.name(),
                last.name()
            ),
            Some(detail),
        ),
        None => (store, format!("{set}: the {}", last.name()), None),
    })
}

/// Opens `kind` and asks whether it answers, bounded by `limit`.
async fn probe(
    kind: BackendKind,
    places: &Places,
    limit: Duration,
) -> Result<Arc<dyn Store>, (&'static str, String)> {
    let k = backend::open(kind, places).map_err(|e| (short_reason(&e), e.to_string()))?;
    match tokio::time::timeout(limit, k.probe()).await {
        Ok(Ok(())) => Ok(k),
        Ok(Err(e)) => Err((short_reason(&e), e.to_string())),
        Err(_) => Err(("no answer in time", format!("no answer within {limit:?}"))),
    }
}
