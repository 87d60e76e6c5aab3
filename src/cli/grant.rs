//! `grant add|list|revoke`: let another uid (a container's www-data or root) read one project's credentials through a socket of its own.

use super::Ctx;
use anyhow::Context;
use clap::{Args, Subcommand};
use composer_keyd::grant::{self, Grant, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct GrantArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Let uid N read the credentials scoped to DIR (read-only, through its own socket).
    Add {
        /// The uid Composer runs as in the container (33 is Debian's www-data; 0 is root).
        #[arg(long, value_name = "N")]
        uid: u32,
        /// The project directory. A path through a symbolic link that another user owns
        /// (or keeps in a directory they own) is refused: name the real path instead.
        #[arg(long, value_name = "DIR")]
        project: PathBuf,
        /// The grant's name (default: uid<N>-<project's directory name>).
        #[arg(long)]
        name: Option<String>,
        /// Also release unscoped credentials through this grant.
        #[arg(long)]
        include_global: bool,
    },
    /// List grants and their sockets.
    List,
    /// Revoke a grant: its socket goes away and its open connections end.
    Revoke { name: String },
}

pub async fn run(ctx: &Ctx, a: GrantArgs) -> anyhow::Result<ExitCode> {
    let path = grant::registry_path().context("finding the grant registry")?;
    let socket = ctx.client.path().to_path_buf();
    match a.action {
        Action::List => {
            let reg = Registry::load(&path)?;
            if reg.grants.is_empty() {
                println!("No grants.");
            }
            for g in &reg.grants {
                println!(
                    "{}  uid {}  {}{}  socket {}",
                    g.name,
                    g.uid,
                    g.project.display(),
                    if g.include_global {
                        "  (and unscoped)"
                    } else {
                        ""
                    },
                    grant::socket_path(&socket, &g.name).display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Add {
            uid,
            project,
            name,
            include_global,
        } => {
            // Through no link another user could re-point (the real path named as is is).
            let project = grant::project_path(&project, composer_keyd::paths::euid())
                .with_context(|| format!("the project directory {}", project.display()))?;
            let name = name.unwrap_or_else(|| grant::default_name(uid, &project));
            Registry::update(&path, |reg| {
                reg.add(Grant {
                    name: name.clone(),
                    uid,
                    project,
                    include_global,
                })
            })?;
            reload(ctx).await?;
            println!(
                "Granted uid {uid} as {name}; mount {} at /run/composer-keyd.sock (`composer-keyd container ... --uid {uid}` prints it).",
                grant::socket_path(&socket, &name).display()
            );
        }
        Action::Revoke { name } => {
            Registry::update(&path, |reg| reg.revoke(&name))?;
            reload(ctx).await?;
            println!("Revoked {name}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn reload(ctx: &Ctx) -> anyhow::Result<()> {
    let client = ctx.connect().await?;
    client
        .reload_grants()
        .await
        .context("asking the daemon to follow the grant registry")?;
    Ok(())
}
