//! `shim install|uninstall|status`: the Composer plugin in the COMPOSER_HOME Composer uses.

use anyhow::Context;
use clap::{Args, Subcommand};
use composer_keyd::composer_home;
use composer_keyd::shim::{self, Shim};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ShimArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Install (or update) the plugin globally: a path repository, allow-plugins, require, and `composer global update` of it alone.
    Install(Opts),
    /// Remove exactly what install added; other global packages and keys stay.
    Uninstall(Opts),
    /// Say whether the plugin is installed, allowed, and the same version as this binary.
    Status(Opts),
}

#[derive(Args, Debug)]
struct Opts {
    /// Composer's home (default: found the way Composer finds it).
    #[arg(long, value_name = "DIR")]
    composer_home: Option<PathBuf>,
    /// The Composer program to run.
    #[arg(long, value_name = "PATH", default_value = "composer")]
    composer: OsString,
}

impl Opts {
    fn shim(self) -> anyhow::Result<Shim> {
        let home = match self.composer_home {
            Some(h) => h,
            None => {
                composer_keyd::composer_home::composer_home().context("finding Composer's home")?
            }
        };
        let data =
            composer_keyd::paths::data_dir().context("finding composer-keyd's data directory")?;
        Ok(Shim::new(home, &data, self.composer))
    }
}

pub fn run(args: ShimArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Install(o) => {
            let shim = o.shim()?;
            if let Some(why) = composer_home::not_a_home(shim.home()) {
                anyhow::bail!("not installing the plugin there: {why}");
            }
            let done = shim
                .install()
                .with_context(|| format!("installing the plugin into {}", shim.home().display()))?;
            if done.ran_composer {
                println!(
                    "Installed {} {} into {}.",
                    shim::PACKAGE,
                    shim::plugin_version(),
                    shim.home().display()
                );
            } else {
                println!(
                    "{} {} is already installed in {}; nothing changed.",
                    shim::PACKAGE,
                    shim::plugin_version(),
                    shim.home().display()
                );
            }
            let full = std::fs::canonicalize(shim.home()).unwrap_or_else(|_| shim.home().into());
            if let Some(root) = composer_home::magento_root_of_home(&full) {
                magento_note(&root);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Uninstall(o) => {
            let shim = o.shim()?;
            let done = shim
                .uninstall()
                .with_context(|| format!("removing the plugin from {}", shim.home().display()))?;
            if done.manifest_changed || done.ran_composer || done.files_changed {
                println!("Removed {} from {}.", shim::PACKAGE, shim.home().display());
            } else {
                println!(
                    "{} was not installed in {}; nothing changed.",
                    shim::PACKAGE,
                    shim.home().display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Status(o) => status(o.shim()?),
    }
}

fn status(shim: Shim) -> anyhow::Result<ExitCode> {
    let s = shim.status().context("reading the plugin's state")?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("composer home: {}", s.home.display());
    println!("plugin copy:   {}", s.plugin_dir.display());
    println!("repository:    {}", yes(s.repository));
    println!("required:      {}", yes(s.required));
    println!(
        "allowed:       {}",
        match s.allowed {
            Some(true) => "yes",
            Some(false) => "NO (run `composer-keyd shim install`)",
            None => "not configured (Composer will ask; run `composer-keyd shim install`)",
        }
    );
    let binary = shim::plugin_version();
    match &s.installed {
        None => println!("installed:     no (run `composer-keyd shim install`)"),
        Some(i) if s.is_current() => println!("installed:     {} (same as this binary)", i.version),
        Some(i) if i.version != binary => {
            println!("installed:     {} (this binary has {binary}; run `composer-keyd shim install`)", i.version)
        }
        Some(i) => println!("installed:     {} (built differently from this binary's copy; run `composer-keyd shim install`)", i.version),
    }
    Ok(if s.is_current() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What an install into a Magento root's own Composer home means, and what can undo it.
fn magento_note(root: &std::path::Path) {
    println!(
        "Magento's own Composer runs in {} (`bin/magento sampledata:deploy` and the like) now load the plugin.",
        root.display()
    );
    println!(
        "Magento writes only auth.json and packages.json there; clearing var/ removes the plugin: run this again then, or use `composer-keyd exec -- bin/magento ...`."
    );
}
