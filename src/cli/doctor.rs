//! `doctor`: one report of everything between the user and a working, plaintext-free
//! `composer install`, each problem with the command that fixes it.

mod cmdlines;
mod container;
mod magento;

use super::check::{self as checks, NetArgs};
use super::{scan, Ctx};
use clap::Args;
use composer_keyd::client::ClientError;
use composer_keyd::composer_home::{self, PLUGIN_PACKAGE};
use composer_keyd::protocol::{CredentialInfo, ErrorKind, Status, PROTOCOL, VERSION};
use composer_keyd::{config, expiry, paths, trust};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Skip the live check of each credential.
    #[arg(long)]
    offline: bool,
    /// Show the detail behind short reasons (e.g. the keyring probe's D-Bus error).
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    net: NetArgs,
}

/// Collects and prints findings.
#[derive(Default)]
struct Report {
    problems: usize,
}

impl Report {
    fn ok(&self, what: &str, detail: impl AsRef<str>) {
        println!("ok       {what}: {}", detail.as_ref());
    }

    fn note(&self, what: &str, detail: impl AsRef<str>) {
        println!("note     {what}: {}", detail.as_ref());
    }

    /// Worth knowing now, though nothing fails yet.
    fn warn(&self, what: &str, detail: impl AsRef<str>) {
        println!("WARNING  {what}: {}", detail.as_ref());
    }

    fn problem(&mut self, what: &str, detail: impl AsRef<str>, fix: impl AsRef<str>) {
        self.problems += 1;
        println!("PROBLEM  {what}: {}", detail.as_ref());
        println!("         fix: {}", fix.as_ref());
    }
}

pub async fn run(ctx: &Ctx, a: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut r = Report::default();
    let client = &ctx.client;
    let socket = client.path().to_path_buf();
    let boxed = composer_keyd::container::in_container();
    if boxed {
        container::socket_note(&r, &socket);
    }

    // The daemon: asked directly, never started, so the report shows the real state.
    let status = match client.status().await {
        Ok(s) => {
            if s.version != VERSION || s.protocol != PROTOCOL {
                r.problem(
                    "daemon",
                    format!(
                        "it runs composer-keyd {} (protocol {}) but this CLI is {VERSION} (protocol {PROTOCOL})",
                        s.version, s.protocol
                    ),
                    format!("restart it: `systemctl --user restart composer-keyd.service`, or `kill {}` and let the CLI start it again", s.pid),
                );
            } else {
                r.ok(
                    "daemon",
                    format!(
                        "composer-keyd {} (protocol {}), pid {}, on {}",
                        s.version,
                        s.protocol,
                        s.pid,
                        socket.display()
                    ),
                );
            }
            Some(s)
        }
        // Nothing was sent: whoever listens there, if anyone, is not known to be ours.
        Err(ClientError::UntrustedSocket(u)) => {
            r.problem(
                "daemon",
                format!("not asked: {u}"),
                "make the socket's directory safe first (the fix above, or the socket directory line below), then `composer-keyd service install` or `composer-keyd serve`",
            );
            None
        }
        Err(e) if boxed => {
            container::unreachable(&mut r, &socket, &e);
            None
        }
        Err(e) => {
            let detail = match &e {
                ClientError::NotRunning { .. } => {
                    format!("nothing answers on {}", socket.display())
                }
                other => other.to_string(),
            };
            r.problem(
                "daemon",
                detail,
                "`composer-keyd service install` (socket-activated), or run `composer-keyd serve`",
            );
            None
        }
    };

    // In a container the socket sits in a root-owned /run by design, and the private
    // directories are the host's business.
    match socket.parent().filter(|_| !boxed) {
        Some(dir) if dir.exists() => match paths::check_socket_dir(dir) {
            Ok(()) => r.ok("socket directory", format!("{} is private to you", dir.display())),
            Err(e) => r.problem(
                "socket directory",
                e.to_string(),
                format!("`rm -r {}` (when nothing uses it) and let the daemon create it again, or set COMPOSER_KEYD_SOCK to a path in a private directory", dir.display()),
            ),
        },
        Some(dir) => r.note(
            "socket directory",
            format!("{} does not exist yet; the daemon creates it (mode 0700)", dir.display()),
        ),
        None => {}
    }

    if !boxed {
        private_dirs(&mut r);
    }

    if let Some(s) = &status {
        backend(ctx, s, &mut r).await;
        for t in &s.teams {
            if t.contains("failing") {
                r.problem("team source", t, "composer-keyd team status");
            } else {
                r.ok("team source", t);
            }
        }
        match (&s.backend_detail, a.verbose) {
            (Some(detail), true) => r.note("backend detail", detail.clone()),
            (Some(_), false) => r.note("backend detail", "`composer-keyd doctor -v` shows it"),
            (None, _) => {}
        }
    }
    if !boxed {
        // Each team source as `team status` shows it: addresses, token, policy (no secret read).
        let teams = composer_keyd::config::path()
            .ok()
            .and_then(|p| composer_keyd::team::config::load(&p).ok())
            .unwrap_or_default();
        for (name, cfg) in teams {
            if !super::team::status(&name, &cfg).await {
                r.problem(
                    "team source",
                    format!("team {name} does not answer or its token cannot read"),
                    format!("composer-keyd team status {name}"),
                );
            }
        }
    }
    let before = r.problems;
    plugin(&mut r, boxed);
    if boxed {
        container::plugin_hint(&r, before);
    }
    tools(&mut r).await;
    if !boxed {
        magento::report(&mut r);
    }

    match scan::default_findings() {
        Ok((found, _)) if found.is_empty() => r.ok(
            "plaintext",
            "no Composer credentials in plaintext in the project, COMPOSER_HOME or COMPOSER_AUTH",
        ),
        Ok((found, _)) => {
            for f in &found {
                r.problem("plaintext", f.line(), scan::fix_for(f));
            }
        }
        Err(e) => r.note("plaintext", format!("not scanned: {e:#}")),
    }

    match (&status, a.offline) {
        (_, true) => r.note("credentials", "live checks skipped (--offline)"),
        (None, _) => r.note("credentials", "not checked: the daemon does not answer"),
        (Some(s), _) if s.locked => r.note("credentials", "not checked: the daemon is locked"),
        (Some(_), false) => credentials(ctx, &a.net, &mut r).await,
    }
    if status.is_some() {
        if let Ok(list) = ctx.client.credentials().await {
            expiry(&list.credentials, &mut r);
            cmdlines::report(&r, &list.credentials);
        }
    }

    if r.problems == 0 {
        println!("No problems found.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s) found.", r.problems);
        Ok(ExitCode::FAILURE)
    }
}

/// The config, data and state directories and the plugin's copy: `serve` refuses to start
/// while any of them fails.
fn private_dirs(r: &mut Report) {
    let dirs = match paths::private_dirs() {
        Ok(d) => d,
        Err(e) => return r.problem("private directories", e.to_string(), "set HOME"),
    };
    let mut bad = 0;
    for d in &dirs {
        if let Err(e) = trust::check_private_dir(d) {
            bad += 1;
            let fix = match &e {
                trust::CheckError::Untrusted(_) => format!(
                    "`chown $(id -u) {0} && chmod 700 {0}` if it is yours, else remove it; the daemon refuses to start until then",
                    d.display()
                ),
                trust::CheckError::Io { .. } => "check the directory's permissions".to_owned(),
            };
            r.problem("private directory", e.to_string(), fix);
        }
    }
    if bad == 0 {
        r.ok(
            "private directories",
            format!(
                "{} checked, each yours and writable only by you (or not created yet)",
                dirs.len()
            ),
        );
    }
}

async fn backend(ctx: &Ctx, s: &Status, r: &mut Report) {
    let kind = serde_json::to_value(s.backend)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    if s.locked {
        r.problem(
            "backend",
            format!("{kind} ({}), LOCKED", s.backend_reason),
            "composer-keyd unlock",
        );
        return;
    }
    // Reading one stored secret proves the backend answers; with none stored, status must do.
    let first = match checks::targets(&ctx.client, None).await {
        Ok(t) => t.into_iter().find(|t| t.enabled),
        Err(e) => {
            r.problem("backend", format!("{e:#}"), "composer-keyd status");
            return;
        }
    };
    let Some(t) = first else {
        r.ok(
            "backend",
            format!("{kind} ({}), unlocked", s.backend_reason),
        );
        r.note(
            "credentials",
            "none stored yet: `composer-keyd import` or `composer-keyd add ORIGIN`",
        );
        return;
    };
    match ctx.client.credential(&t.origin, t.lookup.as_deref()).await {
        Ok(_) => r.ok(
            "backend",
            format!("{kind} ({}), unlocked, {} credential(s) stored", s.backend_reason, s.credentials),
        ),
        Err(e) if e.kind() == Some(ErrorKind::BackendUnavailable) => r.problem(
            "backend",
            format!("the {kind} does not answer: {e}"),
            "unlock the login keyring (log in to the desktop session, or `gnome-keyring-daemon --unlock`), then try again",
        ),
        Err(e) if e.kind() == Some(ErrorKind::Locked) => {
            r.problem("backend", e.to_string(), "composer-keyd unlock")
        }
        Err(e) => r.problem(
            "backend",
            format!("reading {} failed: {e}", t.origin),
            format!("composer-keyd rotate {} (to store it again)", t.origin),
        ),
    }
}

fn plugin(r: &mut Report, boxed: bool) {
    // In a container the plugin comes from the mounted home, set up on the host.
    let install = if boxed {
        container::WIRE
    } else {
        "composer-keyd shim install"
    };
    let home = match composer_home::composer_home() {
        Ok(h) => h,
        Err(e) => {
            r.problem("plugin", e.to_string(), "set HOME or COMPOSER_HOME");
            return;
        }
    };
    let st = composer_home::plugin_state(&home);
    if !st.required || !st.installed {
        r.problem(
            "plugin",
            format!(
                "{PLUGIN_PACKAGE} is not installed in the global Composer ({})",
                home.display()
            ),
            install,
        );
    } else if !st.allowed {
        r.problem(
            "plugin",
            format!("{PLUGIN_PACKAGE} is installed but not allowed to run (config.allow-plugins in {}/composer.json)", home.display()),
            format!("composer global config allow-plugins.{PLUGIN_PACKAGE} true"),
        );
    } else {
        r.ok(
            "plugin",
            format!(
                "{PLUGIN_PACKAGE} installed and allowed in {}",
                home.display()
            ),
        );
    }
}

/// Runs a short command with a time-out; its trimmed stdout, or why not.
async fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("COMPOSER_NO_INTERACTION", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not found on PATH".to_owned(),
        _ => e.to_string(),
    })?;
    match tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await {
        Err(_) => Err("did not answer within 30 s".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned()),
        Ok(Ok(o)) => Err(format!("exited with {}", o.status)),
    }
}

/// `(major, minor, patch)` of the first version-looking word.
fn version_of(text: &str) -> Option<(u32, u32, u32)> {
    text.split_whitespace().find_map(|w| {
        let mut it = w.split(['.', '-', '+']).map(|p| p.parse::<u32>());
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
            _ => None,
        }
    })
}

async fn tools(r: &mut Report) {
    match output("php", &["-r", "echo PHP_VERSION;"]).await {
        Ok(v) => match version_of(&v) {
            Some(ver) if ver >= (7, 2, 5) => r.ok("php", &v),
            _ => r.problem(
                "php",
                format!("PHP {v} is older than 7.2.5, which the plugin needs"),
                "install PHP 7.2.5 or newer (e.g. `apt-get install php-cli`)",
            ),
        },
        Err(e) => r.problem("php", e, "install PHP (e.g. `apt-get install php-cli`)"),
    }
    match output("composer", &["--version", "--no-ansi", "--no-plugins"]).await {
        Ok(v) => match version_of(&v) {
            Some(ver) if ver.0 >= 2 => r.ok("composer", &v),
            _ => r.problem(
                "composer",
                format!("`{v}`: the plugin needs Composer 2"),
                "composer self-update --2",
            ),
        },
        Err(e) => r.problem(
            "composer",
            e,
            "install Composer 2 (e.g. `apt-get install composer`)",
        ),
    }
}

async fn credentials(ctx: &Ctx, net: &NetArgs, r: &mut Report) {
    let run = async {
        let cfg = net.config()?;
        let targets = checks::targets(&ctx.client, None).await?;
        checks::run_checks(&ctx.client, &targets, &cfg).await
    };
    match run.await {
        Ok(outcomes) => {
            for o in outcomes {
                let who = match &o.project {
                    Some(p) => format!("check {} (project {p})", o.origin),
                    None => format!("check {}", o.origin),
                };
                let line = checks::describe(&o);
                let first = line.lines().next().unwrap_or_default().to_owned();
                match (&o.advice, &o.expiry_not_stored) {
                    (Some(a), _) => r.problem(&who, first, a),
                    (None, Some(why)) => r.problem(
                        &who,
                        format!(
                            "{first}; the expiry it learned was not stored ({})",
                            composer_keyd::audit::printable(why)
                        ),
                        format!("composer-keyd check {}", o.origin),
                    ),
                    (None, None) => r.ok(&who, first),
                }
            }
        }
        Err(e) => r.problem("credentials", format!("{e:#}"), "composer-keyd check"),
    }
}

/// One line for each credential that expires within the warning window, or has expired.
fn expiry(credentials: &[CredentialInfo], r: &mut Report) {
    let (now, days) = (expiry::now(), config::expiry_warning_days());
    for c in credentials.iter().filter(|c| c.enabled) {
        let target = c.origin.as_typed(c.project.as_deref());
        match expiry::standing(c.expires, now, days) {
            expiry::Standing::Fine => {}
            expiry::Standing::Soon(_) => {
                if let Some(line) = expiry::warning(&target, c.expires, now, days) {
                    r.warn("expiry", line);
                }
            }
            expiry::Standing::Expired => {
                if let Some(line) = expiry::warning(&target, c.expires, now, days) {
                    r.problem("expiry", line, format!("composer-keyd rotate {target}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::version_of;

    #[test]
    fn versions() {
        assert_eq!(version_of("8.2.7"), Some((8, 2, 7)));
        assert_eq!(
            version_of("Composer version 2.5.5 2023-03-21 11:50:05"),
            Some((2, 5, 5))
        );
        assert_eq!(version_of("7.4.33-nmm1"), Some((7, 4, 33)));
        assert_eq!(version_of("nothing"), None);
    }
}
