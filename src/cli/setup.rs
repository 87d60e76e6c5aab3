//! `setup`: one command for a new user — service, backend, Composer plugin, an offer to import, then `doctor`.

use super::{doctor, import, lock, Ctx};
use anyhow::Context;
use clap::{Args, Parser};
use composer_keyd::service::{self, InstallOptions};
use composer_keyd::shim::Shim;
use composer_keyd::{authjson, composer_home, paths};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SetupArgs {
    /// Import plaintext auth.json secrets without asking.
    #[arg(long)]
    import: bool,
    /// Do not offer to import plaintext auth.json secrets.
    #[arg(long, conflicts_with = "import")]
    no_import: bool,
    /// Also test each credential against its repository at the end.
    #[arg(long)]
    check: bool,
    /// Composer's home (default: found the way Composer finds it).
    #[arg(long, value_name = "DIR")]
    composer_home: Option<PathBuf>,
}

/// Parses a subcommand's own arguments, so defaults and env vars apply as on the command line.
#[derive(Parser)]
struct Sub<T: Args> {
    #[command(flatten)]
    args: T,
}

pub async fn run(ctx: &Ctx, a: SetupArgs) -> anyhow::Result<ExitCode> {
    let mut changed = false;

    println!("==> service");
    match service::manager() {
        Some(mgr) => {
            let report =
                service::install(&InstallOptions::default()).context("installing the service")?;
            changed |= report.changed();
            let verb = if report.changed() {
                "installed"
            } else {
                "already installed"
            };
            let whose = match service::packaged::packaged_dir() {
                Some(dir) if mgr == service::Manager::Systemd => {
                    format!(" (the package's units in {})", dir.display())
                }
                _ => String::new(),
            };
            println!("    {verb} for the {mgr}{whose}: the daemon starts on the first connection");
        }
        None => {
            println!(
                "    no service manager runs here: the CLI starts the daemon when it is needed \
                 (`composer-keyd serve` runs it in the foreground)"
            );
            if let Some(dir) = service::packaged::packaged_dir() {
                println!(
                    "    the package's units in {} serve the socket in sessions with a systemd \
                     user manager",
                    dir.display()
                );
            }
        }
    }

    println!("==> backend");
    let client = ctx.connect().await?;
    let status = client.status().await?;
    let backend = serde_json::to_value(status.backend)?;
    println!(
        "    {} ({})",
        backend.as_str().unwrap_or("unknown"),
        status.backend_reason
    );
    if lock::to_create(&status) {
        lock::send_unlock(ctx, &status).await?;
        println!("    created the age file and unlocked it");
        changed = true;
    } else if status.locked {
        println!("    locked: run `composer-keyd unlock` before `composer install`");
    }

    println!("==> Composer plugin");
    let home = match &a.composer_home {
        Some(h) => h.clone(),
        None => composer_home::composer_home().context("finding Composer's home")?,
    };
    let shim = Shim::new(home.clone(), &paths::data_dir()?, "composer".into());
    let done = shim
        .install()
        .with_context(|| format!("installing the plugin into {}", shim.home().display()))?;
    let plugin_changed = done.files_changed || done.manifest_changed || done.ran_composer;
    changed |= plugin_changed;
    let verb = if plugin_changed {
        "installed"
    } else {
        "already installed"
    };
    println!("    {verb} in {}", home.display());

    println!("==> plaintext auth.json");
    let cwd = std::env::current_dir().context("the current directory")?;
    let project = composer_home::find_project(&cwd);
    let mut found = Vec::new();
    for file in import::default_files(&home, project.as_ref()) {
        if let Ok(Some(f)) = authjson::read_file(&file) {
            let n = f.doc.entries().0.len();
            if n > 0 {
                println!("    {}: {n} secret(s) in plaintext", file.display());
                found.push(file);
            }
        }
    }
    if found.is_empty() {
        println!("    none found");
    } else if !a.no_import && (a.import || confirm("    Move them into composer-keyd now?")?) {
        let args = Sub::<import::ImportArgs>::try_parse_from(["import"])?.args;
        import::run(ctx, args).await?;
        changed = true;
    } else {
        println!("    left as they are: `composer-keyd import` moves them");
    }

    println!("==> doctor");
    let argv: &[&str] = if a.check {
        &["doctor"]
    } else {
        &["doctor", "--offline"]
    };
    let code = doctor::run(ctx, Sub::<doctor::DoctorArgs>::try_parse_from(argv)?.args).await?;
    if !changed {
        println!("Nothing changed: composer-keyd was already set up.");
    }
    Ok(code)
}

/// Asks a yes/no question on a terminal; off a terminal the answer is no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{question} [Y/n] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(!line.trim().to_ascii_lowercase().starts_with('n'))
}
