//! The index: non-secret metadata of every credential (origin, scope, type, label, state, dates), kept in one JSON file.

use crate::atomic;
use crate::credential::{CredentialType, Origin};
use crate::protocol::{ConfirmScope, CredentialInfo, OriginInfo};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// The file format revision.
const FORMAT: u32 = 1;

/// Metadata of one credential; the secret lives in the store.
pub type Meta = CredentialInfo;

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    credentials: Vec<DiskEntry>,
}

/// One credential as the index file stores it. Its own type, so the file format and the
/// wire (`CredentialInfo`) can change apart; format 1 has the same fields as the wire had.
#[derive(Serialize, Deserialize)]
struct DiskEntry {
    origin: Origin,
    #[serde(rename = "type")]
    kind: CredentialType,
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    label: Option<String>,
    enabled: bool,
    created: u64,
    #[serde(default)]
    rotated: Option<u64>,
    #[serde(default)]
    last_used: Option<u64>,
    #[serde(default)]
    has_previous: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    confirm: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allow_exe: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    #[serde(default, skip_serializing_if = "ConfirmScope::is_each")]
    confirm_scope: ConfirmScope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirm_for: Option<u64>,
}

impl From<Meta> for DiskEntry {
    fn from(m: Meta) -> DiskEntry {
        DiskEntry {
            origin: m.origin,
            kind: m.kind,
            project: m.project,
            label: m.label,
            enabled: m.enabled,
            created: m.created,
            rotated: m.rotated,
            last_used: m.last_used,
            has_previous: m.has_previous,
            confirm: m.confirm,
            allow_exe: m.allow_exe,
            expires: m.expires,
            confirm_scope: m.confirm_scope,
            confirm_for: m.confirm_for,
        }
    }
}

impl From<DiskEntry> for Meta {
    fn from(r: DiskEntry) -> Meta {
        Meta {
            origin: r.origin,
            kind: r.kind,
            project: r.project,
            label: r.label,
            enabled: r.enabled,
            created: r.created,
            rotated: r.rotated,
            last_used: r.last_used,
            has_previous: r.has_previous,
            confirm: r.confirm,
            allow_exe: r.allow_exe,
            expires: r.expires,
            confirm_scope: r.confirm_scope,
            confirm_for: r.confirm_for,
        }
    }
}

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index exists but could not be read.
    #[error("cannot read the index {path}: {source}")]
    Read {
        /// The index file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The index does not parse; the file is not touched.
    #[error("the index {path} is damaged ({reason}); it was left as it is")]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// The index could not be written.
    #[error("cannot write the index {path}: {source}")]
    Write {
        /// The index file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// All credentials' metadata, grouped by origin for constant-time lookups.
#[derive(Default, Clone)]
pub struct Index {
    by_origin: crate::FastMap<Origin, Vec<Meta>>,
}

impl Index {
    /// Loads the index; a missing file is an empty index.
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(source) => {
                return Err(IndexError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| IndexError::Corrupt {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if file.format != FORMAT {
            return Err(IndexError::Corrupt {
                path: path.into(),
                reason: format!(
                    "format {} is not {FORMAT}; is this a newer version?",
                    file.format
                ),
            });
        }
        let mut index = Index::default();
        for r in file.credentials {
            index.upsert(r.into());
        }
        Ok(index)
    }

    /// Serializes the index to its file format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = File {
            format: FORMAT,
            credentials: self.all().into_iter().map(DiskEntry::from).collect(),
        };
        // Only strings and numbers: this cannot fail.
        let mut out = serde_json::to_vec_pretty(&file).expect("index serializes");
        out.push(b'\n');
        out
    }

    /// Writes `bytes` (from [`Index::to_bytes`]) to `path` atomically, mode 0600.
    pub fn save_bytes(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
        if let Some(dir) = path.parent() {
            crate::paths::create_private_dir(dir).map_err(|source| IndexError::Write {
                path: path.into(),
                source,
            })?;
        }
        atomic::write(path, bytes, 0o600).map_err(|source| IndexError::Write {
            path: path.into(),
            source,
        })
    }

    /// Every credential, sorted by origin then project.
    pub fn all(&self) -> Vec<Meta> {
        let mut v: Vec<Meta> = self.by_origin.values().flatten().cloned().collect();
        v.sort_by(|a, b| (&a.origin, &a.project).cmp(&(&b.origin, &b.project)));
        v
    }

    /// Whether any credential satisfies `f`.
    pub fn any(&self, f: impl Fn(&Meta) -> bool) -> bool {
        self.by_origin.values().flatten().any(f)
    }

    /// How many credentials, and how many of them are enabled.
    pub fn counts(&self) -> (usize, usize) {
        let all = self.by_origin.values().flatten();
        let (n, e) = all.fold((0, 0), |(n, e), m| (n + 1, e + usize::from(m.enabled)));
        (n, e)
    }

    /// The credential stored for exactly this origin and scope.
    pub fn get(&self, origin: &Origin, project: Option<&str>) -> Option<&Meta> {
        self.by_origin
            .get(origin)?
            .iter()
            .find(|m| m.project.as_deref() == project)
    }

    /// Mutable access to exactly this origin and scope.
    pub fn get_mut(&mut self, origin: &Origin, project: Option<&str>) -> Option<&mut Meta> {
        self.by_origin
            .get_mut(origin)?
            .iter_mut()
            .find(|m| m.project.as_deref() == project)
    }

    /// Inserts or replaces the entry for its origin and scope.
    pub fn upsert(&mut self, meta: Meta) {
        let list = self.by_origin.entry(meta.origin.clone()).or_default();
        match list.iter_mut().find(|m| m.project == meta.project) {
            Some(slot) => *slot = meta,
            None => list.push(meta),
        }
    }

    /// Removes the entry for exactly this origin and scope.
    pub fn remove(&mut self, origin: &Origin, project: Option<&str>) -> Option<Meta> {
        let list = self.by_origin.get_mut(origin)?;
        let pos = list.iter().position(|m| m.project.as_deref() == project)?;
        let meta = list.swap_remove(pos);
        if list.is_empty() {
            self.by_origin.remove(origin);
        }
        Some(meta)
    }

    /// The credential that applies to a lookup from `project`: the most specific scope
    /// containing it, else the unscoped one. Without a project only the unscoped one applies.
    pub fn resolve(&self, origin: &str, project: Option<&Path>) -> Option<&Meta> {
        let list = self.by_origin.get(origin)?;
        list.get(best(list, project)?)
    }

    /// Whether any credential of `origin` is scoped to a project: only then does the
    /// project a lookup comes from decide which one wins.
    pub fn scoped(&self, origin: &str) -> bool {
        self.by_origin
            .get(origin)
            .is_some_and(|list| list.iter().any(|m| m.project.is_some()))
    }

    /// Like [`Index::resolve`], for updating the winner's `last_used`.
    pub fn resolve_mut(&mut self, origin: &str, project: Option<&Path>) -> Option<&mut Meta> {
        let list = self.by_origin.get_mut(origin)?;
        let i = best(list, project)?;
        list.get_mut(i)
    }

    /// For each origin, the credential that applies to `project`.
    pub fn applicable(&self, project: Option<&Path>) -> Vec<OriginInfo> {
        let mut out: Vec<OriginInfo> = self
            .by_origin
            .values()
            .filter_map(|list| list.get(best(list, project)?))
            .map(|m| OriginInfo {
                origin: m.origin.clone(),
                kind: m.kind,
                project: m.project.clone(),
                enabled: m.enabled,
                expires: m.expires,
            })
            .collect();
        out.sort_by(|a, b| a.origin.cmp(&b.origin));
        out
    }
}

/// The one rule for which credential wins a lookup from `project`, on every door: among an
/// origin's entries, the one whose scope contains `project` with the most path components,
/// else the unscoped one. Its position in `entries`.
fn best(entries: &[Meta], project: Option<&Path>) -> Option<usize> {
    #[cfg(test)]
    RESOLVED.with(|n| n.set(n.get() + 1));
    // Whether the project can be compared as bytes (it nearly always can: the doors hand
    // over resolved paths), asked at the first scoped entry only: most origins have none,
    // and `applicable` asks every origin's list.
    let mut plain = None;
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match (&m.project, project) {
            (None, _) => Some((i, 0)),
            (Some(scope), Some(p)) => {
                let plain = *plain.get_or_insert_with(|| {
                    canonical_depth(p.as_os_str().as_encoded_bytes()).is_some()
                });
                depth_within(scope, p, plain).map(|d| (i, d))
            }
            (Some(_), None) => None,
        })
        .max_by_key(|&(_, depth)| depth)
        .map(|(i, _)| i)
}

/// One more than the number of path components of `scope` when it contains `project`
/// (component-wise, as [`Path::starts_with`] says). When both are canonical
/// ([`canonical_depth`]; `plain` says so of the project) that is a byte prefix ending at a
/// `/`, and the depth is counted as the canonical check goes: no path parsing on a lookup.
fn depth_within(scope: &str, project: &Path, plain: bool) -> Option<usize> {
    if plain {
        if let Some(depth) = canonical_depth(scope.as_bytes()) {
            let (s, p) = (scope.as_bytes(), project.as_os_str().as_encoded_bytes());
            let within =
                p.starts_with(s) && (p.len() == s.len() || s == b"/" || p[s.len()] == b'/');
            return within.then_some(depth + 1);
        }
    }
    project
        .starts_with(scope)
        .then(|| Path::new(scope).components().count() + 1)
}

/// The number of components of `path` (the root one included) when it is absolute with no
/// empty, `.` or `..` component and no trailing `/` (`/` itself is one component): the form
/// `realpath` gives and scopes are stored in, whose components are exactly its `/`-separated
/// names. `None` for any other path.
pub(crate) fn canonical_depth(path: &[u8]) -> Option<usize> {
    if path == b"/" {
        return Some(1);
    }
    let rest = path.strip_prefix(b"/")?;
    let mut depth = 1;
    for name in rest.split(|&b| b == b'/') {
        if name.is_empty() || name == b"." || name == b".." {
            return None;
        }
        depth += 1;
    }
    Some(depth)
}

#[cfg(test)]
thread_local! {
    /// How many times this thread resolved a winner (the agent's tests count them).
    pub(crate) static RESOLVED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A new entry's metadata, created now.
pub fn new_meta(origin: Origin, project: Option<String>, kind: CredentialType, now: u64) -> Meta {
    Meta {
        origin,
        kind,
        project,
        label: None,
        enabled: true,
        created: now,
        rotated: None,
        last_used: None,
        has_previous: false,
        confirm: false,
        allow_exe: Vec::new(),
        expires: None,
        confirm_scope: ConfirmScope::Each,
        confirm_for: None,
    }
}

/// The expiry a credential has after a `PUT`: the one given wins (`0` clears it); without
/// one, the stored date stays while the secret stays, and a new secret starts with none.
/// Marketplace key pairs never carry one ([`crate::expiry::may_expire`]).
pub fn expiry_after_put(meta: &Meta, given: Option<u64>, secret_changed: bool) -> Option<u64> {
    if !crate::expiry::may_expire(&meta.origin, meta.kind) {
        return None;
    }
    match given {
        Some(0) => None,
        Some(at) => Some(at),
        None if secret_changed => None,
        None => meta.expires,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(origin: &str, project: Option<&str>) -> Meta {
        new_meta(
            Origin::parse(origin).unwrap(),
            project.map(Into::into),
            CredentialType::HttpBasic,
            1,
        )
    }

    #[test]
    fn a_scope_contains_a_project_exactly_when_path_starts_with_says_so() {
        // Every path of up to three names from a set with the awkward ones, absolute or
        // not, with a trailing `/` or not: the byte comparison may only ever agree.
        let names = ["", ".", "..", "a", "ab"];
        let mut rel = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = rel
                .iter()
                .flat_map(|r| names.iter().map(move |n| format!("{r}/{n}")))
                .collect();
            rel.extend(longer);
        }
        let paths: Vec<String> = rel
            .iter()
            .flat_map(|r| {
                let r = r.trim_start_matches('/');
                [
                    r.to_string(),
                    format!("/{r}"),
                    format!("{r}/"),
                    format!("/{r}/"),
                ]
            })
            .collect();
        for scope in &paths {
            for project in &paths {
                let p = Path::new(project);
                let said = p
                    .starts_with(scope)
                    .then(|| Path::new(scope).components().count() + 1);
                let plain = canonical_depth(project.as_bytes()).is_some();
                assert_eq!(
                    depth_within(scope, p, plain),
                    said,
                    "{scope:?} within {project:?}"
                );
            }
        }
        assert_eq!(canonical_depth(b"/"), Some(1));
        assert_eq!(canonical_depth(b"/srv/shop"), Some(3));
        for odd in [
            "",
            "srv",
            "/srv/",
            "//srv",
            "/srv/./shop",
            "/srv/../shop",
            "/srv//shop",
        ] {
            assert_eq!(canonical_depth(odd.as_bytes()), None, "{odd:?}");
        }
    }

    #[test]
    fn expiry_follows_the_secret_and_never_marks_a_marketplace_pair() {
        let mut m = meta("gitlab.example.com", None);
        m.kind = CredentialType::GitlabToken;
        m.expires = Some(500);
        assert_eq!(expiry_after_put(&m, None, false), Some(500));
        assert_eq!(expiry_after_put(&m, None, true), None);
        assert_eq!(expiry_after_put(&m, Some(900), true), Some(900));
        assert_eq!(expiry_after_put(&m, Some(0), false), None);
        let pair = meta("repo.magento.com", None);
        assert_eq!(expiry_after_put(&pair, Some(900), false), None);
        // The file keeps it, and an index without it loads as before.
        let mut ix = Index::default();
        ix.upsert(m);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.json");
        Index::save_bytes(&p, &ix.to_bytes()).unwrap();
        assert_eq!(Index::load(&p).unwrap().all()[0].expires, Some(500));
    }

    #[test]
    fn most_specific_scope_wins() {
        let mut ix = Index::default();
        ix.upsert(meta("repo.magento.com", None));
        ix.upsert(meta("repo.magento.com", Some("/srv/clients")));
        ix.upsert(meta("repo.magento.com", Some("/srv/clients/acme")));
        ix.upsert(meta("repo.magento.com", Some("/srv/clients/globex")));
        let o = Origin::parse("repo.magento.com").unwrap();
        let r = |p: Option<&str>| {
            ix.resolve(o.as_str(), p.map(Path::new))
                .and_then(|m| m.project.clone())
        };
        assert_eq!(
            r(Some("/srv/clients/acme")).as_deref(),
            Some("/srv/clients/acme")
        );
        assert_eq!(
            r(Some("/srv/clients/acme/sub")).as_deref(),
            Some("/srv/clients/acme")
        );
        assert_eq!(
            r(Some("/srv/clients/globex")).as_deref(),
            Some("/srv/clients/globex")
        );
        assert_eq!(
            r(Some("/srv/clients/other")).as_deref(),
            Some("/srv/clients")
        );
        // Component-wise: /srv/clients/acme2 is not inside /srv/clients/acme.
        assert_eq!(
            r(Some("/srv/clients/acme2")).as_deref(),
            Some("/srv/clients")
        );
        assert_eq!(r(Some("/home/x")), None);
        assert_eq!(r(None), None);
        assert_eq!(ix.applicable(Some(Path::new("/srv/clients/acme"))).len(), 1);
    }

    /// An index as the previous release wrote it (the wire type, serialized pretty).
    const OLD_INDEX: &str = r#"{
  "format": 1,
  "credentials": [
    {
      "origin": "repo.magento.com",
      "type": "http-basic",
      "project": "/srv/acme",
      "label": "acme key",
      "enabled": false,
      "created": 1700000000,
      "rotated": 1700000100,
      "last_used": 1700000200,
      "has_previous": true,
      "confirm": true,
      "allow_exe": [
        "/usr/bin/php8.2"
      ]
    },
    {
      "origin": "github.com",
      "type": "github-oauth",
      "project": null,
      "label": null,
      "enabled": true,
      "created": 1700000000,
      "rotated": null,
      "last_used": null,
      "has_previous": false
    }
  ]
}
"#;

    #[test]
    fn an_index_written_by_the_old_code_loads_and_is_written_back_the_same() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("index.json");
        std::fs::write(&p, OLD_INDEX).unwrap();
        let ix = Index::load(&p).unwrap();
        let all = ix.all();
        assert_eq!(all.len(), 2);
        let m = &all[1];
        assert_eq!(m.origin.to_string(), "repo.magento.com");
        assert_eq!(m.kind, CredentialType::HttpBasic);
        assert_eq!(m.project.as_deref(), Some("/srv/acme"));
        assert_eq!(m.label.as_deref(), Some("acme key"));
        assert!(!m.enabled && m.has_previous && m.confirm);
        assert_eq!(
            (m.created, m.rotated, m.last_used),
            (1700000000, Some(1700000100), Some(1700000200))
        );
        assert_eq!(m.allow_exe, ["/usr/bin/php8.2"]);
        assert!(all[0].enabled && all[0].project.is_none());
        // Sorted by origin, github.com first: the same text comes back.
        let back: serde_json::Value = serde_json::from_slice(&ix.to_bytes()).unwrap();
        let old: serde_json::Value = serde_json::from_str(OLD_INDEX).unwrap();
        let sorted = serde_json::json!({
            "format": 1,
            "credentials": [old["credentials"][1], old["credentials"][0]],
        });
        assert_eq!(back, sorted);
    }

    #[test]
    fn save_load_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/index.json");
        let mut ix = Index::default();
        ix.upsert(meta("a.example", None));
        ix.upsert(meta("a.example", Some("/p")));
        Index::save_bytes(&p, &ix.to_bytes()).unwrap();
        let back = Index::load(&p).unwrap();
        assert_eq!(back.all(), ix.all());
        assert_eq!(back.counts(), (2, 2));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(matches!(Index::load(&p), Err(IndexError::Corrupt { .. })));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"{not json",
            "a damaged index is kept"
        );
    }
}
