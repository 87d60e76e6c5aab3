//! `completions SHELL` and the hidden `dist-files DIR`: completion scripts, man pages and the
//! packaged unit files, all generated from the clap definition and the embedded templates.

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use composer_keyd::service::{render, SOCKET_UNIT};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const BIN_NAME: &str = "composer-keyd";

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args, Debug)]
pub struct DistFilesArgs {
    /// Where to write man/, completions/ and systemd/ (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The binary the packaged service unit starts.
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/composer-keyd")]
    bin: PathBuf,
}

/// Prints the completion script for one shell.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, BIN_NAME, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The shells a package installs completions for, with each one's conventional file name.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "composer-keyd"),
    (Shell::Zsh, "_composer-keyd"),
    (Shell::Fish, "composer-keyd.fish"),
];

/// Writes what a package or release archive ships besides the binary; packaging scripts run
/// this so that nothing shipped is written by hand or drifts from the CLI.
pub fn dist_files(a: DistFilesArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.dir;
    let mkdir =
        |d: &Path| std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()));

    let man = dir.join("man");
    mkdir(&man)?;
    clap_mangen::generate_to(super::Cli::command(), &man)
        .with_context(|| format!("writing man pages into {}", man.display()))?;

    let comp = dir.join("completions");
    mkdir(&comp)?;
    for (shell, name) in SHELLS {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut super::Cli::command(), BIN_NAME, &mut text);
        write(&comp.join(name), &text)?;
    }

    let units = dir.join("systemd");
    let wants = units.join("sockets.target.wants");
    mkdir(&wants)?;
    write(&units.join(SOCKET_UNIT), render::socket_unit().as_bytes())?;
    let service = render::service_unit(&a.bin, None).context("rendering the service unit")?;
    write(
        &units.join(composer_keyd::service::SERVICE_UNIT),
        service.as_bytes(),
    )?;
    // Enabled for every user the way Debian's gnupg enables gpg-agent.socket: a link shipped
    // in the vendor unit directory, removed with the package.
    let link = wants.join(SOCKET_UNIT);
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("replacing {}", link.display()))
        }
        _ => {}
    }
    std::os::unix::fs::symlink(Path::new("..").join(SOCKET_UNIT), &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
