//! The `[team.NAME]` tables of config.toml: added as a block at the end, removed by their
//! header; every other line, comments included, is kept. Each change is parsed back before
//! it replaces the file, atomically.

use super::{check_name, TeamConfig};
use crate::config::{Config, ConfigError};
use std::io;
use std::path::Path;

fn read(path: &Path) -> Result<String, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(ConfigError::Read {
            path: path.into(),
            source,
        }),
    }
}

fn bad(path: &Path, reason: String) -> ConfigError {
    ConfigError::Bad {
        path: path.into(),
        reason,
    }
}

fn write(path: &Path, text: &str) -> Result<(), ConfigError> {
    let w = |source| ConfigError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        crate::paths::create_private_dir(dir).map_err(w)?;
    }
    crate::atomic::write(path, text.as_bytes(), 0o600).map_err(w)
}

fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str(text).map_err(|e| bad(path, e.message().to_owned()))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render(name: &str, t: &TeamConfig) -> String {
    let mut s = format!("\n[team.{name}]\n");
    let addrs: Vec<String> = t.addr.iter().map(|a| quote(a)).collect();
    s.push_str(&format!("addr = [{}]\n", addrs.join(", ")));
    s.push_str(&format!("mount = {}\n", quote(&t.mount)));
    s.push_str(&format!("prefix = {}\n", quote(&t.prefix)));
    s.push_str(&format!("auth = {}\n", quote(t.auth.as_str())));
    if let Some(p) = &t.ca_cert {
        s.push_str(&format!("ca_cert = {}\n", quote(&p.to_string_lossy())));
    }
    for (key, v) in [("role", &t.role), ("jwt_env", &t.jwt_env)] {
        if let Some(v) = v {
            s.push_str(&format!("{key} = {}\n", quote(v)));
        }
    }
    if let Some(p) = &t.token_file {
        s.push_str(&format!("token_file = {}\n", quote(&p.to_string_lossy())));
    }
    if let Some(p) = &t.jwt_file {
        s.push_str(&format!("jwt_file = {}\n", quote(&p.to_string_lossy())));
    }
    for (key, v) in [
        ("cache_ttl", t.cache_ttl),
        ("grace", t.grace),
        ("timeout", t.timeout),
    ] {
        if let Some(d) = v {
            s.push_str(&format!(
                "{key} = {}\n",
                quote(&humantime::format_duration(d).to_string())
            ));
        }
    }
    s
}

/// The team sources in config.toml, by name.
pub fn load(path: &Path) -> Result<Vec<(String, TeamConfig)>, ConfigError> {
    let Some(cfg) = crate::config::load_from(path)? else {
        return Ok(Vec::new());
    };
    cfg.team
        .into_iter()
        .map(|(name, table)| Ok((name.clone(), typed(path, &name, table)?)))
        .collect()
}

/// A `[team.NAME]` table as the settings it holds.
fn typed(path: &Path, name: &str, table: toml::Table) -> Result<TeamConfig, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| bad(path, format!("[team.{name}]: {}", e.message())))
}

/// Adds `[team.NAME]`; refuses a name already there.
pub fn add(path: &Path, name: &str, team: &TeamConfig) -> Result<(), ConfigError> {
    check_name(name).map_err(|e| bad(path, e))?;
    team.validate()
        .map_err(|e| bad(path, format!("team {name}: {e}")))?;
    let old = read(path)?;
    if parse(path, &old)?.team.contains_key(name) {
        return Err(bad(
            path,
            format!("team {name} exists; remove it first (composer-keyd team remove {name})"),
        ));
    }
    let mut text = old;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&render(name, team));
    let parsed = parse(path, &text)?.team.remove(name);
    if parsed.map(|t| typed(path, name, t)).transpose()?.as_ref() != Some(team) {
        return Err(bad(
            path,
            format!("cannot add team {name}; edit it by hand"),
        ));
    }
    write(path, &text)
}

/// Removes `[team.NAME]` and its lines; whether it was there.
pub fn remove(path: &Path, name: &str) -> Result<bool, ConfigError> {
    let old = read(path)?;
    if !parse(path, &old)?.team.contains_key(name) {
        return Ok(false);
    }
    let header = format!("[team.{name}]");
    let mut out = Vec::new();
    let mut skipping = false;
    for l in old.lines() {
        let t = l.trim();
        if t.starts_with('[') {
            skipping = t.split('#').next().map(str::trim) == Some(header.as_str());
        }
        if !skipping {
            out.push(l);
        }
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    if parse(path, &text)?.team.contains_key(name) {
        return Err(bad(
            path,
            format!("cannot remove team {name}; edit it by hand"),
        ));
    }
    write(path, &text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::AuthMethod;
    use std::time::Duration;

    #[test]
    fn add_and_remove_keep_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c/config.toml");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "# mine\nbackend = \"keyring\"\n").unwrap();
        let mut t = TeamConfig::new(vec![
            "https://a.example:8200".into(),
            "https://b.example:8200".into(),
        ]);
        t.ca_cert = Some("/etc/ca \"x\".pem".into());
        t.cache_ttl = Some(Duration::from_secs(90));
        add(&p, "acme", &t).unwrap();
        let mut ci = TeamConfig::new(vec!["http://127.0.0.1:8200".into()]);
        ci.auth = AuthMethod::Jwt;
        ci.jwt_env = Some("CI_JOB_JWT".into());
        ci.role = Some("ci".into());
        add(&p, "ci", &ci).unwrap();
        assert!(add(&p, "acme", &t).is_err(), "no duplicate");
        let all = load(&p).unwrap();
        assert_eq!(
            all,
            vec![("acme".into(), t.clone()), ("ci".into(), ci.clone())]
        );
        assert!(remove(&p, "acme").unwrap());
        assert!(!remove(&p, "acme").unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# mine\nbackend = \"keyring\"\n"),
            "{text}"
        );
        assert_eq!(load(&p).unwrap(), vec![("ci".into(), ci)]);
        assert!(remove(&p, "ci").unwrap());
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "# mine\nbackend = \"keyring\"\n"
        );
        let mut plain = TeamConfig::new(vec!["http://bao.example:8200".into()]);
        assert!(add(&p, "x", &plain).is_err(), "plain http off loopback");
        plain.addr = vec!["https://bao.example".into()];
        assert!(add(&p, "bad name", &plain).is_err());
    }

    /// A team table this version cannot read is an error naming it, for the team commands
    /// and the daemon's teams; the rest of config.toml still reads.
    #[test]
    fn a_bad_team_table_is_named_and_the_rest_still_reads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        std::fs::write(
            &p,
            "backend = \"age-file\"\n[team.acme]\naddr = [\"https://a.example\"]\ngrace = \"soon\"\n",
        )
        .unwrap();
        let e = load(&p).unwrap_err().to_string();
        assert!(e.contains("[team.acme]") && e.contains("soon"), "{e}");
        let cfg = crate::config::load_from(&p).unwrap().unwrap();
        assert_eq!(
            cfg.backend,
            crate::config::BackendChoice::Backend(crate::protocol::BackendKind::AgeFile)
        );
    }
}
