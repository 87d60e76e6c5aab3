//! `composer-keyd ssh`: the user's own `ssh`, with a forward door at the remote path the plugin looks in by default, removed when the session ends; `--install-plugin` puts the plugin into the remote COMPOSER_HOME; `--config`/`--print-config` give the `~/.ssh/config` form.
//!
//! One connection serves every step: a control master (its socket in the daemon's 0700
//! runtime dir) makes the remote directory, carries the session with its `-R`, removes the
//! socket sshd leaves behind, and is closed last.

use super::forward::{self, DoorArgs};
use super::Ctx;
use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::ssh as remote;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct SshArgs {
    /// Use this door (from `forward add`) instead of a one-session door.
    #[arg(long, value_name = "NAME")]
    forward: Option<String>,
    #[command(flatten)]
    door: DoorArgs,
    /// Copy the plugin into the remote user's global COMPOSER_HOME and allow it, then stop.
    #[arg(long)]
    install_plugin: bool,
    /// Print the `~/.ssh/config` form of `--forward NAME` for HOST, then stop.
    #[arg(long)]
    print_config: bool,
    /// Append the `~/.ssh/config` form of `--forward NAME` for HOST to FILE, then stop.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The ssh program.
    #[arg(
        long,
        env = "COMPOSER_KEYD_SSH",
        default_value = "ssh",
        value_name = "PROGRAM"
    )]
    ssh: OsString,
    /// ssh's own options, then HOST, then `-- CMD...` (as ssh takes them).
    #[arg(
        required = true,
        allow_hyphen_values = true,
        value_name = "[SSH OPTIONS] HOST [-- CMD]"
    )]
    args: Vec<OsString>,
}

/// ssh's options and host, and the remote command after `--`.
fn split(args: &[OsString]) -> (Vec<OsString>, Vec<OsString>) {
    match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args.to_vec(), Vec::new()),
    }
}

/// The control master and the steps run through it.
struct Link {
    ssh: OsString,
    args: Vec<OsString>,
    control: PathBuf,
}

impl Link {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.ssh);
        c.arg("-o")
            .arg(format!("ControlPath={}", self.control.display()));
        c
    }

    /// Connects (asking whatever ssh asks) and makes the remote directory; its path.
    fn open(&self) -> anyhow::Result<String> {
        let out = self
            .command()
            // Bounded: should this process be killed, the master does not outlive its last
            // session by more than this.
            .args(["-o", "ControlMaster=yes", "-o", "ControlPersist=30s"])
            .args(&self.args)
            .arg("--")
            .arg(remote::sh_c(&remote::dir_script()))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.ssh.to_string_lossy()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match (out.status.success(), remote::parse_dir(&text)) {
            (true, Some(d)) => Ok(d.to_owned()),
            _ => bail!(
                "ssh could not make the remote socket directory ({})",
                out.status
            ),
        }
    }

    /// Runs `script` remotely through the master, `stdin` on its standard input.
    fn run(&self, extra: &[&str], remote_cmd: &str, stdin: Option<&[u8]>) -> anyhow::Result<()> {
        let mut c = self.command();
        c.args(["-o", "ControlMaster=no"])
            .args(extra)
            .args(&self.args)
            .arg("--")
            .arg(remote_cmd)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = c.spawn().context("running ssh")?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(bytes).context("writing to ssh")?;
        }
        let status = child.wait().context("waiting for ssh")?;
        if !status.success() {
            bail!("the remote step failed ({status})");
        }
        Ok(())
    }

    fn close(&self) {
        let _ = self
            .command()
            .args(["-O", "exit"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.control);
    }
}

pub async fn run(ctx: &Ctx, a: SshArgs) -> anyhow::Result<ExitCode> {
    let d = &a.door;
    if a.forward.is_some()
        && (!d.origins.is_empty() || d.project.is_some() || d.confirm || d.expires.is_some())
    {
        bail!("--origin, --project, --confirm and --expires shape a one-session door; a lasting one takes them at `composer-keyd forward add`");
    }
    let (ssh_args, cmd) = split(&a.args);
    let Some(host) = ssh_args.last().map(|h| h.to_string_lossy().into_owned()) else {
        bail!("name the HOST");
    };
    let main_socket = ctx.client.path().to_path_buf();
    let run_dir = main_socket.parent().unwrap_or(Path::new("/")).to_path_buf();
    composer_keyd::paths::create_private_dir(&run_dir)
        .with_context(|| format!("the runtime directory {}", run_dir.display()))?;
    let link = Link {
        ssh: a.ssh.clone(),
        args: ssh_args,
        control: run_dir.join(format!("ssh-{}.ctl", std::process::id())),
    };
    let result = session(ctx, &a, &link, &host, &cmd, &main_socket).await;
    link.close();
    result
}

async fn session(
    ctx: &Ctx,
    a: &SshArgs,
    link: &Link,
    host: &str,
    cmd: &[OsString],
    main_socket: &Path,
) -> anyhow::Result<ExitCode> {
    if a.install_plugin {
        link.open()?;
        let script = remote::install_script(&remote::remote_plugin_files())
            .map_err(|e| anyhow::anyhow!("the plugin: {e}"))?;
        link.run(&[], "sh -s", Some(script.as_bytes()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.print_config || a.config.is_some() {
        let Some(name) = &a.forward else {
            bail!("the ~/.ssh/config form needs a lasting door: `composer-keyd forward add NAME ...`, then --forward NAME");
        };
        let dir = link.open()?;
        let block = remote::config_block(
            host,
            &format!("{dir}/agent.sock"),
            &forward::socket(main_socket, name),
        );
        match &a.config {
            None => print!("{block}"),
            Some(file) => append_config(file, &block)?,
        }
        return Ok(ExitCode::SUCCESS);
    }

    // The door first: a refused door costs no connection.
    let (name, ours) = match &a.forward {
        Some(name) => (name.clone(), false),
        None => {
            let mut door = a.door.clone();
            if door.origins.is_empty() && door.project.is_none() {
                door.origins = unscoped_origins(ctx).await?;
                if door.origins.is_empty() {
                    bail!("no unscoped credential is stored; name what to forward with --origin or --project");
                }
                eprintln!(
                    "composer-keyd: forwarding every unscoped origin ({}); narrow it with --origin",
                    door.origins.join(", ")
                );
            }
            let name = format!("ssh-{}", std::process::id());
            forward::make(ctx, name.clone(), door, composer_keyd::forward::Owner::me()).await?;
            (name, true)
        }
    };
    let outcome = forwarded(link, &name, cmd, main_socket);
    if ours {
        if let Err(e) = forward::revoke(ctx, &name).await {
            eprintln!("composer-keyd: revoking forward {name}: {e:#}");
        }
    }
    outcome
}

/// Connects, runs the session with the door at the remote default path, removes the socket.
fn forwarded(
    link: &Link,
    name: &str,
    cmd: &[OsString],
    main_socket: &Path,
) -> anyhow::Result<ExitCode> {
    let local = forward::socket(main_socket, name);
    if !local.exists() {
        bail!("forward {name} has no socket at {}; is it revoked or ended? (`composer-keyd forward list`)", local.display());
    }
    let dir = link.open()?;
    let remote_sock = format!("{dir}/agent.sock");
    let mut c = link.command();
    // StreamLocalBindUnlink here is ssh's, for local forwards; for -R only the server's
    // sshd_config decides (its default keeps a stale socket and refuses the bind), so
    // `dir_script` has removed a stale socket already.
    c.args(["-o", "ControlMaster=no", "-o", "StreamLocalBindUnlink=yes"])
        .args(["-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("{remote_sock}:{}", local.display()))
        .args(&link.args);
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    // Ctrl-C belongs to the remote command: ignored here until ssh is done, so the cleanup runs.
    let status = {
        let _quiet = IgnoreInterrupt::new();
        c.status().context("running ssh")?
    };
    if let Err(e) = link.run(
        &[],
        &remote::sh_c(&remote::cleanup_script(&remote_sock)),
        None,
    ) {
        eprintln!("composer-keyd: removing the remote socket {remote_sock}: {e:#}");
    }
    Ok(match status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(255)),
        None => ExitCode::from(255),
    })
}

/// Enabled, unscoped origins: what a door with no `--origin` serves.
async fn unscoped_origins(ctx: &Ctx) -> anyhow::Result<Vec<String>> {
    let client = ctx.connect().await?;
    let list = client.credentials().await.context("listing credentials")?;
    let mut out: Vec<String> = list
        .credentials
        .into_iter()
        .filter(|c| c.project.is_none() && c.enabled)
        .map(|c| c.origin.to_string())
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Appends `block` to an ssh config file, unless it holds it already.
fn append_config(file: &Path, block: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let old = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if old.contains(block) {
        println!("{} has it already.", file.display());
        return Ok(());
    }
    let mode = std::fs::metadata(file).map_or(0o600, |m| m.permissions().mode() & 0o7777);
    let mut new = old;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    if !new.is_empty() {
        new.push('\n');
    }
    new.push_str(block);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        composer_keyd::paths::create_private_dir(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    composer_keyd::atomic::write(file, new.as_bytes(), mode)
        .with_context(|| format!("writing {}", file.display()))?;
    println!("Added the forward to {}.", file.display());
    Ok(())
}

/// SIGINT and SIGQUIT ignored while alive (the child resets them at exec).
struct IgnoreInterrupt(libc::sighandler_t, libc::sighandler_t);

impl IgnoreInterrupt {
    fn new() -> IgnoreInterrupt {
        // SAFETY: installing SIG_IGN has no memory effects; the old handlers are restored on drop.
        unsafe {
            IgnoreInterrupt(
                libc::signal(libc::SIGINT, libc::SIG_IGN),
                libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            )
        }
    }
}

impl Drop for IgnoreInterrupt {
    fn drop(&mut self) {
        // SAFETY: restores the handlers `new` replaced.
        unsafe {
            libc::signal(libc::SIGINT, self.0);
            libc::signal(libc::SIGQUIT, self.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_host_and_command_split_at_the_first_double_dash() {
        let v = |s: &[&str]| s.iter().map(OsString::from).collect::<Vec<_>>();
        let (opts, cmd) = split(&v(&["-p", "22", "u@h", "--", "composer", "--", "x"]));
        assert_eq!(opts, v(&["-p", "22", "u@h"]));
        assert_eq!(cmd, v(&["composer", "--", "x"]));
        assert_eq!(split(&v(&["h"])), (v(&["h"]), vec![]));
    }
}
