//! `check`: a live request with each stored credential, and a verdict for each.

use super::Ctx;
use anyhow::Context;
use clap::Args;
use composer_keyd::check::{self, CheckConfig, Learned, Scheme, Verdict};
use composer_keyd::client::{Client, ClientError};
use composer_keyd::composer_home;
use composer_keyd::credential::Origin;
use composer_keyd::protocol::{ErrorKind, PutCredential};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Origins to check (default: every stored credential, or those applying to --project).
    #[arg(value_name = "ORIGIN")]
    origins: Vec<String>,
    /// Check the credentials that apply to this project directory.
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(flatten)]
    net: NetArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How checks reach repositories; shared with `doctor`.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// `https`, or `http` for plain-HTTP repositories.
    #[arg(long, env = "COMPOSER_KEYD_CHECK_SCHEME", default_value = "https", value_parser = ["https", "http"])]
    scheme: String,
    /// Connect to HOST:PORT for ORIGIN instead of ORIGIN's own address (comma-separated list).
    #[arg(
        long,
        env = "COMPOSER_KEYD_CHECK_CONNECT_TO",
        value_name = "ORIGIN=HOST:PORT"
    )]
    connect_to: Vec<String>,
    /// Seconds each request may take.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

impl NetArgs {
    /// The check configuration, with Composer's CA settings for the project in `dir`.
    pub fn config(&self) -> anyhow::Result<CheckConfig> {
        let scheme = if self.scheme == "http" {
            Scheme::Http
        } else {
            Scheme::Https
        };
        let home = composer_home::composer_home()?;
        let project = std::env::current_dir()
            .ok()
            .and_then(|d| composer_home::find_project(&d));
        let cas = composer_home::ca_locations(&home, project.as_ref());
        Ok(CheckConfig::new(
            scheme,
            &self.connect_to,
            Duration::from_secs(self.timeout.max(1)),
            &cas,
        )?)
    }
}

/// One credential's result.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub origin: Origin,
    pub project: Option<String>,
    pub url: Option<String>,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// What to do when it is not ok.
    pub advice: Option<String>,
    /// When it expires (Unix seconds), as stored after this check; `None` when not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// What to check: `(origin, scope, lookup project)`.
pub struct Target {
    pub origin: Origin,
    pub scope: Option<String>,
    pub lookup: Option<String>,
    pub enabled: bool,
    /// The expiry the daemon has for it.
    pub expires: Option<u64>,
}

/// Every stored credential, or those applying to `project`.
pub async fn targets(client: &Client, project: Option<&str>) -> anyhow::Result<Vec<Target>> {
    Ok(match project {
        Some(dir) => client
            .origins(dir)
            .await?
            .origins
            .into_iter()
            .map(|o| Target {
                origin: o.origin,
                scope: o.project,
                lookup: Some(dir.to_owned()),
                enabled: o.enabled,
                expires: o.expires,
            })
            .collect(),
        None => client
            .credentials()
            .await?
            .credentials
            .into_iter()
            .map(|c| Target {
                origin: c.origin,
                lookup: c.project.clone(),
                scope: c.project,
                enabled: c.enabled,
                expires: c.expires,
            })
            .collect(),
    })
}

/// Fetches each credential from the daemon and checks it. Disabled ones are left out.
pub async fn run_checks(
    client: &Client,
    targets: &[Target],
    cfg: &CheckConfig,
) -> anyhow::Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for t in targets.iter().filter(|t| t.enabled) {
        let reply = match client.credential(&t.origin, t.lookup.as_deref()).await {
            Ok(r) => r,
            Err(ClientError::Daemon {
                kind: ErrorKind::Disabled,
                ..
            }) => continue,
            Err(e) => return Err(e).context(format!("reading the credential for {}", t.origin)),
        };
        let checked = check::check_learning(&reply.origin, &reply.credential, cfg).await;
        let verdict = checked.verdict;
        let expires = match checked.expires {
            Learned::Nothing => t.expires,
            Learned::At(at) => Some(at),
            Learned::Never => None,
        };
        if expires != t.expires {
            // Stored beside the same secret: metadata the daemon keeps, as `add --expires` would.
            let body = PutCredential {
                credential: (*reply.credential).clone(),
                label: None,
                rotate: false,
                no_clobber: true,
                confirm: None,
                allow_exe: None,
                expires: Some(expires.unwrap_or(0)),
                confirm_scope: None,
            };
            client
                .put_credential(&t.origin, t.scope.as_deref(), &body)
                .await
                .with_context(|| format!("storing the expiry of {}", t.origin))?;
        }
        out.push(Outcome {
            advice: check::advice(&reply.origin, t.scope.as_deref(), &verdict),
            url: Some(check::probe_url(&reply.origin, &reply.credential, cfg)),
            origin: reply.origin.clone(),
            project: t.scope.clone(),
            verdict,
            expires,
        });
    }
    Ok(out)
}

/// One line (and the advice under it) for people.
pub fn describe(o: &Outcome) -> String {
    let who = match &o.project {
        Some(p) => format!("{} (project {p})", o.origin),
        None => o.origin.to_string(),
    };
    let detail = match &o.verdict {
        Verdict::Ok { status } | Verdict::Rejected { status } | Verdict::Unexpected { status } => {
            format!("HTTP {status} from {}", o.url.as_deref().unwrap_or("?"))
        }
        Verdict::Unreachable { reason } => reason.clone(),
    };
    let mut s = format!("{:<11} {who}: {detail}", o.verdict.name());
    if let Some(at) = o.expires {
        s.push_str(&format!("; expires on {}", composer_keyd::expiry::day(at)));
    }
    if let Some(a) = &o.advice {
        s.push_str(&format!("\n            {a}"));
    }
    s
}

pub async fn run(ctx: &Ctx, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.net.config()?;
    let project = match &a.project {
        Some(d) => Some(
            std::fs::canonicalize(d)
                .with_context(|| format!("the project directory {}", d.display()))?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    let wanted: Vec<Origin> = a
        .origins
        .iter()
        .map(|o| {
            Origin::parse(o).with_context(|| {
                let shown = composer_keyd::credential::redact_userinfo(o);
                format!("`{shown}` is not an origin")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let client = ctx.connect().await?;
    let mut all = targets(client, project.as_deref()).await?;
    if !wanted.is_empty() {
        all.retain(|t| wanted.contains(&t.origin));
    }
    let missing: Vec<&Origin> = wanted
        .iter()
        .filter(|w| !all.iter().any(|t| &t.origin == *w))
        .collect();
    let outcomes = run_checks(client, &all, &cfg).await?;
    let disabled = all.iter().filter(|t| !t.enabled).count();
    let bad = outcomes.iter().filter(|o| !o.verdict.is_ok()).count() + missing.len();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in &outcomes {
            println!("{}", describe(o));
        }
        for m in &missing {
            println!("missing     {m}: no credential stored; add one with `composer-keyd add {m}`");
        }
        if disabled > 0 {
            println!("({disabled} disabled credential(s) not checked)");
        }
        if outcomes.is_empty() && missing.is_empty() {
            println!("No credentials to check.");
        }
    }
    Ok(if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
