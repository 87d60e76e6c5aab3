//! `container docker|compose|ddev|warden|docker-magento`: prints, or with `--write` writes, the wiring that gives a container the daemon's socket and the plugin.

use anyhow::Context;
use clap::{Args, ValueEnum};
use composer_keyd::container::{self, Mode, Wiring};
use composer_keyd::shim::Shim;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ContainerArgs {
    /// The setup that runs Composer.
    #[arg(value_enum)]
    mode: ModeArg,
    /// Prepare the container's COMPOSER_HOME and write the setup's file (never over a file
    /// composer-keyd did not write).
    #[arg(long)]
    write: bool,
    /// The project (default: the current directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The uid Composer runs as in the container (default: yours).
    #[arg(long, value_name = "N")]
    uid: Option<u32>,
    /// The compose service(s) that run Composer (default: the setup's usual ones).
    #[arg(long, value_name = "NAME")]
    service: Vec<String>,
    /// Print the socketless form instead (`composer-keyd exec -- docker compose exec ...`),
    /// for Docker Desktop on macOS, which cannot mount a host socket.
    #[arg(long)]
    no_socket: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Docker,
    Compose,
    Ddev,
    Warden,
    DockerMagento,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Docker => Mode::Docker,
            ModeArg::Compose => Mode::Compose,
            ModeArg::Ddev => Mode::Ddev,
            ModeArg::Warden => Mode::Warden,
            ModeArg::DockerMagento => Mode::DockerMagento,
        }
    }
}

pub fn run(args: ContainerArgs, socket: PathBuf) -> anyhow::Result<ExitCode> {
    let mode = Mode::from(args.mode);
    let services: Vec<String> = if args.service.is_empty() {
        mode.default_services()
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.service
    };
    let first = services.first().map(String::as_str).unwrap_or("SERVICE");
    if args.no_socket || cfg!(target_os = "macos") {
        println!("{}", container::exec_form(first));
        eprintln!("Docker Desktop cannot mount a host socket: this puts the credentials in that one `docker compose exec` process's environment, for one run.");
        return Ok(ExitCode::SUCCESS);
    }
    let project = match &args.project {
        Some(p) => p.clone(),
        None => std::env::current_dir().context("the current directory")?,
    };
    let project = std::fs::canonicalize(&project)
        .with_context(|| format!("the project directory {}", project.display()))?;
    let data =
        composer_keyd::paths::data_dir().context("finding composer-keyd's data directory")?;
    let me = composer_keyd::paths::euid();
    let uid = args.uid.unwrap_or(me);
    let gid = if uid == me {
        // SAFETY: getegid has no preconditions and cannot fail.
        unsafe { libc::getegid() }
    } else {
        uid
    };
    // Another uid gets its grant's socket, never the main one.
    let socket = if uid == me {
        socket
    } else {
        grant_socket(&socket, uid, &project)?
    };
    let wiring = Wiring {
        socket,
        home: container::container_home(&data),
        project,
        uid,
        gid,
    };

    if args.write {
        prepare_home(&wiring.home, &data)?;
        eprintln!(
            "Prepared the container's COMPOSER_HOME: {}",
            wiring.home.display()
        );
    } else if !wiring.home.join("vendor").is_dir() {
        eprintln!("The container's COMPOSER_HOME is not prepared yet: rerun with --write.");
    }

    if mode == Mode::Docker {
        println!("{}", wiring.docker_args().join(" \\\n  "));
    } else if args.write {
        let path = wiring
            .write(mode, &services)
            .context("writing the container wiring")?;
        println!("Wrote {}", path.display());
    } else {
        print!("{}", wiring.compose_override(&services));
    }
    notes(mode, &wiring, me);
    Ok(ExitCode::SUCCESS)
}

/// `shim install` into the container home, starting it with a manifest that needs no
/// network.
fn prepare_home(home: &Path, data: &Path) -> anyhow::Result<()> {
    composer_keyd::paths::create_private_dir(home)
        .with_context(|| format!("creating {}", home.display()))?;
    let manifest = home.join("composer.json");
    if !manifest.exists() {
        composer_keyd::atomic::write(
            &manifest,
            container::initial_home_manifest().as_bytes(),
            0o600,
        )
        .with_context(|| format!("writing {}", manifest.display()))?;
    }
    Shim::new(home.to_path_buf(), data, "composer".into())
        .install()
        .with_context(|| format!("installing the plugin into {}", home.display()))?;
    // Any container uid reads it through the bind mount (the 0700 data dir keeps host
    // users out); it holds the plugin and Composer's manifests, nothing secret.
    readable(home).with_context(|| format!("making {} readable", home.display()))?;
    Ok(())
}

fn readable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(p)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    let add = if meta.is_dir() || mode & 0o100 != 0 {
        0o055
    } else {
        0o044
    };
    std::fs::set_permissions(p, std::fs::Permissions::from_mode((mode | add) & 0o755))?;
    if meta.is_dir() {
        for e in std::fs::read_dir(p)? {
            readable(&e?.path())?;
        }
    }
    Ok(())
}

/// The socket of the grant for `uid` on `project`, or the reason there is none.
fn grant_socket(main: &Path, uid: u32, project: &Path) -> anyhow::Result<PathBuf> {
    use composer_keyd::grant;
    let reg = grant::Registry::load(&grant::registry_path()?)?;
    match reg.grants.iter().find(|g| g.uid == uid && g.project == project) {
        Some(g) => Ok(grant::socket_path(main, &g.name)),
        None => anyhow::bail!(
            "uid {uid} has no grant for {}: run `composer-keyd grant add --uid {uid} --project {}` first",
            project.display(),
            project.display()
        ),
    }
}

fn notes(mode: Mode, w: &Wiring, me: u32) {
    if mode == Mode::Compose || mode == Mode::DockerMagento {
        eprintln!(
            "Use it with: docker compose -f compose.yaml -f {} ... (or add it to COMPOSE_FILE).",
            mode.file().unwrap_or_default()
        );
    }
    if let Some(target) = mode.project_target() {
        eprintln!("The project is {target} in the container: credentials scoped with --project {} do not match there; add container credentials unscoped or with --project {target}.", w.project.display());
    }
    if w.uid != me {
        eprintln!("Composer in the container runs as uid {}: it gets the grant's socket, which serves only reads of credentials scoped to {}.", w.uid, w.project.display());
    }
    eprintln!("Restart the container after the daemon's socket is recreated (a bind mount keeps the old one).");
}
