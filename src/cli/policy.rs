//! `add --confirm` / `--allow-exe PATH`: the per-credential release policy on the command line.

use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::protocol::ConfirmScope;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Ask before releasing, through the daemon's askpass program (as `ssh-add -c`):
    /// `each` release (the default), once per `program` (the same executable, until
    /// `lock`), or once per `session` (the same executable in the same login session, else
    /// the same process session, else the same process tree that entered a pid namespace;
    /// until `lock` or --confirm-for).
    #[arg(
        long,
        conflicts_with = "no_confirm",
        value_name = "SCOPE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "each",
        value_parser = ["each", "program", "session"]
    )]
    confirm: Option<String>,
    /// With --confirm=session: how long an approval holds (e.g. 8h; default: until `lock`).
    #[arg(long, value_name = "DURATION", value_parser = super::duration::parse)]
    confirm_for: Option<std::time::Duration>,
    /// Stop asking before each release.
    #[arg(long)]
    no_confirm: bool,
    /// Release only to processes running this executable, e.g. `php` (repeatable).
    #[arg(long, value_name = "PATH", conflicts_with = "allow_any_exe")]
    allow_exe: Vec<PathBuf>,
    /// Release to any executable again.
    #[arg(long)]
    allow_any_exe: bool,
}

impl PolicyArgs {
    /// Whether any policy option was given.
    pub fn is_set(&self) -> bool {
        self.confirm.is_some()
            || self.confirm_for.is_some()
            || self.no_confirm
            || !self.allow_exe.is_empty()
            || self.allow_any_exe
    }

    /// The confirmation setting to send; `None` keeps what is stored.
    pub fn confirm(&self) -> Option<bool> {
        match (&self.confirm, self.no_confirm) {
            (Some(_), _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// What one confirmation covers, to send with `--confirm=SCOPE`; `None` keeps what is
    /// stored. `--no-confirm` resets it to `each`.
    pub fn confirm_scope(&self) -> anyhow::Result<Option<(ConfirmScope, u64)>> {
        let scope = match (self.confirm.as_deref(), self.no_confirm) {
            (_, true) => ConfirmScope::Each,
            (Some("program"), _) => ConfirmScope::Program,
            (Some("session"), _) => ConfirmScope::Session,
            (Some(_), _) => ConfirmScope::Each,
            (None, false) => {
                if self.confirm_for.is_some() {
                    bail!("--confirm-for goes with --confirm=session");
                }
                return Ok(None);
            }
        };
        let secs = match self.confirm_for {
            Some(_) if scope != ConfirmScope::Session => {
                bail!("--confirm-for goes with --confirm=session")
            }
            Some(d) if d.as_secs() == 0 => bail!("--confirm-for must be at least a second"),
            Some(d) => d.as_secs(),
            None => 0,
        };
        Ok(Some((scope, secs)))
    }

    /// The allowed executables to send, as canonical paths; `None` keeps what is stored.
    pub fn allow_exe(&self) -> anyhow::Result<Option<Vec<String>>> {
        if self.allow_any_exe {
            return Ok(Some(Vec::new()));
        }
        if self.allow_exe.is_empty() {
            return Ok(None);
        }
        self.allow_exe
            .iter()
            .map(|p| {
                let found = find_program(p)?;
                let real = std::fs::canonicalize(&found)
                    .with_context(|| format!("--allow-exe {}", p.display()))?;
                Ok(real.to_string_lossy().into_owned())
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Some)
    }
}

/// A bare name (`php`) is looked up on PATH, as a shell would; a path is taken as it is.
fn find_program(p: &Path) -> anyhow::Result<PathBuf> {
    if p.components().count() > 1 || p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    match std::env::split_paths(&path)
        .map(|d| d.join(p))
        .find(|c| c.is_file())
    {
        Some(c) => Ok(c),
        None => bail!(
            "--allow-exe {}: not found on PATH; give the full path",
            p.display()
        ),
    }
}
