//! Command-line definitions and dispatch; each subcommand family lives in its own file.

mod backend;
mod check;
mod completions;
mod container;
mod credentials;
mod doctor;
mod duration;
mod exec;
mod forward;
mod git_credential;
mod grant;
mod import;
mod limits;
mod lock;
mod log;
mod policy;
mod prompt;
mod scan;
mod serve;
mod service;
mod setup;
mod shim;
mod ssh;
mod team;

use anyhow::Context;
use clap::{Parser, Subcommand};
use composer_keyd::client::Client;
use std::path::PathBuf;
use std::process::ExitCode;

/// Composer credentials from the OS keyring, with nothing in plaintext on disk.
#[derive(Parser, Debug)]
#[command(name = "composer-keyd", version, about, propagate_version = true)]
pub struct Cli {
    /// The daemon's socket (default: $XDG_RUNTIME_DIR/composer-keyd/agent.sock).
    #[arg(long, global = true, env = "COMPOSER_KEYD_SOCK", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Do not start the daemon when none is running.
    #[arg(long, global = true, env = "COMPOSER_KEYD_NO_AUTOSTART")]
    no_autostart: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon in the foreground.
    Serve(serve::ServeArgs),
    /// Store a credential; secrets are read from a no-echo prompt or stdin.
    Add(credentials::AddArgs),
    /// List stored credentials (never their secrets).
    List(credentials::ListArgs),
    /// Delete a credential and its previous secret.
    Remove(credentials::Target),
    /// Stop releasing a credential, keeping it stored.
    Disable(credentials::Target),
    /// Release a disabled credential again.
    Enable(credentials::Target),
    /// Replace a credential's secret, keeping the old one for --rollback.
    Rotate(credentials::RotateArgs),
    /// Wipe decrypted secrets from the daemon's memory; reads refuse until unlock.
    Lock,
    /// Let the daemon release credentials again.
    Unlock,
    /// Show the daemon's version, backend, lock state and counts.
    Status(lock::StatusArgs),
    /// Move auth.json (and COMPOSER_AUTH) secrets into the keyring and scrub the files.
    Import(import::ImportArgs),
    /// Find plaintext Composer credentials; exits 1 when any is found.
    Scan(scan::ScanArgs),
    /// Run a command with COMPOSER_AUTH set for it alone: `exec -- composer install`.
    Exec(exec::ExecArgs),
    /// Test each stored credential against its repository.
    Check(check::CheckArgs),
    /// Report everything that stands between you and a plaintext-free `composer install`.
    Doctor(doctor::DoctorArgs),
    /// Change the age file's passphrase.
    Passwd,
    /// Move every credential to another backend and use it from now on.
    Migrate(backend::MigrateArgs),
    /// Install, remove or inspect the Composer plugin in COMPOSER_HOME.
    Shim(shim::ShimArgs),
    /// Install, remove or inspect the systemd user units or the launchd agent.
    Service(service::ServiceArgs),
    /// Set everything up: service, backend, Composer plugin, import, then doctor.
    Setup(setup::SetupArgs),
    /// Show the audit log: every release, refusal and change, with the process that asked.
    Log(log::LogArgs),
    /// Git's credential helper, backed by the daemon; `install` adds it to your git config.
    GitCredential(git_credential::GitCredentialArgs),
    /// Print a shell completion script: `composer-keyd completions bash > ...`.
    Completions(completions::CompletionsArgs),
    /// Write man pages, completions and packaged units into DIR (for package builds).
    #[command(hide = true)]
    DistFiles(completions::DistFilesArgs),
    /// Print (or --write) the wiring that gives a Docker, Compose, DDEV, Warden or docker-magento container the socket and the plugin.
    Container(container::ContainerArgs),
    /// Let another uid (a container's user) read one project's credentials: `grant add|list|revoke`.
    Grant(grant::GrantArgs),
    /// Team sources (OpenBao / HashiCorp Vault KV v2): `team add|list|status|remove`.
    Team(team::TeamArgs),
    /// Doors for `ssh -R`: a socket serving reads of chosen origins to a remote machine: `forward add|list|revoke`.
    Forward(forward::ForwardArgs),
    /// Your own ssh, with a read-only forward door where the remote Composer plugin looks.
    Ssh(ssh::SshArgs),
}

/// Shared by subcommands that talk to the daemon.
pub struct Ctx {
    client: Client,
    autostart: bool,
}

impl Ctx {
    /// A client for a daemon that is known to answer (started if allowed).
    async fn connect(&self) -> anyhow::Result<&Client> {
        self.client
            .ensure_running(self.autostart)
            .await
            .context("the composer-keyd daemon is not available")?;
        Ok(&self.client)
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let socket = cli
        .socket
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(composer_keyd::paths::socket_path);
    if let Command::Serve(args) = cli.command {
        return serve::run(args, socket).map(|()| ExitCode::SUCCESS);
    }
    if let Command::Scan(args) = cli.command {
        return scan::run(args);
    }
    if let Command::Log(args) = cli.command {
        return log::run(args);
    }
    if let Command::Completions(args) = cli.command {
        return completions::completions(args);
    }
    if let Command::DistFiles(args) = cli.command {
        return completions::dist_files(args);
    }
    init_cli_logging();
    if holds_secrets(&cli.command) {
        // Before a secret is read: a core file or a same-uid debugger would otherwise see it.
        composer_keyd::harden::harden_cli();
    }
    if let Command::Service(args) = cli.command {
        return service::run(args, socket);
    }
    if let Command::Container(args) = cli.command {
        return container::run(args, socket);
    }
    let ctx = Ctx {
        client: Client::new(socket),
        autostart: !cli.no_autostart,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(_)
            | Command::Service(_)
            | Command::Log(_)
            | Command::Container(_)
            | Command::Completions(_)
            | Command::DistFiles(_) => {
                unreachable!("handled above")
            }
            Command::Add(a) => credentials::add(&ctx, a).await,
            Command::List(a) => credentials::list(&ctx, a).await,
            Command::Remove(t) => credentials::remove(&ctx, t).await,
            Command::Disable(t) => credentials::set_enabled(&ctx, t, false).await,
            Command::Enable(t) => credentials::set_enabled(&ctx, t, true).await,
            Command::Rotate(a) => credentials::rotate(&ctx, a).await,
            Command::Lock => lock::lock(&ctx).await,
            Command::Unlock => lock::unlock(&ctx).await,
            Command::Status(a) => lock::status(&ctx, a).await,
            Command::Import(a) => import::run(&ctx, a).await,
            Command::Scan(_) => unreachable!("handled above"),
            Command::Exec(a) => exec::run(&ctx, a).await,
            Command::Check(a) => check::run(&ctx, a).await,
            Command::Doctor(a) => doctor::run(&ctx, a).await,
            Command::Passwd => backend::passwd(&ctx).await,
            Command::Migrate(a) => backend::migrate(&ctx, a).await,
            Command::Shim(a) => shim::run(a),
            Command::Setup(a) => setup::run(&ctx, a).await,
            Command::GitCredential(a) => git_credential::run(&ctx, a).await,
            Command::Grant(a) => grant::run(&ctx, a).await,
            Command::Team(a) => team::run(&ctx, a).await,
            Command::Forward(a) => forward::run(&ctx, a).await,
            Command::Ssh(a) => ssh::run(&ctx, a).await,
        }
    })
}

/// The commands that read a secret from the user or the daemon, or a passphrase (`setup`
/// runs `import`; `git-credential` gets, stores and erases secrets for git; `check` and
/// `doctor` fetch credentials to test them).
fn holds_secrets(c: &Command) -> bool {
    matches!(
        c,
        Command::Add(_)
            | Command::Rotate(_)
            | Command::Unlock
            | Command::Passwd
            | Command::Migrate(_)
            | Command::Import(_)
            | Command::Setup(_)
            | Command::Exec(_)
            | Command::GitCredential(_)
            | Command::Check(_)
            | Command::Doctor(_)
            | Command::Team(_)
    )
}

fn init_cli_logging() {
    // Warnings only, unless RUST_LOG asks for more; the CLI's output is its answer.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> Command {
        let argv = std::iter::once("composer-keyd").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().command
    }

    #[test]
    fn every_command_that_holds_a_secret_is_hardened() {
        for args in [
            &["git-credential", "get"][..],
            &["git-credential", "--allow-store", "store"],
            &["git-credential", "erase"],
            &["check"],
            &["doctor"],
            &["add", "example.org"],
            &["exec", "--", "true"],
            &["unlock"],
        ] {
            assert!(holds_secrets(&command(args)), "{args:?} is not hardened");
        }
        assert!(!holds_secrets(&command(&["list"])));
    }

    #[test]
    fn ssh_keeps_ssh_options_and_the_double_dash() {
        let Command::Ssh(a) = command(&[
            "ssh",
            "--origin",
            "o.example",
            "-p",
            "2222",
            "-o",
            "X=y",
            "u@h",
            "--",
            "composer",
            "-v",
        ]) else {
            panic!("not ssh");
        };
        assert_eq!(
            format!("{a:?}").matches("\"--\"").count(),
            1,
            "the `--` before the remote command reaches ssh: {a:?}"
        );
        assert!(format!("{a:?}").contains("\"-p\", \"2222\""), "{a:?}");
    }
}
