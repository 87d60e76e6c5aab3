//! The Marketplace lifecycle on a team entry, with a writing token: add and rotate write a
//! KV v2 version, rollback writes the previous version's data as a new one, disable and
//! enable set `disabled` in the custom metadata, remove deletes the metadata (every
//! version). A read-only token gets `Forbidden` naming the policy path, and nothing changes.

use super::kv;
use super::sources::Team;
use super::TeamError;
use crate::credential::Credential;

/// Writes `credential` as a new version (and `label` into the custom metadata); its version.
pub async fn put(
    team: &Team,
    path: &str,
    credential: &Credential,
    label: Option<&str>,
) -> Result<u64, TeamError> {
    let token = team.token().await?;
    let (engine, mount) = (team.engine(), team.cfg.mount.as_str());
    let version = kv::write(engine, &token, mount, path, credential).await?;
    if let Some(l) = label {
        let (_, mut custom) = kv::metadata(engine, &token, mount, path).await?;
        custom.insert("label".into(), l.to_owned());
        kv::set_metadata(engine, &token, mount, path, &custom).await?;
    }
    Ok(version)
}

/// The current entry; `NotFound` when there is none.
pub async fn current(team: &Team, path: &str) -> Result<kv::TeamEntry, TeamError> {
    let token = team.token().await?;
    kv::read(team.engine(), &token, &team.cfg.mount, path, None).await
}

/// Writes the version before the current one again, as a new version; the new version.
pub async fn rollback(team: &Team, path: &str) -> Result<u64, TeamError> {
    let token = team.token().await?;
    let (engine, mount) = (team.engine(), team.cfg.mount.as_str());
    let (now, _) = kv::metadata(engine, &token, mount, path).await?;
    let mut v = now;
    while v > 1 {
        v -= 1;
        match kv::read(engine, &token, mount, path, Some(v)).await {
            Ok(old) => return kv::write(engine, &token, mount, path, &old.credential).await,
            // A deleted or destroyed version: the one before it.
            Err(TeamError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(TeamError::NotFound {
        team: team.name.clone(),
        path: format!("{path} (no earlier version to roll back to)"),
    })
}

/// Sets or clears `disabled` in the custom metadata, keeping the rest.
pub async fn set_enabled(team: &Team, path: &str, enabled: bool) -> Result<(), TeamError> {
    let token = team.token().await?;
    let (engine, mount) = (team.engine(), team.cfg.mount.as_str());
    let (_, mut custom) = kv::metadata(engine, &token, mount, path).await?;
    if enabled {
        custom.remove("disabled");
    } else {
        custom.insert("disabled".into(), "true".into());
    }
    kv::set_metadata(engine, &token, mount, path, &custom).await
}

/// Deletes the entry: its metadata and every version.
pub async fn remove(team: &Team, path: &str) -> Result<(), TeamError> {
    let token = team.token().await?;
    let (engine, mount) = (team.engine(), team.cfg.mount.as_str());
    // The metadata read first: a path that is not there is `NotFound`, not a silent success.
    kv::metadata(engine, &token, mount, path).await?;
    kv::delete(engine, &token, mount, path).await
}
