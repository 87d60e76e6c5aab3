//! `add --confirm` / `--allow-exe PATH`: the per-credential release policy on the command line.

use anyhow::{bail, Context};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PolicyArgs {
    /// Ask before each release, through the daemon's askpass program (as `ssh-add -c`).
    #[arg(long, conflicts_with = "no_confirm")]
    confirm: bool,
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
    /// The confirmation setting to send; `None` keeps what is stored.
    pub fn confirm(&self) -> Option<bool> {
        match (self.confirm, self.no_confirm) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
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
