//! `git-credential get|store|erase|install|uninstall`: git's credential helper, backed by the daemon.

use super::Ctx;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use composer_keyd::client::{Action, Client, ClientError};
use composer_keyd::credential::{redact_userinfo, Credential, Origin};
use composer_keyd::gitcred::{self, Answer, Request};
use composer_keyd::protocol::{ErrorKind, PutCredential};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

#[derive(Args, Debug)]
pub struct GitCredentialArgs {
    /// The project whose scoped credentials apply (default: git's working directory).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Let git's `store` and `erase` reach the daemon (off: both are ignored).
    #[arg(long)]
    allow_store: bool,
    /// When there is no answer, tell git to stop (`quit=1`) instead of trying its next
    /// helper or prompt. The Composer plugin sets it: a git that fails with an
    /// authentication error makes Composer retry with the credential in the URL (argv).
    #[arg(long)]
    strict: bool,
    #[command(subcommand)]
    op: Op,
}

#[derive(Subcommand, Debug)]
enum Op {
    /// (git) Answer git's request with the stored credential, or with nothing.
    Get,
    /// (git) Offer credentials that worked to the daemon, never replacing other ones.
    Store,
    /// (git) Disable the stored credential git reports as rejected (it stays stored).
    Erase,
    /// Configure this helper in your global git config, for plain `git clone`.
    Install(HostArgs),
    /// Remove exactly what `install` added.
    Uninstall(HostArgs),
    /// Operations a newer git may send: ignored, as the protocol asks.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Args, Debug)]
struct HostArgs {
    /// `HOST[:PORT]` (https) or `http://HOST[:PORT]`; repeatable. Default: every stored
    /// origin (install), or every entry install wrote (uninstall).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Install with store/erase enabled.
    #[arg(long)]
    allow_store: bool,
}

/// Runs the helper. Git must always be able to move on: a daemon that is absent, locked or
/// has nothing for the host leaves stdout empty and exits 0.
pub async fn run(ctx: &Ctx, args: GitCredentialArgs) -> anyhow::Result<ExitCode> {
    match args.op {
        Op::Install(h) => return install(ctx, h).await,
        Op::Uninstall(h) => return uninstall(h),
        Op::Other(op) => {
            tracing::debug!("ignoring the operation {:?}", op.first());
            return Ok(ExitCode::SUCCESS);
        }
        Op::Get | Op::Store | Op::Erase => {}
    }
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(gitcred::MAX_REQUEST as u64 + 1)
        .read_to_end(&mut input)
        .context("reading git's request")?;
    let input = zeroize::Zeroizing::new(input);
    let req = match Request::parse(&input) {
        Ok(req) => req,
        Err(e) if args.strict && matches!(args.op, Op::Get) => {
            return Ok(quit(&format!("git's request: {e}")));
        }
        Err(e) => return Err(e).context("git's request"),
    };
    let Some(origin) = req.origin() else {
        if args.strict && matches!(args.op, Op::Get) {
            return Ok(quit("git asked about something other than an http(s) host"));
        }
        return Ok(ExitCode::SUCCESS);
    };
    let project = match project_dir(args.project) {
        Ok(p) => p,
        Err(why) if args.strict && matches!(args.op, Op::Get) => {
            return Ok(quit(&format!("{origin}: {why}")));
        }
        Err(why) => {
            eprintln!("composer-keyd git-credential: {origin}: {why}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.strict && matches!(args.op, Op::Erase) {
        // The server refused what git was given: stop git before it reports
        // "Authentication failed", which Composer answers with the credential in the URL.
        if let Some(pid) = gitcred::stop::remote_helper_ancestor() {
            eprintln!(
                "composer-keyd: {origin} refused the credential git was given; git is stopped \
                 here so that Composer does not retry with it in git's command line"
            );
            gitcred::stop::stop(pid);
        }
    }
    let client = &ctx.client;
    let res = match args.op {
        Op::Get => get(client, &origin, project.as_deref(), &req).await,
        Op::Store if args.allow_store => store(client, &origin, project.as_deref(), &req).await,
        Op::Erase if args.allow_store => erase(client, &origin, project.as_deref(), &req).await,
        _ => Ok(Given::Yes),
    };
    let why = match res {
        Ok(Given::Yes) => return Ok(ExitCode::SUCCESS),
        // Logged at info by `get`; git's next helper or prompt takes over.
        Ok(Given::No(_)) if !args.strict => return Ok(ExitCode::SUCCESS),
        Ok(Given::No(why)) => why,
        Err(e) if quiet(&e) && !args.strict => return Ok(ExitCode::SUCCESS),
        Err(ClientError::Daemon {
            kind: ErrorKind::Locked,
            ..
        }) => format!("{origin}: composer-keyd is locked (run `composer-keyd unlock`)"),
        // The message holds no secret.
        Err(e) => format!("{origin}: {e}"),
    };
    if args.strict && matches!(args.op, Op::Get) {
        return Ok(quit(&why));
    }
    // Git shows a helper's stderr and moves on.
    eprintln!("composer-keyd git-credential: {why}");
    Ok(ExitCode::SUCCESS)
}

/// Whether the helper gave git what it asked for; if not, why (for `-v`, or `--strict`'s line).
enum Given {
    Yes,
    No(String),
}

/// `--strict` with no answer: one line on stderr, which Composer shows in its error, and
/// `quit=1`, so that git fails with "told us to quit" at once. That is none of the
/// failures after which Composer's `Util\Git` retries with the credential in the URL.
fn quit(why: &str) -> ExitCode {
    eprintln!(
        "composer-keyd: git gets no credential for {why}; \
         Composer's retry with the credential in git's command line is stopped"
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"quit=1\n").and_then(|()| out.flush());
    ExitCode::SUCCESS
}

/// The project whose scope applies, as the daemon spells it (UTF-8), made canonical.
/// A path that is not UTF-8 cannot be named to the daemon; replacing its bytes could name
/// another project, so it is refused.
fn project_dir(given: Option<PathBuf>) -> Result<Option<String>, String> {
    let Some(dir) = given.or_else(|| std::env::current_dir().ok()) else {
        return Ok(None);
    };
    let Ok(real) = std::fs::canonicalize(&dir) else {
        return Ok(None);
    };
    match real.into_os_string().into_string() {
        Ok(s) => Ok(Some(s)),
        Err(_) => Err(format!(
            "the project directory {} is not UTF-8, which the daemon cannot look up",
            dir.display()
        )),
    }
}

/// Nothing stored, disabled, or no daemon: git's next helper or prompt takes over.
fn quiet(e: &ClientError) -> bool {
    matches!(e, ClientError::NotRunning { .. })
        || matches!(
            e.kind(),
            Some(ErrorKind::NotFound | ErrorKind::Disabled | ErrorKind::Forbidden)
        )
}

async fn get(
    client: &Client,
    origin: &Origin,
    project: Option<&str>,
    req: &Request,
) -> Result<Given, ClientError> {
    let reply = client.credential(origin, project).await?;
    let answer = gitcred::answer(&reply.credential, req);
    if let Answer::Nothing(why) = answer {
        tracing::info!("{origin}: {why}");
        return Ok(Given::No(format!("{origin}: {why}")));
    }
    match answer.render() {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe means git stopped listening; there is nobody to tell.
            let _ = out.write_all(lines.as_bytes()).and_then(|()| out.flush());
            Ok(Given::Yes)
        }
        Err(e) => {
            eprintln!("composer-keyd git-credential: {origin}: {e}");
            Ok(Given::No(format!("{origin}: {e}")))
        }
    }
}

/// Stores what git confirmed working as http-basic, scoped to the project git asked from
/// (`--project`, else its working directory), and only when no stored credential applies
/// there: an unscoped one would also answer for every other project, wider than what git was
/// asked for, and one beside a credential that applies would copy or shadow it.
async fn store(
    client: &Client,
    origin: &Origin,
    project: Option<&str>,
    req: &Request,
) -> Result<Given, ClientError> {
    let (Some(u), Some(p), Some(project)) = (&req.username, &req.password, project) else {
        return Ok(Given::Yes);
    };
    let list = client.credentials().await?;
    let applies = list.credentials.iter().any(|c| {
        c.origin == *origin
            && c.project
                .as_deref()
                .is_none_or(|scope| std::path::Path::new(project).starts_with(scope))
    });
    if applies {
        return Ok(Given::Yes);
    }
    let Ok(credential) = Credential::from_fields(
        composer_keyd::credential::CredentialType::HttpBasic,
        vec![u.clone(), p.clone()],
    ) else {
        return Ok(Given::Yes);
    };
    let body = PutCredential {
        credential,
        label: Some("stored by git".into()),
        rotate: false,
        no_clobber: true,
        confirm: None,
        allow_exe: None,
        expires: None,
        confirm_scope: None,
    };
    client.put_credential(origin, Some(project), &body).await?;
    Ok(Given::Yes)
}

/// Git erases what the server rejected. Deleting could lose the only copy on a transient
/// 401, so the matching credential is disabled instead (`composer-keyd enable` undoes it).
async fn erase(
    client: &Client,
    origin: &Origin,
    project: Option<&str>,
    req: &Request,
) -> Result<Given, ClientError> {
    let reply = client.credential(origin, project).await?;
    let matches = match gitcred::answer(&reply.credential, req) {
        Answer::Basic { username, password } => {
            req.username.as_ref().map(|u| u.expose().as_str()) == Some(username.as_str())
                && req.password.as_ref().map(|p| p.expose().as_str()) == Some(password.as_str())
        }
        _ => false,
    };
    if matches {
        client
            .act(origin, reply.project.as_deref(), Action::Disable)
            .await?;
        eprintln!("composer-keyd: git reported the credential for {origin} as rejected; disabled it (`composer-keyd enable {origin}` restores it)");
    }
    Ok(Given::Yes)
}

fn this_exe() -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    exe.to_str()
        .map(str::to_owned)
        .context("this program's path is not UTF-8")
}

async fn install(ctx: &Ctx, args: HostArgs) -> anyhow::Result<ExitCode> {
    let mut hosts = args.hosts;
    if hosts.is_empty() {
        let list = ctx.connect().await?.credentials().await?;
        hosts = list
            .credentials
            .into_iter()
            .map(|c| c.origin.to_string())
            .collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            bail!("no credential is stored yet; add one, or name hosts with --host");
        }
    }
    let value = gitcred::helper_value(&this_exe()?, args.allow_store);
    for host in &hosts {
        let key = gitcred::helper_key(host).with_context(|| {
            format!(
                "`{}` is not a host or http(s)://host URL",
                redact_userinfo(host)
            )
        })?;
        let existing = git_config(&["--get-all", &key])?;
        if existing.lines().any(|l| l == value) {
            println!("{key} already uses composer-keyd");
            continue;
        }
        git_config(&["--add", &key, &value])?;
        println!("{key} = {value}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a helper value is one `install` writes (any binary path, with or without store).
fn is_ours(value: &str) -> bool {
    let rest = value
        .strip_suffix(" --allow-store")
        .unwrap_or(value)
        .strip_suffix(" git-credential");
    rest.is_some_and(|r| r.starts_with("!'") && r.ends_with("composer-keyd'"))
}

fn uninstall(args: HostArgs) -> anyhow::Result<ExitCode> {
    let wanted: Vec<String> = args
        .hosts
        .iter()
        .map(|h| {
            gitcred::helper_key(h)
                .with_context(|| format!("`{}` is not a host", redact_userinfo(h)))
        })
        .collect::<anyhow::Result<_>>()?;
    let entries = git_config(&["--get-regexp", r"^credential\..*\.helper$"])?;
    let mut removed = 0;
    for line in entries.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if !is_ours(value) || !(wanted.is_empty() || wanted.iter().any(|w| w == key)) {
            continue;
        }
        git_config(&["--fixed-value", "--unset-all", key, value])?;
        println!("removed {key} = {value}");
        removed += 1;
        // install created the section; leave none behind when nothing else is in it.
        let section = key.strip_suffix(".helper").unwrap_or(key);
        let rest = git_config(&["--get-regexp", &format!("^{}\\.", regex_escape(section))])?;
        if rest.trim().is_empty() {
            let _ = git_config(&["--remove-section", section]);
        }
    }
    if removed == 0 {
        println!("no composer-keyd helper was configured");
    }
    Ok(ExitCode::SUCCESS)
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.^$|?*+()[]{}".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// `git config --global ARGS`; exit 1 (nothing matched) is an empty answer.
fn git_config(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(["config", "--global"])
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Some(1) => Ok(String::new()),
        _ => bail!(
            "git config --global {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}
