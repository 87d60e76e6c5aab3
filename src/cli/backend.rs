//! `passwd` and `migrate`: the age file's passphrase, and moving credentials between backends.

use super::lock::{send_unlock, status_of};
use super::{prompt, Ctx};
use anyhow::bail;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use composer_keyd::protocol::{BackendKind, MigrateRequest, PasswdRequest};
use composer_keyd::store::backend::Unlock;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The backend to move every credential to (`vault` is the age file's old name).
    #[arg(long, value_parser = PossibleValuesParser::new(target_names()).try_map(|s| target(&s)))]
    to: BackendKind,
}

/// A backend the daemon can run on, by name; the age file's old name `vault` is taken, with
/// a note on stderr.
fn target(s: &str) -> Result<BackendKind, String> {
    let kind: BackendKind = s.parse().map_err(|e| format!("{e}"))?;
    if !kind.facts().daemon {
        return Err(format!("the daemon cannot run on the {}", kind.name()));
    }
    if let Some(note) = BackendKind::old_name_note(s) {
        eprintln!("composer-keyd: note: {note}");
    }
    Ok(kind)
}

/// The names `--to` takes, for help and completions; the old name is taken but not shown.
fn target_names() -> impl Iterator<Item = PossibleValue> {
    BackendKind::daemon_kinds()
        .map(|k| PossibleValue::new(k.as_str()))
        .chain([PossibleValue::new(BackendKind::OLD_AGE_FILE_NAME).hide(true)])
}

fn name(kind: BackendKind) -> &'static str {
    kind.name()
}

/// Asks for the current passphrase and the new one twice (three lines on stdin).
pub async fn passwd(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let s = status_of(ctx).await?;
    if s.backend.facts().unlock != Unlock::Passphrase {
        bail!(
            "the daemon uses the {} ({}); `passwd` changes the age file's passphrase",
            name(s.backend),
            s.backend_reason
        );
    }
    if s.age_file_exists == Some(false) {
        bail!("there is no age file yet: `composer-keyd unlock` creates it");
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
    println!("Changed the age file's passphrase.");
    Ok(ExitCode::SUCCESS)
}

/// Moves every credential. Passphrases come first on stdin: the age file's, to unlock it when
/// it is in use and locked, or to open (twice: create) it when it is the target or has
/// leftovers.
pub async fn migrate(ctx: &Ctx, a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let to = a.to;
    let s = status_of(ctx).await?;
    if s.locked {
        send_unlock(ctx, &s).await?;
    }
    let file_exists = s.age_file_exists.unwrap_or(true);
    let needs = |k: BackendKind| k.facts().unlock == Unlock::Passphrase;
    // The backend in use is unlocked by now; one to open needs its passphrase: the target,
    // or, when already there, the other with leftovers (only the age file has one).
    let passphrase = if needs(s.backend) {
        None
    } else if needs(to) {
        if !file_exists {
            eprintln!("There is no age file yet: choose a passphrase to create it.");
        }
        Some(prompt::read_passphrase(!file_exists)?)
    } else if s.backend == to && file_exists {
        Some(prompt::read_passphrase(false)?)
    } else {
        None
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
