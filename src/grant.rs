//! The grant registry: which other uid may read which project's credentials, through which socket; a non-secret file in the data dir that the CLI edits and the daemon follows.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The registry's file name in the data dir.
pub const FILE: &str = "grants.json";

/// One grant: uid `uid` may read, through its own socket, the credentials scoped to
/// `project` (and unscoped ones when `include_global`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// What `grant list` and the audit log call it; also names its socket.
    pub name: String,
    /// The one uid its socket admits (checked with SO_PEERCRED).
    pub uid: u32,
    /// Canonical host path.
    pub project: PathBuf,
    /// Whether unscoped ("all projects") credentials are released through it too.
    #[serde(default)]
    pub include_global: bool,
}

/// Why a grant could not be made, found or kept.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// A name that could not be a socket's file name.
    #[error("bad grant name {0:?}: use 1-64 letters, digits, `-` or `_`")]
    BadName(String),
    /// The name is taken.
    #[error("a grant named {0} exists; revoke it first or choose another --name")]
    Exists(String),
    /// No grant has that name.
    #[error("no grant named {0}")]
    Unknown(String),
    /// The user's own uid uses the main socket.
    #[error("uid {0} is this user's own: it needs no grant")]
    OwnUid(u32),
    /// The project path, as given, runs through a link another user controls: it could
    /// point the grant at another project.
    #[error(
        "the project path {given} runs through {link}, which uid {owner} controls: it could point \
         the grant at another project. If {real} is the project, name it by that path"
    )]
    ForeignLink {
        /// The path as the user gave it.
        given: PathBuf,
        /// The link, or the directory holding it, that another user owns.
        link: PathBuf,
        /// Its owner.
        owner: u32,
        /// Where the path leads now.
        real: PathBuf,
    },
    /// The registry file could not be read or written.
    #[error(transparent)]
    File(#[from] crate::registry::FileError),
}

/// All grants, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// In the order they were added.
    pub grants: Vec<Grant>,
}

/// The registry's path.
pub fn registry_path() -> Result<PathBuf, crate::paths::PathError> {
    Ok(crate::paths::data_dir()?.join(FILE))
}

/// A grant's socket: beside the main socket, inside its 0700 directory, so that host
/// processes of the granted uid cannot reach it; only a bind mount of the file can.
pub fn socket_path(main_socket: &Path, name: &str) -> PathBuf {
    crate::registry::socket_path(main_socket, "grant", name)
}

/// The default name: `uid<N>-<project's last component>`, made valid.
pub fn default_name(uid: u32, project: &Path) -> String {
    let base: String = project
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if crate::registry::name_char(c) {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("uid{uid}-{base}")
}

/// Refuses a name that could not be a socket's file name.
pub fn check_name(name: &str) -> Result<(), GrantError> {
    if !crate::registry::valid_name(name) {
        return Err(GrantError::BadName(name.to_owned()));
    }
    Ok(())
}

impl Registry {
    /// Reads the registry; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Registry, GrantError> {
        Ok(crate::registry::load("grant", path)?)
    }

    /// Loads, changes and saves the registry under its lock, so that two `grant add` at
    /// once both land.
    pub fn update<T>(
        path: &Path,
        change: impl FnOnce(&mut Registry) -> Result<T, GrantError>,
    ) -> Result<T, GrantError> {
        crate::registry::update("grant", path, change)
    }

    /// Adds a grant, refusing a bad or taken name and the user's own uid.
    pub fn add(&mut self, g: Grant) -> Result<(), GrantError> {
        check_name(&g.name)?;
        if g.uid == crate::paths::euid() {
            return Err(GrantError::OwnUid(g.uid));
        }
        if self.grants.iter().any(|x| x.name == g.name) {
            return Err(GrantError::Exists(g.name));
        }
        self.grants.push(g);
        Ok(())
    }

    /// Removes the named grant and returns it.
    pub fn revoke(&mut self, name: &str) -> Result<Grant, GrantError> {
        let i = self
            .grants
            .iter()
            .position(|g| g.name == name)
            .ok_or_else(|| GrantError::Unknown(name.to_owned()))?;
        Ok(self.grants.remove(i))
    }
}

/// Most links followed while resolving a project path, as the kernel's own bound.
const MAX_LINKS: usize = 40;

/// The canonical project directory for `grant add --project GIVEN`, refusing a path that
/// follows a symbolic link owned by another user than `me` (root aside), or kept in a
/// directory such a user owns: that user could point the link, and with it the grant, at
/// another project. A path that follows no link (the real path, named as is) is taken.
pub fn project_path(given: &Path, me: u32) -> Result<PathBuf, GrantError> {
    use std::os::unix::fs::MetadataExt;
    let io = |path: &Path, source| {
        GrantError::from(crate::registry::FileError::io("resolving", path, source))
    };
    let abs = match given.is_absolute() {
        true => given.to_owned(),
        false => std::env::current_dir()
            .map_err(|e| io(given, e))?
            .join(given),
    };
    let real = std::fs::canonicalize(&abs).map_err(|e| io(given, e))?;
    let ours = |uid: u32| uid == me || uid == 0;
    let mut at = PathBuf::from("/");
    let mut rest: Vec<std::ffi::OsString> = components(&abs);
    rest.reverse();
    let mut links = 0;
    while let Some(name) = rest.pop() {
        if name == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&name);
        let meta = std::fs::symlink_metadata(&next).map_err(|e| io(&next, e))?;
        if !meta.file_type().is_symlink() {
            at = next;
            continue;
        }
        let holder = std::fs::symlink_metadata(&at).map_err(|e| io(&at, e))?;
        for (path, owner) in [(&next, meta.uid()), (&at, holder.uid())] {
            if !ours(owner) {
                return Err(GrantError::ForeignLink {
                    given: given.to_owned(),
                    link: path.clone(),
                    owner,
                    real,
                });
            }
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io(given, std::io::Error::from_raw_os_error(libc::ELOOP)));
        }
        let target = std::fs::read_link(&next).map_err(|e| io(&next, e))?;
        if target.is_absolute() {
            at = PathBuf::from("/");
        }
        rest.extend(components(&target).into_iter().rev());
    }
    Ok(real)
}

/// A path's names, `..` kept, `.` and the root dropped.
fn components(p: &Path) -> Vec<std::ffi::OsString> {
    use std::path::Component;
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

impl Grant {
    /// Whether a credential with `scope` (its project, `None` for unscoped) may be released
    /// through this grant: its scope must contain the granted project.
    pub fn covers(&self, scope: Option<&str>) -> bool {
        match scope {
            None => self.include_global,
            Some(s) => self.project.starts_with(Path::new(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(include_global: bool) -> Grant {
        Grant {
            name: "n".into(),
            uid: 33,
            project: "/srv/a/shop".into(),
            include_global,
        }
    }

    #[test]
    fn a_project_through_another_users_link_is_refused() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(a.join("shop")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        symlink(a.join("shop"), b.join("link")).unwrap();
        symlink("../a/shop", b.join("rel")).unwrap();
        let me = crate::paths::euid();
        // Our own links are followed.
        assert_eq!(project_path(&b.join("link"), me).unwrap(), a.join("shop"));
        assert_eq!(project_path(&b.join("rel/."), me).unwrap(), a.join("shop"));
        // Seen as another user's, they are refused, naming the real path.
        let other = me.wrapping_add(1);
        if me != 0 {
            // Our files are owned by `me`, which is "another user" to `other`.
            let e = project_path(&b.join("link"), other).unwrap_err();
            assert!(
                e.to_string()
                    .contains(&a.join("shop").display().to_string()),
                "{e}"
            );
            // The real path follows no link: taken.
            assert_eq!(
                project_path(&a.join("shop"), other).unwrap(),
                a.join("shop")
            );
        }
    }

    #[test]
    fn covers_only_scopes_containing_the_project() {
        assert!(g(false).covers(Some("/srv/a/shop")));
        assert!(g(false).covers(Some("/srv/a")));
        assert!(!g(false).covers(Some("/srv/a/shop2")));
        assert!(!g(false).covers(Some("/srv/b")));
        assert!(!g(false).covers(None));
        assert!(g(true).covers(None));
    }

    #[test]
    fn concurrent_updates_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf").join("grants.json");
        let other = crate::paths::euid().wrapping_add(1);
        std::thread::scope(|s| {
            for t in 0..8 {
                let path = &path;
                s.spawn(move || {
                    for i in 0..25 {
                        Registry::update(path, |reg| {
                            reg.add(Grant {
                                name: format!("g{t}-{i}"),
                                uid: other,
                                project: PathBuf::from("/srv/p"),
                                include_global: false,
                            })
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(Registry::load(&path).unwrap().grants.len(), 8 * 25);
    }

    #[test]
    fn names_are_checked_and_unique() {
        let mut r = Registry::default();
        assert!(matches!(
            r.add(Grant {
                name: "../x".into(),
                ..g(false)
            }),
            Err(GrantError::BadName(_))
        ));
        r.add(g(false)).unwrap();
        assert!(matches!(r.add(g(false)), Err(GrantError::Exists(_))));
        assert_eq!(r.revoke("n").unwrap().uid, 33);
        assert!(matches!(r.revoke("n"), Err(GrantError::Unknown(_))));
        assert_eq!(default_name(33, Path::new("/srv/my shop")), "uid33-my-shop");
    }
}
