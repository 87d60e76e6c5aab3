//! `exec`: runs a command with COMPOSER_AUTH holding the credentials that apply to a project,
//! for containers, CI and machines without the plugin.
//!
//! The command replaces this process (execve), so the variable exists only in its
//! environment, no composer-keyd process keeps a copy, signals reach it directly, and its
//! exit code is the exit code.

use super::Ctx;
use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::authjson::AuthDoc;
use composer_keyd::client::ClientError;
use composer_keyd::protocol::ErrorKind;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The project whose credentials apply (default: the project around the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The command and its arguments, after `--`.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    command: Vec<OsString>,
}

/// The project directory to resolve credentials for, canonical.
pub fn project_dir(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => std::fs::canonicalize(d)
            .with_context(|| format!("the project directory {}", d.display())),
        None => {
            let cwd = std::env::current_dir().context("the current directory")?;
            Ok(composer_keyd::composer_home::find_project(&cwd)
                .map(|p| p.root)
                .unwrap_or(cwd))
        }
    }
}

pub async fn run(ctx: &Ctx, a: ExecArgs) -> anyhow::Result<ExitCode> {
    let dir = project_dir(a.project.as_ref())?;
    let dir_s = dir.to_string_lossy().into_owned();
    let client = ctx.connect().await?;
    let list = client.origins(&dir_s).await?;

    let mut doc = match std::env::var("COMPOSER_AUTH") {
        Ok(v) if !v.trim().is_empty() => {
            let v = zeroize::Zeroizing::new(v);
            eprintln!("composer-keyd: COMPOSER_AUTH is already set; its entries are kept where composer-keyd has none (move them in with `composer-keyd import --from-env`)");
            AuthDoc::parse(v.as_bytes(), "COMPOSER_AUTH")?
        }
        _ => AuthDoc::new(),
    };
    let mut count = 0;
    let (now, days) = (
        composer_keyd::expiry::now(),
        list.expiry_warning_days
            .unwrap_or_else(composer_keyd::config::expiry_warning_days),
    );
    for o in list.origins.iter().filter(|o| o.enabled) {
        let target = o.origin.as_typed(o.project.as_deref());
        if let Some(line) = composer_keyd::expiry::warning(&target, o.expires, now, days) {
            eprintln!("composer-keyd: {line}");
        }
        // With team sources, read them through as a Composer run does at its start.
        let reply = match list.teams {
            true => client.credential_fresh(&o.origin, Some(&dir_s)).await,
            false => client.credential(&o.origin, Some(&dir_s)).await,
        };
        match reply {
            Ok(reply) => {
                doc.insert(&reply.origin, &reply.credential);
                count += 1;
            }
            // Disabled or removed since the list was read: leave it out, as the plugin would.
            Err(ClientError::Daemon {
                kind: ErrorKind::Disabled | ErrorKind::NotFound,
                ..
            }) => {}
            Err(e) => return Err(e).context(format!("reading the credential for {}", o.origin)),
        }
    }
    if count == 0 {
        eprintln!(
            "composer-keyd: no enabled credential applies to {dir_s}; running the command without any"
        );
    }
    let json = doc.to_compact();
    drop(doc);
    let (program, args) = a
        .command
        .split_first()
        .context("give the command to run after `--`")?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .env("COMPOSER_AUTH", OsStr::from_bytes(&json));
    // Only returns on failure; on success the command has replaced this process.
    let err = cmd.exec();
    let shown = program.to_string_lossy();
    match err.kind() {
        std::io::ErrorKind::NotFound => {
            eprintln!("composer-keyd: {shown}: command not found");
            Ok(ExitCode::from(127))
        }
        std::io::ErrorKind::PermissionDenied => {
            eprintln!("composer-keyd: {shown}: permission denied");
            Ok(ExitCode::from(126))
        }
        _ => bail!("cannot run {shown}: {err}"),
    }
}
