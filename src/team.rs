//! Team sources: credentials read through from OpenBao or HashiCorp Vault (KV v2), never
//! written to disk; their settings, the KV layout, precedence against local credentials, and
//! their typed errors.
//!
//! A team source is not a local backend: it sits beside the store, read on demand and kept
//! only in memory ([`cache`]). `client` speaks HTTP to the engine's addresses in turn,
//! `auth` gets and renews the token, `kv` reads and writes the KV v2 layout, `config`
//! edits the `[team.NAME]` tables of config.toml.

pub mod auth;
pub mod cache;
pub mod client;
pub mod config;
pub mod kv;
pub mod lifecycle;
pub mod sources;

use crate::protocol::ErrorKind;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long a team secret is served from memory before it is read again.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long past its TTL a cached secret is still served while every address fails.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// The whole budget of one request to the engine, every address included: the plugin gives
/// the daemon 1.5 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How the daemon gets its token for a team source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// The token the `bao`/`vault` CLI keeps in `~/.vault-token` (after `bao login`).
    #[default]
    Token,
    /// A role_id and secret_id kept in the local backend, exchanged at `auth/approle/login`.
    Approle,
    /// A JWT (a CI runner's OIDC ID token) from a file or an environment variable,
    /// exchanged at `auth/jwt/login`.
    Jwt,
}

impl AuthMethod {
    /// Parses `token`, `approle` or `jwt`.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "token" => Some(AuthMethod::Token),
            "approle" => Some(AuthMethod::Approle),
            "jwt" => Some(AuthMethod::Jwt),
            _ => None,
        }
    }

    /// The name config.toml and the CLI use.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Approle => "approle",
            AuthMethod::Jwt => "jwt",
        }
    }
}

/// One `[team.NAME]` table of config.toml.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// The engine's addresses, tried in order (`https://`, or `http://` on loopback).
    pub addr: Vec<String>,
    /// The KV v2 mount.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The path under the mount that holds Composer's credentials.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// A PEM file of CA certificates trusted beside the system's roots.
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
    /// How the token is obtained.
    #[serde(default)]
    pub auth: AuthMethod,
    /// `token`: the file holding the token (default `~/.vault-token`, where `bao login`
    /// keeps it).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The auth role (`jwt`: the role at `auth/jwt/login`).
    #[serde(default)]
    pub role: Option<String>,
    /// `jwt`: the file that holds the JWT.
    #[serde(default)]
    pub jwt_file: Option<PathBuf>,
    /// `jwt`: the environment variable that holds the JWT (read by the daemon at login).
    #[serde(default)]
    pub jwt_env: Option<String>,
    /// How long a secret is served from memory (humantime, e.g. `5m`).
    #[serde(default, with = "opt_duration")]
    pub cache_ttl: Option<Duration>,
    /// How long past its TTL a cached secret is served while every address fails.
    #[serde(default, with = "opt_duration")]
    pub grace: Option<Duration>,
    /// The whole budget of one request, every address included.
    #[serde(default, with = "opt_duration")]
    pub timeout: Option<Duration>,
}

fn default_mount() -> String {
    "secret".into()
}

fn default_prefix() -> String {
    "composer".into()
}

mod opt_duration {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a duration: {e}")))
    }
}

impl TeamConfig {
    /// A source with the defaults for everything but its addresses.
    pub fn new(addr: Vec<String>) -> TeamConfig {
        TeamConfig {
            addr,
            mount: default_mount(),
            prefix: default_prefix(),
            ca_cert: None,
            auth: AuthMethod::Token,
            token_file: None,
            role: None,
            jwt_file: None,
            jwt_env: None,
            cache_ttl: None,
            grace: None,
            timeout: None,
        }
    }

    /// The cache TTL in force.
    pub fn cache_ttl(&self) -> Duration {
        self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL)
    }

    /// The outage grace in force.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }

    /// The request budget in force.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// Checks what the engine's paths and URLs are built from.
    pub fn validate(&self) -> Result<(), String> {
        if self.addr.is_empty() {
            return Err("a team source needs at least one --addr".into());
        }
        for a in &self.addr {
            client::Address::parse(a)?;
        }
        check_path_part("mount", &self.mount)?;
        check_path_part("prefix", &self.prefix)?;
        if let Some(r) = &self.role {
            check_path_part("role", r)?;
        }
        if self.auth == AuthMethod::Jwt && self.jwt_file.is_none() && self.jwt_env.is_none() {
            return Err("--auth jwt needs --jwt-file or --jwt-env".into());
        }
        Ok(())
    }
}

/// A team's name: a bare TOML key and a word in messages.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a team name: use 1 to 64 letters, digits, `-` or `_`",
            crate::audit::printable(name)
        ))
    }
}

/// A mount, prefix or role: path segments of letters, digits, `-`, `_`, `.`, joined by `/`,
/// never `.` or `..`.
fn check_path_part(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 256
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {:?} is not a path of letters, digits, `-`, `_` and `.` segments",
            crate::audit::printable(s)
        ))
    }
}

/// A composer.json root package name as a path part: `vendor/name`, lowercase, Composer's
/// characters only.
pub fn check_project(name: &str) -> Result<(), String> {
    let ok = name.len() <= 214
        && name.split_once('/').is_some_and(|(v, n)| {
            [v, n].iter().all(|p| {
                !p.is_empty()
                    && !p.starts_with('.')
                    && p.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)
                    })
            })
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a Composer package name (vendor/name)",
            crate::audit::printable(name)
        ))
    }
}

/// The root package's `name` in DIR/composer.json: the project's name in a team source,
/// the same on every machine.
pub fn project_name(dir: &std::path::Path) -> Result<String, String> {
    let file = dir.join("composer.json");
    let text = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    if text.len() > 1 << 20 {
        return Err(format!("{} is over 1 MiB", file.display()));
    }
    #[derive(Deserialize)]
    struct Root {
        name: Option<String>,
    }
    let root: Root = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    let name = root
        .name
        .ok_or_else(|| format!("{} has no `name`", file.display()))?;
    check_project(&name)?;
    Ok(name)
}

/// Where a credential sits under the prefix: `{prefix}/{origin}` or
/// `{prefix}/projects/{project}/{origin}`.
pub fn secret_path(prefix: &str, project: Option<&str>, origin: &str) -> String {
    match project {
        Some(p) => format!("{prefix}/projects/{p}/{origin}"),
        None => format!("{prefix}/{origin}"),
    }
}

/// One candidate for a lookup: its scope and its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Scoped to the project (a local project directory, or a team's `projects/{name}`).
    pub scoped: bool,
    /// From a team source rather than the local backend.
    pub team: bool,
}

/// The precedence rule, the one place it is decided (README's table):
///
/// | rank | scope    | source |
/// |------|----------|--------|
/// | 1    | project  | local  |
/// | 2    | project  | team   |
/// | 3    | unscoped | local  |
/// | 4    | unscoped | team   |
///
/// A project-scoped credential beats an unscoped one; at the same scope, local beats team, so
/// a developer can override a team entry for a day. Among several team sources, the earlier
/// by name wins (their order in `candidates`). Returns the index of the winner.
pub fn winner(candidates: &[Candidate]) -> Option<usize> {
    let rank = |c: &Candidate| (!c.scoped as u8) * 2 + c.team as u8;
    candidates
        .iter()
        .enumerate()
        .min_by_key(|(i, c)| (rank(c), *i))
        .map(|(i, _)| i)
}

/// Why a team source could not answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TeamError {
    /// The engine answered 403: the token is revoked or its policy does not allow the path.
    #[error("team {team}: token revoked or not allowed to {action} {path}")]
    Forbidden {
        /// The team's name.
        team: String,
        /// `read` or `write`.
        action: &'static str,
        /// The path the policy must allow (under the mount).
        path: String,
    },
    /// No secret at that path.
    #[error("team {team}: no secret at {path}")]
    NotFound {
        /// The team's name.
        team: String,
        /// The path.
        path: String,
    },
    /// Every address failed; holds what each said.
    #[error("team {team}: no address answered ({detail})")]
    Unavailable {
        /// The team's name.
        team: String,
        /// One reason per address.
        detail: String,
    },
    /// The secret is there but is not a credential we can serve.
    #[error("team {team}: {path} does not hold a credential: {reason}")]
    BadData {
        /// The team's name.
        team: String,
        /// The path.
        path: String,
        /// What is wrong (never the data itself).
        reason: String,
    },
    /// The secret's type is not one Composer knows.
    #[error("team {team}: {path} has type {kind:?}, which Composer does not know")]
    UnsupportedType {
        /// The team's name.
        team: String,
        /// The path.
        path: String,
        /// The type it names (printable).
        kind: String,
    },
    /// No token could be had.
    #[error("team {team}: {reason}")]
    Auth {
        /// The team's name.
        team: String,
        /// Why.
        reason: String,
    },
    /// The settings are wrong.
    #[error("team {team}: {reason}")]
    Config {
        /// The team's name.
        team: String,
        /// Why.
        reason: String,
    },
}

impl TeamError {
    /// The wire kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TeamError::Forbidden { .. } => ErrorKind::Forbidden,
            TeamError::NotFound { .. } => ErrorKind::NotFound,
            TeamError::Unavailable { .. } | TeamError::Auth { .. } => ErrorKind::BackendUnavailable,
            TeamError::BadData { .. } => ErrorKind::BadRequest,
            TeamError::UnsupportedType { .. } => ErrorKind::UnsupportedType,
            TeamError::Config { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(scoped: bool, team: bool) -> Candidate {
        Candidate { scoped, team }
    }

    #[test]
    fn precedence_follows_the_table() {
        let all = [
            c(false, true),
            c(false, false),
            c(true, true),
            c(true, false),
        ];
        assert_eq!(winner(&all), Some(3), "project-scoped local wins");
        assert_eq!(
            winner(&all[..3]),
            Some(2),
            "project-scoped team beats unscoped local"
        );
        assert_eq!(winner(&all[..2]), Some(1), "unscoped: local beats team");
        assert_eq!(winner(&all[..1]), Some(0));
        assert_eq!(winner(&[]), None);
        assert_eq!(
            winner(&[c(false, true), c(false, true)]),
            Some(0),
            "the earlier team wins"
        );
    }

    #[test]
    fn paths_and_names() {
        assert_eq!(
            secret_path("composer", Some("acme/shop"), "repo.magento.com"),
            "composer/projects/acme/shop/repo.magento.com"
        );
        assert_eq!(
            secret_path("composer", None, "github.com"),
            "composer/github.com"
        );
        assert!(check_project("acme/shop").is_ok());
        for bad in ["acme", "../x", "acme/..", "Acme/shop", "a/b/c", "a/ b"] {
            assert!(check_project(bad).is_err(), "{bad}");
        }
        assert!(check_name("acme_1-x").is_ok());
        for bad in ["", "a.b", "a b", "a]", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_path_part("mount", "kv/team").is_ok());
        for bad in ["", "a//b", "../x", "a/..", "a?b", "a%2f"] {
            assert!(check_path_part("mount", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_reads_with_defaults() {
        let t: TeamConfig = toml::from_str("addr = [\"http://127.0.0.1:8200\"]\n").unwrap();
        assert_eq!(t, TeamConfig::new(vec!["http://127.0.0.1:8200".into()]));
        assert_eq!(t.cache_ttl(), DEFAULT_CACHE_TTL);
        let t: TeamConfig = toml::from_str(
            "addr = [\"https://a\"]\ncache_ttl = \"30s\"\ngrace = \"2m\"\nauth = \"jwt\"\njwt_env = \"X\"\n",
        )
        .unwrap();
        assert_eq!(t.cache_ttl(), Duration::from_secs(30));
        assert_eq!(t.grace(), Duration::from_secs(120));
        assert!(t.validate().is_ok());
        assert!(toml::from_str::<TeamConfig>("addr = []\ncache_ttl = \"soon\"").is_err());
        assert!(toml::from_str::<TeamConfig>("addr = []\nauth = \"ldap\"").is_err());
        let mut t = TeamConfig::new(vec!["http://example.org:8200".into()]);
        assert!(t.validate().is_err(), "plain http off loopback");
        t.addr = vec!["https://example.org:8200".into()];
        assert!(t.validate().is_ok());
        t.auth = AuthMethod::Jwt;
        assert!(t.validate().is_err(), "jwt without a token source");
    }
}
