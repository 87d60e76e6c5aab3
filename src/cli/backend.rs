//! `passwd` and `migrate`: the vault's passphrase, and moving credentials between backends.

use super::lock::{send_unlock, status_of};
use super::{prompt, Ctx};
use anyhow::bail;
use clap::{Args, ValueEnum};
use composer_keyd::protocol::{BackendKind, MigrateRequest, PasswdRequest};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The backend to move every credential to.
    #[arg(long, value_enum)]
    to: Target,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Target {
    Keyring,
    Vault,
}

fn name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Keyring => "keyring",
        BackendKind::Vault => "vault",
        _ => "store",
    }
}

/// Asks for the current passphrase and the new one twice (three lines on stdin).
pub async fn passwd(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let s = status_of(ctx).await?;
    if s.backend != BackendKind::Vault {
        bail!(
            "the daemon uses the {} ({}); `passwd` changes the vault's passphrase",
            name(s.backend),
            s.backend_reason
        );
    }
    if s.vault_exists == Some(false) {
        bail!("there is no vault yet: `composer-keyd unlock` creates it");
    }
    let mut v = prompt::read_fields(
        &[
            "current-passphrase",
            "new-passphrase",
            "new-passphrase-again",
        ],
        "vault",
    )?;
    if v[1] != v[2] {
        bail!("the two new passphrases differ; nothing was changed");
    }
    if v[1].is_blank() {
        bail!("the new passphrase is empty; nothing was changed");
    }
    v.truncate(2);
    let new_passphrase = v.swap_remove(1);
    let passphrase = v.swap_remove(0);
    let req = PasswdRequest {
        passphrase,
        new_passphrase,
    };
    ctx.connect().await?.passwd(&req).await?;
    println!("Changed the vault's passphrase.");
    Ok(ExitCode::SUCCESS)
}

/// Moves every credential. Passphrases come first on stdin: the vault's, to unlock it when it
/// is in use and locked, or to open (twice: create) it when it is the target or has leftovers.
pub async fn migrate(ctx: &Ctx, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let to = match a.to {
        Target::Keyring => BackendKind::Keyring,
        Target::Vault => BackendKind::Vault,
    };
    let s = status_of(ctx).await?;
    if s.locked {
        send_unlock(ctx, &s).await?;
    }
    let vault_exists = s.vault_exists.unwrap_or(true);
    let passphrase = match (s.backend, to) {
        (BackendKind::Vault, _) => None,
        (_, BackendKind::Vault) => {
            if !vault_exists {
                eprintln!("There is no vault yet: choose a passphrase to create it.");
            }
            Some(prompt::read_passphrase(!vault_exists)?)
        }
        _ if vault_exists => Some(prompt::read_passphrase(false)?),
        _ => None,
    };
    let r = ctx
        .connect()
        .await?
        .migrate(&MigrateRequest { to, passphrase })
        .await?;
    if s.backend != to {
        println!(
            "Copied {} secret(s) from the {} to the {} and read each back; the daemon now uses the {}.",
            r.copied,
            name(r.from),
            name(r.to),
            name(r.to)
        );
    } else {
        println!(
            "Already on the {}: finishing an earlier migration.",
            name(to)
        );
    }
    println!("Removed {} secret(s) from the {}.", r.removed, name(r.from));
    if r.kept > 0 {
        println!(
            "Kept {} secret(s) in the {} that differ from the {}'s; remove them by hand if they are stale.",
            r.kept,
            name(r.from),
            name(r.to)
        );
    }
    if r.missing > 0 {
        eprintln!(
            "composer-keyd: warning: {} listed secret(s) were not in the {}; `composer-keyd list` shows them, add them again.",
            r.missing,
            name(r.from)
        );
    }
    if let Some(note) = r.note {
        println!("{note}");
    }
    Ok(ExitCode::SUCCESS)
}
