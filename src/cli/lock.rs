//! `lock`, `unlock` and `status`: the daemon's session state.

use super::{prompt, Ctx};
use clap::Args;
use composer_keyd::protocol::{Status, UnlockRequest};
use composer_keyd::store::backend::Unlock;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub async fn status_of(ctx: &Ctx) -> anyhow::Result<Status> {
    Ok(ctx.connect().await?.status().await?)
}

pub async fn lock(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    ctx.connect().await?.lock().await?;
    println!("Locked: decrypted secrets were wiped from the daemon's memory. Run `composer-keyd unlock` to use them again.");
    Ok(ExitCode::SUCCESS)
}

pub async fn unlock(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let status = status_of(ctx).await?;
    let created = send_unlock(ctx, &status).await?;
    println!(
        "{}",
        if created {
            "Created the age file and unlocked it. Keep the passphrase safe: nothing can recover it."
        } else {
            "Unlocked."
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the daemon's backend is the age file (or another with a passphrase) that does
/// not exist yet, so that unlocking it creates it.
pub fn to_create(status: &Status) -> bool {
    status.backend.facts().unlock == Unlock::Passphrase && status.age_file_exists == Some(false)
}

/// Unlocks the daemon, asking for the age file's passphrase (twice when the file does not
/// exist yet, which creates it: two lines on stdin). Returns whether it created the file.
/// A try refused during the back-off of a wrong passphrase fails saying when to retry.
pub async fn send_unlock(ctx: &Ctx, status: &Status) -> anyhow::Result<bool> {
    let create = to_create(status);
    let req = match status.backend.facts().unlock {
        Unlock::Passphrase => {
            if create {
                eprintln!("There is no age file yet: choose a passphrase to create it.");
                if status.credentials > 0 {
                    eprintln!(
                        "composer-keyd: warning: the index lists {} credential(s) but no age file exists; if you moved vault.age, stop and put it back first.",
                        status.credentials
                    );
                }
            }
            UnlockRequest {
                passphrase: Some(prompt::read_passphrase(create)?),
            }
        }
        Unlock::Nothing => UnlockRequest::default(),
    };
    let reply = ctx.connect().await?.unlock(&req).await?;
    if let Some(w) = reply.warning {
        eprintln!("composer-keyd: warning: {w}");
    }
    Ok(create)
}

/// Before the first `add` on the age file with no file yet: creates it (passphrase twice).
pub async fn create_vault_if_missing(ctx: &Ctx) -> anyhow::Result<()> {
    let status = status_of(ctx).await?;
    if to_create(&status) {
        send_unlock(ctx, &status).await?;
        eprintln!("Created the age file.");
    }
    Ok(())
}

pub async fn status(ctx: &Ctx, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let s = status_of(ctx).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "composer-keyd {} (protocol {}), pid {}, up {}",
        s.version,
        s.protocol,
        s.pid,
        humantime::format_duration(std::time::Duration::from_secs(s.uptime_secs))
    );
    println!("socket:      {}", ctx.client.path().display());
    println!("backend:     {} ({})", s.backend, s.backend_reason);
    println!(
        "state:       {}",
        if s.locked {
            "LOCKED (run `composer-keyd unlock`)"
        } else {
            "unlocked"
        }
    );
    if to_create(&s) {
        println!(
            "age file:    not created yet (`composer-keyd unlock` or the first `add` creates it)"
        );
    }
    if let Some(w) = &s.warning {
        println!("WARNING:     {w}");
    }
    for t in &s.teams {
        println!("team:        {t}");
    }
    if let Some(secs) = s.lock_in_secs {
        println!(
            "timer:       locks in {}",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        );
    }
    println!("credentials: {} ({} enabled)", s.credentials, s.enabled);
    Ok(ExitCode::SUCCESS)
}
