//! The forward registry (`forwards.json`): the doors made for `ssh -R`, each a socket of the user's own uid that serves reads of its listed origins (or one project's credentials), until it is revoked, expires, or the process that made it exits.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The registry's file name in the data dir.
pub const FILE: &str = "forwards.json";

/// A door that no `--expires` bounds and no owner holds lasts this long: a forward made by
/// hand for `~/.ssh/config` must not stay open forever by default.
pub const DEFAULT_LIFETIME_SECS: u64 = 12 * 3600;

/// One forward door.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// What `forward list` and the audit log (`forward NAME`) call it; names its socket.
    pub name: String,
    /// The origins it serves (`host[:port]`); empty with `project` set means that project's.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Serve the credentials one project's lookups would find (canonical local path).
    #[serde(default)]
    pub project: Option<PathBuf>,
    /// Whether each release is confirmed on the local desktop first.
    #[serde(default)]
    pub confirm: bool,
    /// Unix time after which it serves nothing.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// The process whose exit ends it (`composer-keyd ssh`), with its start time, so a
    /// reused pid does not keep it alive.
    #[serde(default)]
    pub owner: Option<Owner>,
}

/// A process, identified across pid reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`: clock ticks after boot when it started.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            pid,
            start: crate::procstat::start_time(pid as i32)?,
        })
    }

    /// Whether it still runs: the same process (not one that reused its pid), and not a
    /// zombie its parent has yet to reap.
    pub fn alive(&self) -> bool {
        matches!(crate::procstat::read(self.pid as i32), Some(s) if s.start == self.start && !matches!(s.state, 'Z' | 'X'))
    }
}

/// Why a forward door could not be made, found or kept.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// A name that could not be a socket's file name.
    #[error("bad forward name {0:?}: use 1-64 letters, digits, `-` or `_`")]
    BadName(String),
    /// The name is taken.
    #[error("a forward named {0} exists; revoke it first or choose another name")]
    Exists(String),
    /// No door has that name.
    #[error("no forward named {0}")]
    Unknown(String),
    /// Neither origins nor a project: it would serve nothing, or (worse) be read as "all".
    #[error("a forward serves --origin ORIGIN... or --project DIR; give one")]
    Empty,
    /// The registry file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::registry::FileError),
}

/// All forward doors, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// In the order they were added.
    pub forwards: Vec<Forward>,
}

/// The registry's path.
pub fn registry_path() -> Result<PathBuf, crate::paths::PathError> {
    Ok(crate::paths::data_dir()?.join(FILE))
}

/// A door's socket: beside the main socket in its 0700 directory; only the user's own `ssh`
/// connects to it, and forwards what reaches the remote end.
pub fn socket_path(main_socket: &Path, name: &str) -> PathBuf {
    crate::registry::socket_path(main_socket, "forward", name)
}

/// Refuses a name that could not be a socket's file name.
pub fn check_name(name: &str) -> Result<(), ForwardError> {
    if !crate::registry::valid_name(name) {
        return Err(ForwardError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Forward {
    /// Whether it still serves at `now`: not past `expires_at`, its owner (if any) alive.
    pub fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| now < t) && self.owner.is_none_or(|o| o.alive())
    }

    /// Whether `origin` (as the wire names it) is one it serves; a project door serves any
    /// origin, and its scope rule decides.
    pub fn serves_origin(&self, origin: &str) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|o| o == origin)
    }

    /// Whether a credential with `scope` may go out: an origin door serves unscoped ones
    /// only (a project's credential stays with the project); a project door serves those
    /// whose scope contains the project, and unscoped ones.
    pub fn covers(&self, scope: Option<&str>) -> bool {
        match (scope, &self.project) {
            (None, _) => true,
            (Some(s), Some(p)) => p.starts_with(Path::new(s)),
            (Some(_), None) => false,
        }
    }
}

impl Registry {
    /// Reads the registry; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Registry, ForwardError> {
        Ok(crate::registry::load("forward", path)?)
    }

    /// Loads, changes and saves under its lock (`forwards.lock`), so two changes at once
    /// both land.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Registry) -> Result<T, ForwardError>,
    ) -> Result<T, ForwardError> {
        crate::registry::update("forward", path, change)
    }

    /// Adds a door, refusing a bad or taken name and one that would serve nothing.
    pub fn add(&mut self, f: Forward) -> Result<(), ForwardError> {
        check_name(&f.name)?;
        if f.origins.is_empty() && f.project.is_none() {
            return Err(ForwardError::Empty);
        }
        if self.forwards.iter().any(|x| x.name == f.name) {
            return Err(ForwardError::Exists(f.name));
        }
        self.forwards.push(f);
        Ok(())
    }

    /// Removes the named door and returns it.
    pub fn revoke(&mut self, name: &str) -> Result<Forward, ForwardError> {
        let i = self
            .forwards
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| ForwardError::Unknown(name.to_owned()))?;
        Ok(self.forwards.remove(i))
    }

    /// Drops the doors that no longer serve; their names.
    pub fn prune(&mut self, now: u64) -> Vec<String> {
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.forwards)
            .into_iter()
            .partition(|f| f.live(now));
        self.forwards = keep;
        gone.into_iter().map(|f| f.name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Forward {
        Forward {
            name: name.into(),
            origins: vec!["repo.magento.com".into()],
            project: None,
            confirm: false,
            expires_at: None,
            owner: None,
        }
    }

    #[test]
    fn origin_doors_serve_listed_unscoped_credentials_only() {
        let d = f("a");
        assert!(d.serves_origin("repo.magento.com"));
        assert!(!d.serves_origin("github.com"));
        assert!(d.covers(None));
        assert!(!d.covers(Some("/srv/shop")));
        let p = Forward {
            origins: vec![],
            project: Some("/srv/a/shop".into()),
            ..f("p")
        };
        assert!(p.serves_origin("anything.example"));
        assert!(p.covers(Some("/srv/a")));
        assert!(!p.covers(Some("/srv/a/shop2")));
    }

    #[test]
    fn expiry_and_owner_end_a_door() {
        let me = Owner::me().expect("our own stat");
        assert!(me.alive());
        assert!(
            !Owner {
                start: me.start + 1,
                ..me
            }
            .alive(),
            "a reused pid is not the owner"
        );
        let mut reg = Registry::default();
        reg.add(Forward {
            expires_at: Some(100),
            ..f("old")
        })
        .unwrap();
        reg.add(Forward {
            owner: Some(me),
            ..f("mine")
        })
        .unwrap();
        assert_eq!(reg.prune(99), Vec::<String>::new());
        assert_eq!(reg.prune(100), vec!["old".to_string()]);
        assert_eq!(reg.forwards.len(), 1);
    }

    #[test]
    fn names_are_checked_unique_and_doors_not_empty() {
        let mut r = Registry::default();
        assert!(matches!(r.add(f("../x")), Err(ForwardError::BadName(_))));
        assert!(matches!(
            r.add(Forward {
                origins: vec![],
                ..f("e")
            }),
            Err(ForwardError::Empty)
        ));
        r.add(f("a")).unwrap();
        assert!(matches!(r.add(f("a")), Err(ForwardError::Exists(_))));
        assert_eq!(r.revoke("a").unwrap().name, "a");
        assert!(matches!(r.revoke("a"), Err(ForwardError::Unknown(_))));
    }

    #[test]
    fn update_saves_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(FILE);
        Registry::update(&path, |r| r.add(f("a"))).unwrap();
        assert_eq!(Registry::load(&path).unwrap().forwards, vec![f("a")]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
