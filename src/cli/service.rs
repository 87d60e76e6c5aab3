//! `service install|uninstall|status`: the systemd user units or the LaunchAgent.

use anyhow::Context;
use clap::{Args, Subcommand};
use composer_keyd::service::{self, InstallOptions, Manager, Report};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ServiceArgs {
    #[command(subcommand)]
    command: ServiceCommand,
}

#[derive(Subcommand, Debug)]
enum ServiceCommand {
    /// Write the units (or LaunchAgent) with this binary's path, then load and enable them.
    Install(InstallArgs),
    /// Stop and disable the service and remove its files.
    Uninstall(JsonArg),
    /// Show the service manager's view: enabled, active, socket path.
    Status(JsonArg),
}

#[derive(Args, Debug)]
struct InstallArgs {
    /// Let the daemon exit after SECS without connections; the service manager starts it
    /// again on the next one. With the vault backend, it then needs `unlock` again.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    idle_exit: Option<u64>,
    /// The binary the service runs (default: this one).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `service` subcommand; `socket` is the path clients use.
pub fn run(args: ServiceArgs, socket: PathBuf) -> anyhow::Result<ExitCode> {
    match args.command {
        ServiceCommand::Install(a) => {
            let bin = match a.bin {
                Some(b) => Some(std::path::absolute(&b).with_context(|| b.display().to_string())?),
                None => None,
            };
            let report = service::install(&InstallOptions {
                bin,
                idle_exit: a.idle_exit,
                socket: Some(socket),
            })
            .context("installing the service")?;
            print_report(
                &report,
                a.json,
                "Installed",
                "Already installed; nothing changed.",
            )
        }
        ServiceCommand::Uninstall(a) => {
            let report = service::uninstall().context("removing the service")?;
            print_report(&report, a.json, "Removed", "")
        }
        ServiceCommand::Status(a) => status(a.json),
    }
}

fn print_report(report: &Report, json: bool, done: &str, same: &str) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for step in &report.steps {
        println!("{step}");
    }
    match report.manager {
        Some(m) if report.changed() && !done.is_empty() => println!("{done} ({m})."),
        _ if !report.changed() && !same.is_empty() => println!("{same}"),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn status(json: bool) -> anyhow::Result<ExitCode> {
    let st = service::status().context("asking the service manager")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(ExitCode::SUCCESS);
    }
    let na = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    match st.manager {
        Some(m) => println!("manager:  {m}"),
        None => println!("manager:  none (no service manager is running in this session)"),
    }
    for f in &st.files {
        let state = if f.installed {
            "installed"
        } else {
            "not installed"
        };
        println!("file:     {} ({state})", f.path.display());
    }
    for u in &st.units {
        let from = match (&u.path, u.origin) {
            (Some(p), Some(o)) => format!("from {} ({o})", p.display()),
            _ => "not installed".to_owned(),
        };
        match &u.active {
            Some(a) => println!("unit:     {} {a}, {from}", u.name),
            None => println!("unit:     {} {from}", u.name),
        }
    }
    if st.manager.is_some() {
        let what = if st.manager == Some(Manager::Launchd) {
            "loaded"
        } else {
            "enabled"
        };
        println!("{what:<9} {}", na(&st.enabled));
        println!("socket:   {}", na(&st.socket_state));
        println!("daemon:   {}", na(&st.service_state));
    }
    match &st.socket {
        Some(p) if st.manager.is_some() => println!("listens:  {}", p.display()),
        Some(p) => println!(
            "listens:  {} (when `composer-keyd serve` runs; the CLI starts it when needed)",
            p.display()
        ),
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}
