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
    /// When it expires (Unix seconds), as learned or stored; `None` when not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// Why the expiry this check learned could not be stored (e.g. the credential changed
    /// meanwhile); the check's other results stand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_not_stored: Option<String>,
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

/// A learned expiry to store beside the secret it was learned with.
struct WriteBack {
    /// Which outcome it belongs to.
    index: usize,
    origin: Origin,
    scope: Option<String>,
    body: PutCredential,
}

/// Fetches each credential from the daemon and checks it, then stores the expiries learned.
/// Disabled ones are left out. One expiry that cannot be stored (the credential changed or
/// went meanwhile) is noted on its outcome; the others are still stored.
pub async fn run_checks(
    client: &Client,
    targets: &[Target],
    cfg: &CheckConfig,
) -> anyhow::Result<Vec<Outcome>> {
    let mut out = Vec::new();
    let mut learned = Vec::new();
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
            // Stored beside the same secret (`no_clobber`: not over one that changed since it
            // was read): metadata the daemon keeps, as `add --expires` would.
            learned.push(WriteBack {
                index: out.len(),
                origin: t.origin.clone(),
                scope: t.scope.clone(),
                body: PutCredential {
                    credential: (*reply.credential).clone(),
                    label: None,
                    rotate: false,
                    no_clobber: true,
                    confirm: None,
                    allow_exe: None,
                    expires: Some(expires.unwrap_or(0)),
                    confirm_scope: None,
                },
            });
        }
        out.push(Outcome {
            advice: check::advice(&reply.origin, t.scope.as_deref(), &verdict),
            url: Some(check::probe_url(&reply.origin, &reply.credential, cfg)),
            origin: reply.origin.clone(),
            project: t.scope.clone(),
            verdict,
            expires,
            expiry_not_stored: None,
        });
    }
    store_learned(&mut out, learned, |w| async move {
        client
            .put_credential(&w.origin, w.scope.as_deref(), &w.body)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    Ok(out)
}

/// Stores each of `learned` with `store`, noting on its outcome why one could not be; the
/// rest are stored all the same.
async fn store_learned<F, Fut>(outcomes: &mut [Outcome], learned: Vec<WriteBack>, store: F)
where
    F: Fn(WriteBack) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for w in learned {
        let index = w.index;
        if let Err(why) = store(w).await {
            if let Some(o) = outcomes.get_mut(index) {
                o.expiry_not_stored = Some(why);
            }
        }
    }
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
    if let Some(why) = &o.expiry_not_stored {
        s.push_str(&format!(
            "\n            the expiry was not stored ({}); run `composer-keyd check {}` again",
            composer_keyd::audit::printable(why),
            o.origin
        ));
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
    let bad = outcomes
        .iter()
        .filter(|o| !o.verdict.is_ok() || o.expiry_not_stored.is_some())
        .count()
        + missing.len();
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

#[cfg(test)]
mod tests {
    use super::*;
    use composer_keyd::credential::Credential;
    use std::sync::Mutex;

    fn outcome(origin: &Origin) -> Outcome {
        Outcome {
            origin: origin.clone(),
            project: None,
            url: None,
            verdict: Verdict::Ok { status: 200 },
            advice: None,
            expires: Some(1_900_000_000),
            expiry_not_stored: None,
        }
    }

    fn write_back(index: usize, origin: &Origin) -> WriteBack {
        WriteBack {
            index,
            origin: origin.clone(),
            scope: None,
            body: PutCredential {
                credential: Credential::Bearer { token: "t".into() },
                label: None,
                rotate: false,
                no_clobber: true,
                confirm: None,
                allow_exe: None,
                expires: Some(1_900_000_000),
                confirm_scope: None,
            },
        }
    }

    #[tokio::test]
    async fn one_expiry_not_stored_is_reported_and_the_rest_are_stored() {
        let origins: Vec<Origin> = ["a.example", "b.example", "c.example"]
            .iter()
            .map(|o| Origin::parse(o).unwrap())
            .collect();
        let mut outcomes: Vec<Outcome> = origins.iter().map(outcome).collect();
        let learned = origins
            .iter()
            .enumerate()
            .map(|(i, o)| write_back(i, o))
            .collect();
        let stored = Mutex::new(Vec::new());
        store_learned(&mut outcomes, learned, |w| {
            let stored = &stored;
            async move {
                if w.origin.as_str() == "b.example" {
                    return Err("b.example changed since it was read".to_owned());
                }
                stored.lock().unwrap().push(w.origin.to_string());
                Ok(())
            }
        })
        .await;
        assert_eq!(*stored.lock().unwrap(), ["a.example", "c.example"]);
        let noted: Vec<_> = outcomes
            .iter()
            .map(|o| o.expiry_not_stored.as_deref())
            .collect();
        assert_eq!(
            noted,
            [None, Some("b.example changed since it was read"), None]
        );
        let shown = describe(&outcomes[1]);
        assert!(
            shown.contains("the expiry was not stored")
                && shown.contains("composer-keyd check b.example"),
            "{shown}"
        );
    }
}
