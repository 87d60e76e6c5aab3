//! The user's settings: `$XDG_CONFIG_HOME/composer-keyd/config.toml`, and the `COMPOSER_KEYD_BACKEND` override.

use crate::paths;
use crate::protocol::BackendKind;
use serde::Deserialize;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Overrides `backend` in config.toml.
pub const ENV_BACKEND: &str = "COMPOSER_KEYD_BACKEND";
/// The config file's name in the config directory.
pub const FILE_NAME: &str = "config.toml";

/// Which store the daemon uses: a backend kind, or `auto`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The OS keyring when it answers, else the age file.
    #[default]
    Auto,
    /// Always this backend; the daemon reports its failure rather than fall back.
    Backend(BackendKind),
}

impl BackendChoice {
    /// Parses `auto` or the name of a backend the daemon can run on (`keyring`, `age-file`,
    /// or the age file's old name `vault`, which logs a note).
    pub fn parse(s: &str) -> Option<BackendChoice> {
        let s = s.trim();
        if s == "auto" {
            return Some(BackendChoice::Auto);
        }
        let kind: BackendKind = s.parse().ok().filter(|k: &BackendKind| k.facts().daemon)?;
        if let Some(note) = BackendKind::old_name_note(s) {
            tracing::info!("{note}");
        }
        Some(BackendChoice::Backend(kind))
    }

    /// Every name `parse` takes, for messages.
    pub fn names() -> String {
        let mut names = vec!["auto".to_owned()];
        names.extend(BackendKind::daemon_kinds().map(|k| k.to_string()));
        names.join(", ")
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendChoice::Auto => f.write_str("auto"),
            BackendChoice::Backend(k) => k.fmt(f),
        }
    }
}

impl<'de> Deserialize<'de> for BackendChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BackendChoice::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not a backend: use {}",
                BackendChoice::names()
            ))
        })
    }
}

/// Where the backend choice came from, for `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetBy {
    /// Set by the `COMPOSER_KEYD_BACKEND` environment variable.
    Env,
    /// Set in this config.toml.
    File(PathBuf),
    /// Neither is set: [`BackendChoice::Auto`].
    Default,
}

impl fmt::Display for SetBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetBy::Env => write!(f, "{ENV_BACKEND}"),
            SetBy::File(p) => write!(f, "{}", p.display()),
            SetBy::Default => f.write_str("the default"),
        }
    }
}

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `COMPOSER_KEYD_BACKEND` holds no backend name; holds the value.
    #[error("{ENV_BACKEND}={0:?} is not a backend: use {names}", names = BackendChoice::names())]
    BadEnv(String),
    /// config.toml is not valid TOML or has a bad value.
    #[error("{path}: {reason}")]
    Bad {
        /// The config file.
        path: PathBuf,
        /// The TOML parser's message.
        reason: String,
    },
    /// config.toml exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// config.toml could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The config file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The config directory could not be found (no home) or is not safe to use.
    #[error(transparent)]
    Path(#[from] paths::PathError),
}

/// The settings in config.toml. Keys this version does not know are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Which store the daemon uses; `auto` when the key is absent.
    pub backend: BackendChoice,
    /// Team sources (`[team.NAME]` tables), read beside the local backend: kept as tables
    /// here, given their type by `team::config` (which owns what a team's settings mean).
    pub team: std::collections::BTreeMap<String, toml::Table>,
    /// Days before a credential's expiry that `doctor`, `exec` and the plugin warn
    /// ([`crate::expiry::DEFAULT_WARNING_DAYS`] when absent).
    pub expiry_warning_days: Option<u32>,
}

/// `expiry_warning_days` from config.toml, else the default; a file that does not parse
/// leaves the default (the commands that need the file say what is wrong with it).
pub fn expiry_warning_days() -> u32 {
    let Ok(p) = path() else {
        return crate::expiry::DEFAULT_WARNING_DAYS;
    };
    WARNING_DAYS.read(&p, || {
        load_from(&p)
            .ok()
            .flatten()
            .and_then(|c| c.expiry_warning_days)
            .unwrap_or(crate::expiry::DEFAULT_WARNING_DAYS)
    })
}

/// [`expiry_warning_days`] when it is known without I/O: config.toml is absent, or
/// unchanged since it was last read (`file_memo`); `None` when it must be read.
pub fn expiry_warning_days_cached() -> Option<u32> {
    // Where config.toml is follows from the environment, which a process does not change
    // once it runs; working it out costs more than the check itself.
    static PATH: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| path().ok()).as_deref()?;
    WARNING_DAYS.cached(path, || crate::expiry::DEFAULT_WARNING_DAYS)
}

/// config.toml's `expiry_warning_days` as last read, by the file's stamp.
static WARNING_DAYS: crate::file_memo::FileMemo<u32> = crate::file_memo::FileMemo::new();

/// `$XDG_CONFIG_HOME/composer-keyd/config.toml`.
pub fn path() -> Result<PathBuf, ConfigError> {
    Ok(paths::config_dir()?.join(FILE_NAME))
}

/// Reads config.toml; a missing file gives the defaults.
pub fn load_from(path: &Path) -> Result<Option<Config>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.into(),
                source,
            })
        }
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| ConfigError::Bad {
            path: path.into(),
            reason: format!(
                "{}; `backend` must be one of {}",
                e.message(),
                BackendChoice::names()
            ),
        })
}

/// The backend `COMPOSER_KEYD_BACKEND` forces, if it is set.
pub fn env_backend() -> Result<Option<BackendChoice>, ConfigError> {
    match std::env::var(ENV_BACKEND) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => BackendChoice::parse(&v)
            .map(Some)
            .ok_or(ConfigError::BadEnv(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => {
            Err(ConfigError::BadEnv(v.to_string_lossy().into_owned()))
        }
    }
}

/// The backend to use and where that choice came from: the environment wins over the file.
pub fn backend() -> Result<(BackendChoice, SetBy), ConfigError> {
    if let Some(b) = env_backend()? {
        return Ok((b, SetBy::Env));
    }
    let path = path()?;
    Ok(match load_from(&path)? {
        Some(c) => (c.backend, SetBy::File(path)),
        None => (BackendChoice::Auto, SetBy::Default),
    })
}

/// Sets `backend` in config.toml, keeping every other line (comments included) as it is.
/// The write is atomic; the result is parsed before it replaces the file.
pub fn set_backend(path: &Path, choice: BackendChoice) -> Result<(), ConfigError> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let text = with_backend(&old, choice);
    let parsed: Config = toml::from_str(&text).map_err(|e| ConfigError::Bad {
        path: path.into(),
        reason: format!("cannot set `backend` in it: {}", e.message()),
    })?;
    if parsed.backend != choice {
        return Err(ConfigError::Bad {
            path: path.into(),
            reason: "cannot set `backend` in it; edit it by hand".into(),
        });
    }
    let write = |source| ConfigError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        paths::create_private_dir(dir).map_err(write)?;
    }
    crate::atomic::write(path, text.as_bytes(), 0o600).map_err(write)
}

/// Replaces the top-level `backend = ...` line, or adds one before the first table.
fn with_backend(old: &str, choice: BackendChoice) -> String {
    let line = format!("backend = \"{choice}\"");
    let mut out = Vec::new();
    let mut done = false;
    let mut in_table = false;
    for l in old.lines() {
        let t = l.trim_start();
        if t.starts_with('[') && !done {
            out.push(line.clone());
            done = true;
        }
        in_table |= t.starts_with('[');
        let is_backend = !in_table
            && t.strip_prefix("backend")
                .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_backend {
            if !done {
                out.push(line.clone());
                done = true;
            }
            continue;
        }
        out.push(l.to_owned());
    }
    if !done {
        out.push(line);
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGE_FILE: BackendChoice = BackendChoice::Backend(BackendKind::AgeFile);

    #[test]
    fn parses_and_ignores_unknown_keys() {
        let c: Config = toml::from_str("backend = \"vault\"\nother = 1\n").unwrap();
        assert_eq!(c.backend, AGE_FILE, "the old name still reads");
        let c: Config = toml::from_str("backend = \"age-file\"").unwrap();
        assert_eq!(c.backend, AGE_FILE);
        assert!(toml::from_str::<Config>("backend = \"memory\"").is_err());
        let c: Config = toml::from_str("").unwrap();
        assert_eq!(c.backend, BackendChoice::Auto);
        assert!(toml::from_str::<Config>("backend = \"tpm\"").is_err());
    }

    #[test]
    fn set_backend_keeps_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c/config.toml");
        set_backend(&p, AGE_FILE).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "backend = \"age-file\"\n"
        );
        std::fs::write(
            &p,
            "# mine\nbackend = \"auto\" # was auto\nx = 1\n[t]\nbackend = \"no\"\n",
        )
        .unwrap();
        set_backend(&p, BackendChoice::Backend(BackendKind::Keyring)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# mine\nbackend = \"keyring\"\nx = 1\n[t]\nbackend = \"no\"\n"
        );
        std::fs::write(&p, "[t]\nk = 2\n").unwrap();
        set_backend(&p, AGE_FILE).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "backend = \"age-file\"\n[t]\nk = 2\n"
        );
        assert_eq!(load_from(&p).unwrap().unwrap().backend, AGE_FILE);
    }
}
