//! `team add|list|status|remove`: team sources (OpenBao / HashiCorp Vault, KV v2) in
//! config.toml, and their reachability, token and policy as the engine reports them.

use anyhow::Context;
use clap::{Args, Subcommand};
use composer_keyd::credential::{Credential, CredentialType, Origin};
use composer_keyd::team::sources::Team;
use composer_keyd::team::{self, auth, client::Engine, kv, lifecycle, AuthMethod, TeamConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct TeamArgs {
    #[command(subcommand)]
    action: Action,
}

// Parsed once per run; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Action {
    /// Add a team source: credentials read from an OpenBao or Vault KV v2 mount.
    Add(AddArgs),
    /// List the team sources.
    List,
    /// Show each address's state, the token's TTL and what its policy allows.
    Status {
        /// One team (default: all).
        name: Option<String>,
    },
    /// Remove a team source (nothing in the engine changes).
    Remove { name: String },
    /// Store an approle's role_id and secret_id (read from a no-echo prompt or stdin) in the
    /// local backend, for `--auth approle`.
    Login { name: String },
}

#[derive(Args, Debug)]
struct AddArgs {
    /// The team's name (letters, digits, `-`, `_`).
    name: String,
    /// The engine's address (https://, or http:// on loopback); repeat for a cluster, tried
    /// in order.
    #[arg(long = "addr", value_name = "URL", required = true)]
    addr: Vec<String>,
    /// The KV v2 mount.
    #[arg(long, default_value = "secret")]
    mount: String,
    /// The path under the mount that holds the credentials.
    #[arg(long, default_value = "composer")]
    prefix: String,
    /// A PEM file of CA certificates trusted beside the system's.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// token (the bao/vault CLI's ~/.vault-token), approle or jwt.
    #[arg(long, default_value = "token", value_parser = ["token", "approle", "jwt"])]
    auth: String,
    /// token: the file holding the token (default: ~/.vault-token).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The auth role (jwt: the role at auth/jwt/login).
    #[arg(long)]
    role: Option<String>,
    /// jwt: the file holding the JWT.
    #[arg(long, value_name = "FILE")]
    jwt_file: Option<PathBuf>,
    /// jwt: the environment variable holding the JWT.
    #[arg(long, value_name = "VAR")]
    jwt_env: Option<String>,
    /// How long a secret is served from memory (e.g. 5m).
    #[arg(long, value_parser = humantime::parse_duration)]
    cache_ttl: Option<Duration>,
    /// How long past the TTL cached secrets are served while every address fails (e.g. 1h).
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
}

pub async fn run(ctx: &super::Ctx, a: TeamArgs) -> anyhow::Result<ExitCode> {
    let path = composer_keyd::config::path().context("finding config.toml")?;
    match a.action {
        Action::Login { name } => {
            let cfg = team::config::load(&path)?
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| c)
                .ok_or_else(|| anyhow::anyhow!("no team {name} in {}", path.display()))?;
            if cfg.auth != AuthMethod::Approle {
                anyhow::bail!("team {name} uses --auth {}, not approle", cfg.auth.as_str());
            }
            let origin = Origin::parse(&auth::approle_origin(&name))?;
            let fields =
                super::prompt::read_fields(&["role_id", "secret_id"], &format!("team {name}"))?;
            let credential = Credential::from_fields(CredentialType::HttpBasic, fields)?;
            super::lock::create_vault_if_missing(ctx).await?;
            let put = composer_keyd::protocol::PutCredential {
                credential,
                label: Some(format!("approle login of team {name}")),
                rotate: false,
                no_clobber: false,
                confirm: None,
                allow_exe: None,
                expires: None,
                confirm_scope: None,
            };
            ctx.connect()
                .await?
                .put_credential(&origin, None, &put)
                .await?;
            println!("Stored the approle login of team {name} in the local backend ({origin}).");
            Ok(ExitCode::SUCCESS)
        }
        Action::Add(a) => {
            let ca_cert = match a.ca_cert {
                Some(p) => Some(
                    std::fs::canonicalize(&p)
                        .with_context(|| format!("the CA file {}", p.display()))?,
                ),
                None => None,
            };
            let jwt_file = match a.jwt_file {
                Some(p) => Some(
                    std::path::absolute(&p)
                        .with_context(|| format!("the JWT file {}", p.display()))?,
                ),
                None => None,
            };
            let token_file = match a.token_file {
                Some(p) => Some(
                    std::path::absolute(&p)
                        .with_context(|| format!("the token file {}", p.display()))?,
                ),
                None => None,
            };
            let cfg = TeamConfig {
                token_file,
                mount: a.mount,
                prefix: a.prefix,
                ca_cert,
                auth: AuthMethod::parse(&a.auth).expect("clap checked it"),
                role: a.role,
                jwt_file,
                jwt_env: a.jwt_env,
                cache_ttl: a.cache_ttl,
                grace: a.grace,
                ..TeamConfig::new(a.addr)
            };
            team::config::add(&path, &a.name, &cfg)?;
            println!(
                "Added team {} ({}); the daemon reads it from its next start.",
                a.name,
                cfg.addr.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Action::List => {
            let teams = team::config::load(&path)?;
            if teams.is_empty() {
                println!("No team sources.");
            }
            for (name, t) in teams {
                println!(
                    "{name}  {}  {}/{}  auth {}",
                    t.addr.join(","),
                    t.mount,
                    t.prefix,
                    t.auth.as_str()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Remove { name } => {
            if team::config::remove(&path, &name)? {
                println!("Removed team {name}.");
                Ok(ExitCode::SUCCESS)
            } else {
                anyhow::bail!("no team {name} in {}", path.display())
            }
        }
        Action::Status { name } => {
            let teams = team::config::load(&path)?;
            let chosen: Vec<_> = teams
                .into_iter()
                .filter(|(n, _)| name.as_ref().is_none_or(|w| w == n))
                .collect();
            if chosen.is_empty() {
                match name {
                    Some(n) => anyhow::bail!("no team {n} in {}", path.display()),
                    None => println!("No team sources."),
                }
            }
            let mut ok = true;
            for (name, cfg) in chosen {
                ok &= status(&name, &cfg).await;
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// One team's report; whether its engine answers and the token may read the prefix.
pub async fn status(name: &str, cfg: &TeamConfig) -> bool {
    println!(
        "team {name}: mount {}, prefix {}, auth {}",
        cfg.mount,
        cfg.prefix,
        cfg.auth.as_str()
    );
    let engine = match Engine::new(name, cfg) {
        Ok(e) => e,
        Err(e) => {
            println!("  {e}");
            return false;
        }
    };
    let mut any = false;
    for (i, addr) in engine.addrs().iter().enumerate() {
        let state = match engine.probe(i, "sys/health").await {
            Ok(r) => health(r.status),
            Err(why) => format!("down: {why}"),
        };
        any |= state == "active" || state == "standby";
        println!("  {addr}  {state}");
    }
    if cfg.auth == AuthMethod::Approle {
        println!("  token: approle logins are made by the daemon; not checked here");
        return any;
    }
    let session = match auth::session(&engine, cfg, None).await {
        Ok(s) => s,
        Err(e) => {
            println!("  token: {e}");
            return false;
        }
    };
    match session.ttl_left() {
        Some(t) => println!(
            "  token: ttl {}, {}",
            humantime::format_duration(Duration::from_secs(t.as_secs())),
            if session.renewable {
                "renewable"
            } else {
                "not renewable"
            }
        ),
        None => println!("  token: no expiry"),
    }
    // A concrete child of the prefix: capabilities are asked of a path, and policies name
    // the prefix with a glob.
    let data = format!("{}/data/{}/repo.example", cfg.mount, cfg.prefix);
    let meta = format!("{}/metadata/{}/repo.example", cfg.mount, cfg.prefix);
    match kv::capabilities(&engine, &session.token, &[data.clone(), meta.clone()]).await {
        Ok(caps) => {
            let has = |p: &str, c: &str| {
                caps.get(p)
                    .is_some_and(|l| l.iter().any(|x| x == c || x == "root"))
            };
            let read = has(&data, "read");
            let write = has(&data, "create") || has(&data, "update");
            println!(
                "  policy on {}/{}/*: read {}, write {}, metadata {}",
                cfg.mount,
                cfg.prefix,
                yes(read),
                yes(write),
                yes(has(&meta, "update") || has(&meta, "delete"))
            );
            any && read
        }
        Err(e) => {
            println!("  policy: {e}");
            false
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// What `sys/health`'s status means.
fn health(status: u16) -> String {
    match status {
        200 => "active".into(),
        429 | 473 => "standby".into(),
        472 => "DR secondary".into(),
        501 => "not initialized".into(),
        503 => "sealed".into(),
        s => format!("answered {s}"),
    }
}

/// A change to a team entry (`add|rotate|disable|enable|remove --team NAME`).
pub enum Change {
    /// `add` (`rotate: false`) or `rotate`: a new KV version.
    Put {
        credential: Credential,
        label: Option<String>,
        rotate: bool,
    },
    /// `rotate --rollback`: the previous version's data as a new version.
    Rollback,
    /// `enable` (true) or `disable` (false).
    Enable(bool),
    /// `remove`: the metadata and every version.
    Remove,
}

/// The team source `name` from config.toml, and the path of `origin` (scoped by DIR's
/// composer.json `name` when `project` is given).
fn entry(
    name: &str,
    origin: &Origin,
    project: Option<&std::path::Path>,
) -> anyhow::Result<(Team, String)> {
    let path = composer_keyd::config::path().context("finding config.toml")?;
    let cfg = team::config::load(&path)?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| c)
        .ok_or_else(|| anyhow::anyhow!("no team {name} in {}", path.display()))?;
    let project = project
        .map(team::project_name)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let at = team::secret_path(&cfg.prefix, project.as_deref(), origin.as_str());
    Ok((Team::new(name, cfg, None)?, at))
}

/// The type of the team entry, for `rotate` without `--type`.
pub async fn current_kind(
    name: &str,
    origin: &Origin,
    project: Option<&std::path::Path>,
) -> anyhow::Result<CredentialType> {
    let (t, at) = entry(name, origin, project)?;
    Ok(lifecycle::current(&t, &at).await?.credential.kind())
}

/// Makes `change` on the team entry for `origin`.
pub async fn change(
    name: &str,
    origin: &Origin,
    project: Option<&std::path::Path>,
    change: Change,
) -> anyhow::Result<ExitCode> {
    let (t, at) = entry(name, origin, project)?;
    let shown = format!("{at} in team {name}");
    match change {
        Change::Put {
            credential,
            label,
            rotate,
        } => {
            if rotate {
                // Rotating what is not there is a mistake, as it is locally.
                lifecycle::current(&t, &at).await?;
            }
            let v = lifecycle::put(&t, &at, &credential, label.as_deref()).await?;
            let verb = if rotate { "Rotated" } else { "Added" };
            println!("{verb} {shown}: version {v}.");
        }
        Change::Rollback => {
            let v = lifecycle::rollback(&t, &at).await?;
            println!("Rolled back {shown}: version {v} holds the previous data.");
        }
        Change::Enable(on) => {
            lifecycle::set_enabled(&t, &at, on).await?;
            println!("{} {shown}.", if on { "Enabled" } else { "Disabled" });
        }
        Change::Remove => {
            lifecycle::remove(&t, &at).await?;
            println!("Removed {shown} (every version).");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One team row of `list`, from metadata alone: no secret is read, so the type is not
/// known (`(team)` in the table, `null` in JSON).
pub enum ListRow {
    /// An entry under the team's prefix.
    Entry {
        /// The team's name.
        team: String,
        /// The origin it is for.
        origin: String,
        /// The root package name of its project (`projects/{vendor}/{name}/`), or `None`.
        project: Option<String>,
        /// Not `disabled` in its custom metadata.
        enabled: bool,
        /// The `label` in its custom metadata.
        label: Option<String>,
        /// Its current KV v2 version.
        version: u64,
    },
    /// A team that could not answer.
    Unavailable {
        /// The team's name.
        team: String,
        /// Why (never a secret).
        error: String,
    },
}

impl ListRow {
    /// The table's cells: ORIGIN TYPE PROJECT STATE LAST-USED EXPIRES LABEL SOURCE.
    pub fn cells(&self) -> [String; 8] {
        match self {
            ListRow::Entry {
                team,
                origin,
                project,
                enabled,
                label,
                version,
            } => [
                origin.clone(),
                "(team)".into(),
                project.clone().unwrap_or_else(|| "(all projects)".into()),
                if *enabled { "enabled" } else { "DISABLED" }.into(),
                "-".into(),
                "-".into(),
                label.clone().unwrap_or_default(),
                format!("team {team} v{version}"),
            ],
            ListRow::Unavailable { team, error } => [
                "-".into(),
                "-".into(),
                "-".into(),
                "UNAVAILABLE".into(),
                "-".into(),
                "-".into(),
                error.clone(),
                format!("team {team}"),
            ],
        }
    }

    /// `list --json`'s object: the fields a local entry has that a team entry can say, and
    /// `source` as the table shows it, with `team` and `version` apart.
    pub fn json(&self) -> serde_json::Value {
        match self {
            ListRow::Entry {
                team,
                origin,
                project,
                enabled,
                label,
                version,
            } => serde_json::json!({
                "origin": origin,
                "type": null,
                "project": project,
                "label": label,
                "enabled": enabled,
                "source": format!("team {team} v{version}"),
                "team": team,
                "version": version,
            }),
            ListRow::Unavailable { team, error } => serde_json::json!({
                "source": format!("team {team}"),
                "team": team,
                "error": error,
            }),
        }
    }
}

/// `list`'s rows for team entries, from their metadata alone: unscoped ones and each
/// project's, with `team NAME vN` as the source. A team that cannot answer gets one row
/// saying so.
pub async fn list_rows() -> Vec<ListRow> {
    let Ok(path) = composer_keyd::config::path() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    let teams = team::config::load(&path).unwrap_or_default();
    if !teams.is_empty() {
        // The token is read here: as for the commands that hold secrets.
        composer_keyd::harden::harden_cli();
    }
    for (name, cfg) in teams {
        let Ok(t) = Team::new(&name, cfg.clone(), None) else {
            continue;
        };
        if let Err(e) = team_rows(&t, &mut rows).await {
            rows.push(ListRow::Unavailable {
                team: name,
                error: e.to_string(),
            });
        }
    }
    rows
}

async fn team_rows(t: &Team, rows: &mut Vec<ListRow>) -> Result<(), team::TeamError> {
    let token = t.token().await?;
    let (e, m, p) = (t.engine(), &t.cfg.mount, &t.cfg.prefix);
    let mut paths: Vec<(Option<String>, String)> = Vec::new();
    for k in kv::list(e, &token, m, p).await? {
        if !k.ends_with('/') {
            paths.push((None, k));
        }
    }
    for vendor in kv::list(e, &token, m, &format!("{p}/projects")).await? {
        let Some(vendor) = vendor.strip_suffix('/') else {
            continue;
        };
        for pkg in kv::list(e, &token, m, &format!("{p}/projects/{vendor}")).await? {
            let Some(pkg) = pkg.strip_suffix('/') else {
                continue;
            };
            let project = format!("{vendor}/{pkg}");
            for k in kv::list(e, &token, m, &format!("{p}/projects/{project}")).await? {
                if !k.ends_with('/') {
                    paths.push((Some(project.clone()), k));
                }
            }
        }
    }
    for (project, origin) in paths {
        let at = team::secret_path(p, project.as_deref(), &origin);
        let (version, custom) = kv::metadata(e, &token, m, &at).await?;
        rows.push(ListRow::Entry {
            team: t.name.clone(),
            origin,
            project,
            enabled: custom.get("disabled").is_none_or(|v| v != "true"),
            label: custom.get("label").cloned(),
            version,
        });
    }
    Ok(())
}
