//! Finding plaintext Composer credentials: auth.json files, `config` blocks and repository
//! URLs in composer.json/config.json/composer.lock, COMPOSER_AUTH, git remotes, and a git history.
//!
//! A [`Finding`] names a file, an origin and a type, never the secret.

use crate::atomic::leftover_base;
use crate::authjson::AuthDoc;
use crate::credential::{redact_userinfo, CredentialType, Origin};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Files larger than this are not read (no Composer file is near it).
const MAX_FILE: u64 = 32 << 20;
/// How deep the directory walk goes.
const MAX_DEPTH: usize = 64;

/// One plaintext credential.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// The file (or `$COMPOSER_AUTH`).
    pub file: String,
    /// The commit holding it, for `--git-history` finds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Where in the file, as a JSON path (e.g. `config.http-basic`).
    pub at: String,
    /// The origin it is for, or `-` when none can be told.
    pub origin: String,
    /// The auth.json type, or `url-credentials`, `auth-header`, `unreadable`,
    /// [`LEFTOVER_TEMP`].
    #[serde(rename = "type")]
    pub kind: String,
}

impl Finding {
    /// One line for people: file, origin, type; never the secret.
    pub fn line(&self) -> String {
        let commit = self
            .commit
            .as_deref()
            .map(|c| format!(" (commit {c})"))
            .unwrap_or_default();
        format!(
            "{}{commit}: {} for {} at {}",
            self.file, self.kind, self.origin, self.at
        )
    }
}

/// Why a scan could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The directory to scan is not in a git work tree; holds it.
    #[error("{0} is not inside a git repository")]
    NotARepo(PathBuf),
    /// git could not be run, or failed; holds the reason.
    #[error("running git failed: {0}")]
    Git(String),
}

/// What a file is, from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileKind {
    Auth,
    Composer,
}

fn kind_of(name: &str) -> Option<FileKind> {
    match name {
        "auth.json" => Some(FileKind::Auth),
        "composer.json" | "composer.lock" => Some(FileKind::Composer),
        _ => None,
    }
}

/// Finds credentials in one file's bytes: `(origin, type, where)` for each.
fn analyze(kind: FileKind, bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut hits = analyze_raw(kind, bytes);
    for (_, _, at) in &mut hits {
        // Object keys on the way may be URLs with a password in them.
        if let std::borrow::Cow::Owned(clean) = redact_userinfo(at) {
            *at = clean;
        }
    }
    hits
}

fn analyze_raw(kind: FileKind, bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut hits = Vec::new();
    let doc = match AuthDoc::parse(bytes, "file") {
        Ok(d) => d,
        Err(_) if kind == FileKind::Auth && !bytes.iter().all(u8::is_ascii_whitespace) => {
            // A broken auth.json may still hold secrets; say so rather than pass it.
            return vec![("-".into(), "unreadable".into(), "(not valid JSON)".into())];
        }
        Err(_) => return hits,
    };
    if kind == FileKind::Auth {
        for (t, key) in doc.all_keys() {
            hits.push((origin_of_key(&key), t.clone(), t));
        }
        return hits;
    }
    let root = doc.raw();
    if let Some(Value::Object(config)) = root.get("config") {
        for (t, group) in config {
            if CredentialType::parse(t).is_none() {
                continue;
            }
            if let Value::Object(g) = group {
                for (key, v) in g {
                    if !is_blank(v) {
                        hits.push((origin_of_key(key), t.clone(), format!("config.{t}")));
                    }
                }
            }
        }
    }
    if let Some(repos) = root.get("repositories") {
        let list: Vec<(String, &Value)> = match repos {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("[{i}]"), v))
                .collect(),
            Value::Object(m) => m.iter().map(|(k, v)| (format!(".{k}"), v)).collect(),
            _ => Vec::new(),
        };
        for (name, repo) in list {
            let origin = repo
                .get("url")
                .and_then(Value::as_str)
                .and_then(|u| Origin::from_url(u).ok())
                .map_or_else(|| "-".to_owned(), |o| o.to_string());
            let headers = repo.pointer("/options/http/header");
            let headers: Vec<&str> = match headers {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(s)) => vec![s.as_str()],
                _ => Vec::new(),
            };
            if headers.iter().any(|h| is_auth_header(h)) {
                hits.push((
                    origin,
                    "auth-header".into(),
                    format!("repositories{name}.options.http.header"),
                ));
            }
        }
    }
    for (key, value) in root {
        walk_strings(value, &mut key.clone(), &mut |path, s| {
            for origin in urls_with_credentials(s) {
                hits.push((origin, "url-credentials".to_owned(), path.to_owned()));
            }
        });
    }
    hits
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn origin_of_key(key: &str) -> String {
    // A key that is not an origin is shown as written, less any userinfo (a password).
    Origin::parse(key).map_or_else(
        |_| redact_userinfo(key).chars().take(100).collect(),
        |o| o.to_string(),
    )
}

fn is_auth_header(h: &str) -> bool {
    let name = h.split(':').next().unwrap_or_default().trim();
    ["authorization", "private-token", "x-api-key", "job-token"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

fn walk_strings(v: &Value, path: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(path, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_strings(x, path, f);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                walk_strings(x, path, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The origins of `http(s)://user[:pass]@host` URLs inside `s`. Placeholders such as
/// `${TOKEN}@` or `%env%@` are not secrets and are passed.
pub fn urls_with_credentials(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = s[from..].find("://") {
        let sep = from + at;
        from = sep + 3;
        let scheme_start = s[..sep]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let scheme = s[scheme_start..sep].to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "git+https" | "git+http") {
            continue;
        }
        let rest = &s[from..];
        let end = rest
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        let Some((userinfo, host)) = authority.rsplit_once('@') else {
            continue;
        };
        if userinfo.is_empty() || userinfo.starts_with(['$', '%', '{']) {
            continue;
        }
        out.push(Origin::parse(host).map_or_else(|_| "-".to_owned(), |o| o.to_string()));
    }
    out
}

/// Scans files and directories. `home` is COMPOSER_HOME: its `config.json` is read too.
/// Returns the findings and the paths that could not be read.
pub fn scan_paths(paths: &[PathBuf], home: Option<&Path>) -> (Vec<Finding>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let home = home.and_then(|h| std::fs::canonicalize(h).ok());
    let home = home.as_deref();
    for p in paths {
        let meta = match std::fs::metadata(p) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{}: {e}", p.display()));
                continue;
            }
        };
        if meta.is_dir() {
            walk(p, 0, home, &mut seen, &mut found, &mut problems);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if leftover_base(name).is_some() && meta.is_file() {
                found.push(leftover_finding(p));
                continue;
            }
            let kind = kind_of(name).unwrap_or(FileKind::Composer);
            scan_file(p, kind, &mut seen, &mut found, &mut problems);
        }
    }
    found.sort();
    found.dedup();
    (found, problems)
}

fn walk(
    dir: &Path,
    depth: usize,
    home: Option<&Path>,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut Vec<Finding>,
    problems: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    let is_home = home.is_some_and(|h| std::fs::canonicalize(dir).is_ok_and(|d| d == h));
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if ft.is_dir() {
            // History is for --git-history; the object store is not plaintext files.
            if name != ".git" {
                walk(&path, depth + 1, home, seen, found, problems);
            } else {
                remotes::scan_git_dir(&path, found, problems);
            }
        } else if ft.is_file() && leftover_base(&name).is_some() {
            found.push(leftover_finding(&path));
        } else if ft.is_file() {
            let kind = match kind_of(&name) {
                Some(k) => k,
                None if is_home && name == "config.json" => FileKind::Composer,
                None => continue,
            };
            scan_file(&path, kind, seen, found, problems);
        }
    }
}

/// The kind of finding for a temp file that a killed write left behind.
pub const LEFTOVER_TEMP: &str = "leftover-temp-file";

/// A temp file of ours that a killed write left: it may hold a whole auth.json in plaintext.
fn leftover_finding(path: &Path) -> Finding {
    Finding {
        file: path.display().to_string(),
        commit: None,
        at: "(the whole file: left by an interrupted write)".into(),
        origin: "-".into(),
        kind: LEFTOVER_TEMP.into(),
    }
}

fn scan_file(
    path: &Path,
    kind: FileKind,
    seen: &mut BTreeSet<PathBuf>,
    found: &mut Vec<Finding>,
    problems: &mut Vec<String>,
) {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(canon) {
        return;
    }
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    for (origin, t, at) in analyze(kind, &bytes) {
        found.push(Finding {
            file: path.display().to_string(),
            commit: None,
            at,
            origin,
            kind: t,
        });
    }
}

fn read_bounded(path: &Path) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    let f = std::fs::File::open(path)?;
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    f.take(MAX_FILE).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Findings in a COMPOSER_AUTH value.
pub fn scan_env(value: &str) -> Vec<Finding> {
    let file = "$COMPOSER_AUTH".to_owned();
    let hits = analyze(FileKind::Auth, value.as_bytes());
    hits.into_iter()
        .map(|(origin, kind, at)| Finding {
            file: file.clone(),
            commit: None,
            at: if at.starts_with('(') {
                at
            } else {
                "environment".into()
            },
            origin,
            kind,
        })
        .collect()
}

mod git;
mod remotes;
pub use git::scan_git_history;

#[cfg(test)]
mod tests;
