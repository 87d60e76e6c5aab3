//! auth.json and COMPOSER_AUTH: reading every credential type into entries, building
//! COMPOSER_AUTH for `exec`, and scrubbing moved entries from a file atomically.
//!
//! The JSON is held in an [`AuthDoc`], whose strings are zeroized on drop. Key order is kept
//! (serde_json's `preserve_order`), and files are written as Composer writes them: four-space
//! indentation, unescaped slashes and Unicode, a final newline.

use crate::atomic;
use crate::atomic::{Shared, Stage};
use crate::credential::{redact_userinfo, Credential, CredentialType, Origin};
use crate::secret::Secret;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// Why an auth.json or COMPOSER_AUTH could not be used. Messages never quote a value.
#[derive(Debug, thiserror::Error)]
pub enum AuthJsonError {
    /// The file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The auth.json that was to be read.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The text does not parse as JSON.
    #[error("{what} is not valid JSON (line {line}, column {column}); fix it by hand, nothing was changed")]
    NotJson {
        /// Names the source in the message: a path, or `COMPOSER_AUTH`.
        what: String,
        /// The line of the first error, counted from 1.
        line: usize,
        /// The column of the first error, counted from 1.
        column: usize,
    },
    /// The JSON is valid but its top level is not an object.
    #[error("{what} is not a JSON object; nothing was changed")]
    NotObject {
        /// Names the source in the message: a path, or `COMPOSER_AUTH`.
        what: String,
    },
    /// The scrubbed file could not be written back (or removed); the original is intact.
    #[error("cannot rewrite {path}: {source}")]
    Write {
        /// The auth.json being rewritten.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Another user could redirect the rewrite; nothing was changed.
    #[error("{0}")]
    Untrusted(#[from] atomic::Untrusted),
}

/// One credential found in an auth.json-shaped document.
#[derive(Debug)]
pub struct Entry {
    /// The auth.json type section the entry was under.
    pub kind: CredentialType,
    /// The key as the file spells it (it may differ from the normalized origin).
    pub key: String,
    /// The key normalized the way Composer matches it.
    pub origin: Origin,
    /// The secret fields, checked non-empty.
    pub credential: Credential,
}

/// An entry that cannot be moved, and why; it stays where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The auth.json type key, e.g. `http-basic`, or a type this build does not know.
    pub kind: String,
    /// The key as the file spells it, with any `user:pass@` replaced by `***`.
    pub key: String,
    /// Why it cannot be moved, in a phrase for the user (never quotes a value).
    pub reason: String,
}

/// A parsed auth.json (or COMPOSER_AUTH, or a `config` block): a JSON object whose strings
/// are wiped when it is dropped.
pub struct AuthDoc {
    root: Map<String, Value>,
}

impl std::fmt::Debug for AuthDoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the type keys: the values are secrets.
        f.debug_struct("AuthDoc")
            .field("types", &self.root.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for AuthDoc {
    fn drop(&mut self) {
        for v in self.root.values_mut() {
            wipe(v);
        }
    }
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(m) => m.values_mut().for_each(wipe),
        _ => {}
    }
}

impl AuthDoc {
    /// An empty document.
    pub fn new() -> AuthDoc {
        AuthDoc { root: Map::new() }
    }

    /// Parses JSON text; `what` names the source in errors.
    pub fn parse(bytes: &[u8], what: &str) -> Result<AuthDoc, AuthJsonError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| AuthJsonError::NotJson {
            what: what.to_owned(),
            line: e.line(),
            column: e.column(),
        })?;
        match value {
            Value::Object(root) => Ok(AuthDoc { root }),
            mut other => {
                wipe(&mut other);
                Err(AuthJsonError::NotObject {
                    what: what.to_owned(),
                })
            }
        }
    }

    /// Wraps a `config` block (or any object) taken from a bigger document.
    pub fn from_map(root: Map<String, Value>) -> AuthDoc {
        AuthDoc { root }
    }

    /// The top-level object, for readers that look past the auth types (scan).
    pub fn raw(&self) -> &Map<String, Value> {
        &self.root
    }

    /// Every credential of a known type, and what cannot be moved. Only the auth types are
    /// looked at, so this also reads the `config` block of a composer.json.
    pub fn entries(&self) -> (Vec<Entry>, Vec<Skipped>) {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for (kind_key, group) in &self.root {
            let Value::Object(group) = group else {
                continue;
            };
            let kind = CredentialType::parse(kind_key);
            for (key, value) in group {
                let skip = |reason: &str| Skipped {
                    kind: kind_key.clone(),
                    // A key such as `https://user:pass@host` is not an origin, and is shown.
                    key: redact_userinfo(key).into_owned(),
                    reason: reason.to_owned(),
                };
                let Some(kind) = kind else {
                    if !is_empty_value(value) {
                        skipped.push(skip("composer-keyd does not know this type"));
                    }
                    continue;
                };
                let origin = match Origin::parse(key) {
                    Ok(o) => o,
                    Err(e) => {
                        skipped.push(skip(&format!("the key is not an origin: {e}")));
                        continue;
                    }
                };
                match credential_from_value(kind, value) {
                    Ok(credential) => entries.push(Entry {
                        kind,
                        key: key.clone(),
                        origin,
                        credential,
                    }),
                    Err(reason) => skipped.push(skip(&reason)),
                }
            }
        }
        (entries, skipped)
    }

    /// Every `(type, key)` pair holding something under an object-valued top-level key: what
    /// `scan` reports for an auth.json, including types this build does not know.
    pub fn all_keys(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (kind, group) in &self.root {
            if let Value::Object(group) = group {
                for (key, value) in group {
                    if !is_empty_value(value) {
                        out.push((kind.clone(), key.clone()));
                    }
                }
            }
        }
        out
    }

    /// Removes `type.key` when it still holds `expected`; an emptied type group goes too.
    /// Returns whether it was removed.
    pub fn remove_if_same(
        &mut self,
        kind: CredentialType,
        key: &str,
        expected: &Credential,
    ) -> bool {
        let Some(Value::Object(group)) = self.root.get_mut(kind.as_str()) else {
            return false;
        };
        let same = group
            .get(key)
            .is_some_and(|v| credential_from_value(kind, v).is_ok_and(|c| &c == expected));
        if !same {
            return false;
        }
        if let Some(mut v) = group.shift_remove(key) {
            wipe(&mut v);
        }
        if group.is_empty() {
            self.root.shift_remove(kind.as_str());
        }
        true
    }

    /// Sets `type.origin` to `credential`, replacing what was there.
    pub fn insert(&mut self, origin: &Origin, credential: &Credential) {
        let group = self
            .root
            .entry(credential.kind().as_str())
            .or_insert_with(|| Value::Object(Map::new()));
        if !group.is_object() {
            wipe(group);
            *group = Value::Object(Map::new());
        }
        if let Value::Object(g) = group {
            if let Some(mut old) = g.insert(origin.to_string(), credential_to_value(credential)) {
                wipe(&mut old);
            }
        }
    }

    /// True when nothing but empty objects, arrays and strings is left.
    pub fn holds_nothing(&self) -> bool {
        self.root.values().all(is_empty_value)
    }

    /// Composer's file format: four-space indentation and a final newline.
    pub fn to_pretty(&self) -> Zeroizing<Vec<u8>> {
        let mut buf = Zeroizing::new(Vec::with_capacity(512));
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut *buf, fmt);
        // Serializing a Value into a Vec cannot fail.
        self.root
            .serialize(&mut ser)
            .expect("a JSON value serializes");
        buf.push(b'\n');
        buf
    }

    /// One line of JSON, for COMPOSER_AUTH.
    pub fn to_compact(&self) -> Zeroizing<Vec<u8>> {
        crate::secret::to_json_zeroizing(&self.root)
    }
}

impl Default for AuthDoc {
    fn default() -> Self {
        AuthDoc::new()
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Reads one credential in auth.json's shape for `kind`. The error never holds a value.
pub fn credential_from_value(kind: CredentialType, v: &Value) -> Result<Credential, String> {
    let field = |name: &'static str| -> Result<Secret<String>, String> {
        match v.get(name) {
            Some(Value::String(s)) => Ok(Secret::from(s.as_str())),
            Some(_) => Err(format!("`{name}` is not a string")),
            None => Err(format!("`{name}` is missing")),
        }
    };
    let token = || -> Result<Secret<String>, String> {
        match v {
            Value::String(s) => Ok(Secret::from(s.as_str())),
            _ => Err("expected a token string".to_owned()),
        }
    };
    let cred = match kind {
        CredentialType::HttpBasic => Credential::HttpBasic {
            username: field("username")?,
            password: field("password")?,
        },
        CredentialType::Bearer => Credential::Bearer { token: token()? },
        CredentialType::GithubOauth => Credential::GithubOauth { token: token()? },
        CredentialType::GitlabOauth => Credential::GitlabOauth { token: token()? },
        CredentialType::GitlabToken => match v {
            Value::Object(_) => Credential::GitlabToken {
                token: field("token")?,
                username: v.get("username").map(|_| field("username")).transpose()?,
            },
            _ => Credential::GitlabToken {
                token: token()?,
                username: None,
            },
        },
        // The cached access token and its expiry are derived from the consumer pair;
        // Composer fetches a fresh one, so they are dropped rather than kept.
        CredentialType::BitbucketOauth => Credential::BitbucketOauth {
            consumer_key: field("consumer-key")?,
            consumer_secret: field("consumer-secret")?,
        },
        CredentialType::ForgejoToken => Credential::ForgejoToken {
            username: field("username")?,
            token: field("token")?,
        },
        CredentialType::CustomHeaders => match v {
            Value::Array(lines) => Credential::CustomHeaders {
                headers: lines
                    .iter()
                    .map(|l| match l {
                        Value::String(s) => Ok(Secret::from(s.as_str())),
                        _ => Err("a header is not a string".to_owned()),
                    })
                    .collect::<Result<_, _>>()?,
            },
            _ => return Err("expected a list of header lines".to_owned()),
        },
        // auth.json spells these with underscores, as PHP's ssl context options do.
        CredentialType::ClientCertificate => {
            let path = |name: &'static str| match v.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("`{name}` is not a string")),
            };
            Credential::ClientCertificate {
                local_cert: path("local_cert")?.ok_or("`local_cert` is missing")?,
                local_pk: path("local_pk")?,
                passphrase: match v.get("passphrase") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(field("passphrase")?),
                },
            }
        }
        CredentialType::Unknown => return Err("unknown type".to_owned()),
    };
    cred.validate().map_err(|e| e.to_string())?;
    Ok(cred)
}

/// The auth.json shape of a credential.
pub fn credential_to_value(c: &Credential) -> Value {
    let s = |x: &Secret<String>| Value::String(x.expose().clone());
    let obj = |pairs: &[(&str, &Secret<String>)]| {
        Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), s(v))).collect())
    };
    match c {
        Credential::HttpBasic { username, password } => {
            obj(&[("username", username), ("password", password)])
        }
        Credential::Bearer { token }
        | Credential::GithubOauth { token }
        | Credential::GitlabOauth { token }
        | Credential::GitlabToken {
            token,
            username: None,
        } => s(token),
        Credential::GitlabToken {
            token,
            username: Some(u),
        } => obj(&[("username", u), ("token", token)]),
        Credential::BitbucketOauth {
            consumer_key,
            consumer_secret,
        } => obj(&[
            ("consumer-key", consumer_key),
            ("consumer-secret", consumer_secret),
        ]),
        Credential::ForgejoToken { username, token } => {
            obj(&[("username", username), ("token", token)])
        }
        Credential::CustomHeaders { headers } => Value::Array(headers.iter().map(s).collect()),
        Credential::ClientCertificate {
            local_cert,
            local_pk,
            passphrase,
        } => {
            let mut m = Map::new();
            m.insert("local_cert".into(), Value::String(local_cert.clone()));
            if let Some(pk) = local_pk {
                m.insert("local_pk".into(), Value::String(pk.clone()));
            }
            if let Some(p) = passphrase {
                m.insert("passphrase".into(), s(p));
            }
            Value::Object(m)
        }
    }
}

/// An auth.json on disk.
pub struct AuthFile {
    /// The path as given.
    pub path: PathBuf,
    /// Its parsed content, wiped on drop.
    pub doc: AuthDoc,
}

/// Reads an auth.json; `Ok(None)` when it does not exist.
pub fn read_file(path: &Path) -> Result<Option<AuthFile>, AuthJsonError> {
    let bytes = match fs::read(path) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthJsonError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let doc = AuthDoc::parse(&bytes, &path.display().to_string())?;
    Ok(Some(AuthFile {
        path: path.to_path_buf(),
        doc,
    }))
}

/// What scrubbing did to a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scrubbed {
    /// Rewritten without the moved entries.
    Rewritten {
        /// How many entries were taken out.
        removed: usize,
    },
    /// Nothing was left in it, so it was removed.
    Removed {
        /// How many entries were taken out before it was empty.
        removed: usize,
    },
    /// None of the entries was still there (or the file is gone); nothing was written.
    Untouched,
}

/// Rewrites `path` without the given entries, atomically and keeping its mode (without
/// setuid, setgid or sticky bits); a file left holding nothing is removed. The file is read
/// again first, and an entry is removed only when it still holds the secret that was stored,
/// so a concurrent change is never lost. A symlinked auth.json is rewritten at its target.
/// A file that another user could redirect is refused (see [`atomic::check_target`]).
pub fn scrub(path: &Path, moved: &[&Entry]) -> Result<Scrubbed, AuthJsonError> {
    scrub_with(path, moved, Shared::Refuse, &mut |_| {})
}

/// [`scrub`], with the caller's choice about shared directories, calling `at` at each stage
/// of the rewrite (crash tests).
pub fn scrub_with(
    path: &Path,
    moved: &[&Entry],
    shared: Shared,
    at: &mut dyn FnMut(Stage),
) -> Result<Scrubbed, AuthJsonError> {
    let read_err = |source| AuthJsonError::Read {
        path: path.to_path_buf(),
        source,
    };
    let is_link = match fs::symlink_metadata(path) {
        Ok(m) => m.file_type().is_symlink(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scrubbed::Untouched),
        Err(e) => return Err(read_err(e)),
    };
    if is_link && shared == Shared::Refuse {
        // Whoever can write the link's directory chooses the target.
        let dir = atomic::dir_of(path).map_err(read_err)?;
        atomic::check_target(&dir, &dir.join(path.file_name().unwrap_or_default()))?;
    }
    let target = match fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scrubbed::Untouched),
        Err(e) => return Err(read_err(e)),
    };
    if shared == Shared::Refuse {
        atomic::check_target(&atomic::dir_of(&target).map_err(read_err)?, &target)?;
    }
    let Some(mut file) = read_file(&target)? else {
        return Ok(Scrubbed::Untouched);
    };
    let removed = moved
        .iter()
        .filter(|e| file.doc.remove_if_same(e.kind, &e.key, &e.credential))
        .count();
    if removed == 0 {
        return Ok(Scrubbed::Untouched);
    }
    let write_err = |source: io::Error| match atomic::Untrusted::from_io(&source) {
        Some(u) => AuthJsonError::Untrusted(u.clone()),
        None => AuthJsonError::Write {
            path: path.to_path_buf(),
            source,
        },
    };
    if file.doc.holds_nothing() {
        atomic::remove(&target, shared).map_err(write_err)?;
        return Ok(Scrubbed::Removed { removed });
    }
    let mode = fs::metadata(&target)
        .map_err(write_err)?
        .permissions()
        .mode()
        & 0o777;
    atomic::write_opts(&target, &file.doc.to_pretty(), mode, shared, at).map_err(write_err)?;
    file.path = target;
    Ok(Scrubbed::Rewritten { removed })
}

#[cfg(test)]
mod tests;
