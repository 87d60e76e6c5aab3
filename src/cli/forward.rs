//! `forward add|list|revoke`: doors for `ssh -R`, each a socket that serves reads of its listed origins (or one project's credentials) to whatever reaches the remote end, audited as `forward NAME`.

use super::Ctx;
use anyhow::Context;
use clap::{Args, Subcommand};
use composer_keyd::forward::{self, Forward, Owner, Registry};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ForwardArgs {
    #[command(subcommand)]
    action: Action,
}

/// What a door serves and for how long (shared with `composer-keyd ssh`).
#[derive(Args, Debug, Clone, Default)]
pub struct DoorArgs {
    /// An origin the door serves (repeat for more): `repo.magento.com`, `host:8443`.
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
    /// Serve the credentials this local project's lookups find (and unscoped ones).
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Confirm each release on this desktop (askpass), naming the door and the origin.
    #[arg(long)]
    pub confirm: bool,
    /// End the door after this long (`90m`, `8h`); `forward add` defaults to 12h.
    #[arg(long, value_name = "DUR", value_parser = super::duration::parse)]
    pub expires: Option<Duration>,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Make a door: a socket to put at the remote end of `ssh -R` (prints the ssh form).
    Add {
        name: String,
        #[command(flatten)]
        door: DoorArgs,
    },
    /// List doors, their sockets and what they serve.
    List,
    /// Revoke a door: its socket goes away and its open connections end at once.
    Revoke { name: String },
}

pub async fn run(ctx: &Ctx, a: ForwardArgs) -> anyhow::Result<ExitCode> {
    let path = forward::registry_path().context("finding the forward registry")?;
    let socket = ctx.client.path().to_path_buf();
    match a.action {
        Action::List => {
            let reg = Registry::load(&path)?;
            let now = forward::now();
            if reg.forwards.is_empty() {
                println!("No forward doors.");
            }
            for f in &reg.forwards {
                println!(
                    "{}  {}{}{}  socket {}",
                    f.name,
                    serves(f),
                    if f.confirm { "  confirm" } else { "" },
                    lifetime(f, now),
                    forward::socket_path(&socket, &f.name).display()
                );
            }
        }
        Action::Add { name, door } => {
            let f = make(ctx, name, door, None).await?;
            println!(
                "Forward {} serves {}{}; its socket is {}.",
                f.name,
                serves(&f),
                lifetime(&f, forward::now()),
                forward::socket_path(&socket, &f.name).display()
            );
            println!(
                "Use it with `composer-keyd ssh --forward {} HOST`, or `composer-keyd ssh --forward {} --config FILE HOST` for ~/.ssh/config.",
                f.name, f.name
            );
        }
        Action::Revoke { name } => {
            revoke(ctx, &name).await?;
            println!("Revoked {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serves(f: &Forward) -> String {
    match &f.project {
        Some(p) => format!("project {}", p.display()),
        None => format!("origins {}", f.origins.join(", ")),
    }
}

fn lifetime(f: &Forward, now: u64) -> String {
    let mut s = String::new();
    if let Some(t) = f.expires_at {
        s.push_str(&format!("  expires in {}s", t.saturating_sub(now)));
    }
    if let Some(o) = f.owner {
        s.push_str(&format!("  until pid {} exits", o.pid));
    }
    if !f.live(now) {
        s.push_str("  (ended)");
    }
    s
}

/// Registers a door and has the daemon open its socket. `owner` ends it when that process
/// exits; without one and without `--expires` it lasts [`forward::DEFAULT_LIFETIME_SECS`].
pub async fn make(
    ctx: &Ctx,
    name: String,
    door: DoorArgs,
    owner: Option<Owner>,
) -> anyhow::Result<Forward> {
    let project = match &door.project {
        Some(p) => Some(
            std::fs::canonicalize(p)
                .with_context(|| format!("the project directory {}", p.display()))?,
        ),
        None => None,
    };
    let mut origins = Vec::new();
    for o in &door.origins {
        let parsed: composer_keyd::credential::Origin = o
            .parse()
            .map_err(|e| anyhow::anyhow!("--origin {o}: {e}"))?;
        origins.push(parsed.to_string());
    }
    let lifetime = door.expires.map(|d| d.as_secs().max(1)).or(match owner {
        Some(_) => None,
        None => Some(forward::DEFAULT_LIFETIME_SECS),
    });
    let f = Forward {
        name,
        origins,
        project,
        confirm: door.confirm,
        expires_at: lifetime.map(|s| forward::now() + s),
        owner,
    };
    let path = forward::registry_path().context("finding the forward registry")?;
    let added = f.clone();
    Registry::update(&path, move |reg| {
        reg.prune(forward::now());
        reg.add(added)
    })?;
    if let Err(e) = reload(ctx).await {
        let _ = Registry::update(&path, |reg| reg.revoke(&f.name));
        return Err(e);
    }
    Ok(f)
}

/// Removes a door from the registry and has the daemon close it and its connections.
pub async fn revoke(ctx: &Ctx, name: &str) -> anyhow::Result<()> {
    let path = forward::registry_path().context("finding the forward registry")?;
    Registry::update(&path, |reg| reg.revoke(name))?;
    reload(ctx).await
}

async fn reload(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    client
        .reload_forwards()
        .await
        .context("asking the daemon to follow the forward registry")?;
    Ok(())
}

/// The socket of door `name` for the daemon at `main_socket`.
pub fn socket(main_socket: &Path, name: &str) -> PathBuf {
    forward::socket_path(main_socket, name)
}
