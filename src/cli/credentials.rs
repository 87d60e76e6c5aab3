//! `add`, `list`, `remove`, `disable`, `enable`, `rotate`: the Marketplace "Access Keys" page on the command line.

use super::{prompt, Ctx};
use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::audit::printable;
use composer_keyd::client::Action;
use composer_keyd::credential::{Credential, CredentialType, Origin};
use composer_keyd::expiry;
use composer_keyd::protocol::{CredentialInfo, PutCredential, PutOutcome, PutReply};
use std::path::PathBuf;
use std::process::ExitCode;

/// One stored credential: an origin and, when scoped, its project.
#[derive(Args, Debug)]
pub struct Target {
    /// The origin: a host, with :port when the repository URL spells one out.
    origin: String,
    /// The project directory the credential is bound to.
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// A team source's entry (OpenBao / Vault KV v2) instead of a local one; the project is
    /// then its composer.json `name`.
    #[arg(long, value_name = "NAME")]
    team: Option<String>,
}

impl Target {
    fn resolve(&self) -> anyhow::Result<(Origin, Option<String>)> {
        let origin = Origin::parse(&self.origin).with_context(|| {
            let shown = composer_keyd::credential::redact_userinfo(&self.origin);
            format!("`{}` is not an origin", printable(&shown))
        })?;
        let project = match &self.project {
            Some(dir) => Some(
                std::fs::canonicalize(dir)
                    .with_context(|| format!("the project directory {}", dir.display()))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            None => None,
        };
        Ok((origin, project))
    }
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    target: Target,
    #[arg(
        long = "type",
        default_value = "http-basic",
        value_name = "TYPE",
        help = format!("One of: {}", CredentialType::names())
    )]
    kind: String,
    /// A note shown by `list`, e.g. the Marketplace key pair's name.
    #[arg(long, value_name = "TEXT")]
    label: Option<String>,
    /// For gitlab-token: also ask for a username.
    #[arg(long)]
    with_username: bool,
    #[command(flatten)]
    cert: CertArgs,
    #[command(flatten)]
    policy: super::policy::PolicyArgs,
    #[command(flatten)]
    expiry: ExpiresArg,
}

/// `--expires`: metadata, so that `doctor`, `exec` and the plugin warn before the date.
#[derive(Args, Debug)]
pub struct ExpiresArg {
    /// When the credential stops working: a date (2026-12-31, UTC), a date and time
    /// (2026-12-31T18:00:00Z) or a duration from now (90d, 2w). `check` learns it from
    /// GitHub and GitLab by itself. Not for Marketplace key pairs, which do not expire, nor
    /// for a team source's entries (`--team`), whose store keeps no expiry.
    // Refused rather than dropped: a date the user typed and nothing kept would make the
    // warning they asked for never come.
    #[arg(long, value_name = "DATE|DURATION", conflicts_with = "team")]
    expires: Option<String>,
}

impl ExpiresArg {
    /// Unix seconds, or `None` when not given.
    fn resolve(&self, origin: &Origin, kind: CredentialType) -> anyhow::Result<Option<u64>> {
        let Some(text) = &self.expires else {
            return Ok(None);
        };
        if !expiry::may_expire(origin, kind) {
            return Err(expiry::ExpiryError::Marketplace.into());
        }
        let now = expiry::now();
        let at = expiry::parse(text, now)?;
        if at <= now {
            eprintln!(
                "composer-keyd: warning: {} is already past; the credential is stored as expired",
                expiry::day(at)
            );
        }
        Ok(Some(at))
    }
}

/// `, expires on DATE` for a line that reports a change.
fn expires_note(info: &CredentialInfo) -> String {
    info.expires
        .map(|at| format!(", expires on {}", expiry::day(at)))
        .unwrap_or_default()
}

/// Where a client certificate's files are: metadata, stored beside the passphrase.
#[derive(Args, Debug)]
pub struct CertArgs {
    /// For client-certificate: the certificate file (PEM), as auth.json's local_cert.
    #[arg(long, value_name = "FILE")]
    local_cert: Option<PathBuf>,
    /// For client-certificate: the private key file (PEM) when it is not in the certificate.
    #[arg(long, value_name = "FILE")]
    local_pk: Option<PathBuf>,
}

impl CertArgs {
    /// Absolute paths, because Composer opens them from whatever directory it runs in.
    fn resolve(&self, kind: CredentialType) -> anyhow::Result<(String, Option<String>)> {
        if kind != CredentialType::ClientCertificate {
            if self.local_cert.is_some() || self.local_pk.is_some() {
                bail!("--local-cert and --local-pk are for --type client-certificate");
            }
            return Ok((String::new(), None));
        }
        let Some(cert) = &self.local_cert else {
            bail!("--type client-certificate needs --local-cert FILE");
        };
        let abs = |p: &PathBuf| -> anyhow::Result<String> {
            let a = std::path::absolute(p).with_context(|| format!("the path {}", p.display()))?;
            if !a.is_file() {
                bail!("{} is not a readable file", a.display());
            }
            a.into_os_string()
                .into_string()
                .map_err(|_| anyhow::anyhow!("{} is not valid UTF-8", p.display()))
        };
        Ok((abs(cert)?, self.local_pk.as_ref().map(abs).transpose()?))
    }
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    target: Target,
    /// Restore the secret the last rotation replaced (not with --expires: the date given
    /// would be for the secret being put away).
    #[arg(long, conflicts_with = "expires")]
    rollback: bool,
    /// The new secret's type (default: the current one).
    #[arg(long = "type", value_name = "TYPE")]
    kind: Option<String>,
    /// For gitlab-token: also ask for a username.
    #[arg(long)]
    with_username: bool,
    #[command(flatten)]
    cert: CertArgs,
    #[command(flatten)]
    expiry: ExpiresArg,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array.
    #[arg(long)]
    json: bool,
}

fn parse_type(s: &str) -> anyhow::Result<CredentialType> {
    CredentialType::parse(s).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown credential type `{}`; use one of: {}",
            printable(s),
            CredentialType::names()
        )
    })
}

/// The field names the prompt shows: the Marketplace's own words for repo.magento.com, whose
/// "Access Keys" page calls the pair a public and a private key.
fn prompt_names(
    kind: CredentialType,
    with_username: bool,
    origin: &Origin,
) -> &'static [&'static str] {
    match kind {
        CredentialType::HttpBasic if origin.as_str() == "repo.magento.com" => {
            &["public-key", "private-key"]
        }
        _ => kind.fields(with_username),
    }
}

/// Reads the secret fields of `kind` and builds the credential.
fn read_credential(
    kind: CredentialType,
    with_username: bool,
    cert: &CertArgs,
    origin: &Origin,
) -> anyhow::Result<Credential> {
    let (local_cert, local_pk) = cert.resolve(kind)?;
    match kind {
        CredentialType::CustomHeaders => {
            let headers = prompt::read_until_empty("header (Name: value)", origin.as_str())?;
            return Ok(Credential::from_fields(kind, headers)?);
        }
        CredentialType::ClientCertificate => {
            let passphrase = prompt::read_optional("key passphrase", origin.as_str())?;
            return Ok(Credential::client_certificate(
                local_cert, local_pk, passphrase,
            )?);
        }
        _ => {}
    }
    let fields = prompt::read_fields(prompt_names(kind, with_username, origin), origin.as_str())?;
    let cred = Credential::from_fields(kind, fields)?;
    if origin.as_str() == "repo.magento.com" {
        if let Credential::HttpBasic { username, password } = &cred {
            if username.char_len() != 32 || password.char_len() != 32 {
                eprintln!(
                    "composer-keyd: warning: Magento Marketplace keys are 32 characters; this pair is {} and {}. Check that you copied the public and private key whole.",
                    username.char_len(),
                    password.char_len()
                );
            }
        }
    }
    Ok(cred)
}

async fn put(
    ctx: &Ctx,
    origin: &Origin,
    project: Option<&str>,
    body: PutCredential,
) -> anyhow::Result<PutReply> {
    Ok(ctx
        .connect()
        .await?
        .put_credential(origin, project, &body)
        .await?)
}

pub async fn add(ctx: &Ctx, a: AddArgs) -> anyhow::Result<ExitCode> {
    let kind = parse_type(&a.kind)?;
    let (origin, project) = a.target.resolve()?;
    if let Some(team) = &a.target.team {
        // Refused before the secret is read: a policy the user asked for and nothing kept
        // would release the entry without the confirmation they expect.
        if a.policy.is_set() {
            bail!(
                "--confirm and --allow-exe are kept with local credentials only; a team \
                 source's entry has no policy of its own (a door's --confirm still asks for it)"
            );
        }
        let credential = read_credential(kind, a.with_username, &a.cert, &origin)?;
        let change = super::team::Change::Put {
            credential,
            label: a.label,
            rotate: false,
        };
        return super::team::change(team, &origin, a.target.project.as_deref(), change).await;
    }
    super::lock::create_vault_if_missing(ctx).await?;
    let expires = a.expiry.resolve(&origin, kind)?;
    let credential = read_credential(kind, a.with_username, &a.cert, &origin)?;
    let reply = put(
        ctx,
        &origin,
        project.as_deref(),
        PutCredential {
            credential,
            label: a.label,
            rotate: false,
            no_clobber: false,
            confirm: a.policy.confirm(),
            allow_exe: a.policy.allow_exe()?,
            expires,
            confirm_scope: a.policy.confirm_scope()?,
        },
    )
    .await?;
    let verb = match reply.outcome {
        PutOutcome::Created => "Added",
        PutOutcome::Unchanged => "Already stored:",
        _ => "Replaced",
    };
    println!(
        "{verb} {kind} credential for {}{}.",
        describe(&reply.info),
        expires_note(&reply.info)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn rotate(ctx: &Ctx, a: RotateArgs) -> anyhow::Result<ExitCode> {
    let (origin, project) = a.target.resolve()?;
    if let Some(team) = &a.target.team {
        let dir = a.target.project.as_deref();
        let change = if a.rollback {
            super::team::Change::Rollback
        } else {
            let kind = match &a.kind {
                Some(k) => parse_type(k)?,
                None => super::team::current_kind(team, &origin, dir).await?,
            };
            super::team::Change::Put {
                credential: read_credential(kind, a.with_username, &a.cert, &origin)?,
                label: None,
                rotate: true,
            }
        };
        return super::team::change(team, &origin, dir, change).await;
    }
    if a.rollback {
        let info = act(ctx, &origin, project.as_deref(), Action::Rollback).await?;
        println!("Rolled back {} to its previous secret.", describe(&info));
        return Ok(ExitCode::SUCCESS);
    }
    let kind = match &a.kind {
        Some(k) => parse_type(k)?,
        None => current_kind(ctx, &origin, project.as_deref()).await?,
    };
    let expires = a.expiry.resolve(&origin, kind)?;
    let credential = read_credential(kind, a.with_username, &a.cert, &origin)?;
    let reply = put(
        ctx,
        &origin,
        project.as_deref(),
        PutCredential {
            credential,
            label: None,
            rotate: true,
            no_clobber: false,
            confirm: None,
            allow_exe: None,
            expires,
            confirm_scope: None,
        },
    )
    .await?;
    match reply.outcome {
        PutOutcome::Unchanged => println!(
            "{} already has that secret; nothing changed.",
            describe(&reply.info)
        ),
        _ => println!(
            "Rotated {}{}. The old secret is kept: `composer-keyd rotate --rollback {}` restores it.",
            describe(&reply.info),
            expires_note(&reply.info),
            target_args(&reply.info)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

async fn current_kind(
    ctx: &Ctx,
    origin: &Origin,
    project: Option<&str>,
) -> anyhow::Result<CredentialType> {
    let list = fetch_list(ctx).await?;
    match list
        .iter()
        .find(|c| &c.origin == origin && c.project.as_deref() == project)
    {
        Some(c) => Ok(c.kind),
        None => bail!(
            "no credential stored for {}; add one with `composer-keyd add`",
            origin.as_typed(project)
        ),
    }
}

async fn fetch_list(ctx: &Ctx) -> anyhow::Result<Vec<CredentialInfo>> {
    Ok(ctx.connect().await?.credentials().await?.credentials)
}

pub async fn list(ctx: &Ctx, a: ListArgs) -> anyhow::Result<ExitCode> {
    let creds = fetch_list(ctx).await?;
    let team_rows = super::team::list_rows().await;
    if a.json {
        // Each entry says where it comes from, as the table's SOURCE column does.
        let mut all = Vec::with_capacity(creds.len() + team_rows.len());
        for c in &creds {
            let mut v = serde_json::to_value(c)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("source".into(), "local".into());
            }
            all.push(v);
        }
        all.extend(team_rows.iter().map(super::team::ListRow::json));
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    if creds.is_empty() && team_rows.is_empty() {
        println!("No credentials stored. Add one with `composer-keyd add ORIGIN` or `composer-keyd import`.");
        return Ok(ExitCode::SUCCESS);
    }
    let now = expiry::now();
    let mut rows: Vec<[String; 8]> = creds
        .iter()
        .map(|c| {
            [
                c.origin.to_string(),
                c.kind.to_string(),
                c.project.clone().unwrap_or_else(|| "(all projects)".into()),
                if c.enabled { "enabled" } else { "DISABLED" }.into(),
                c.last_used.map_or_else(|| "never".into(), date),
                expires_cell(c.expires, now),
                c.label.clone().unwrap_or_default(),
                "local".into(),
            ]
        })
        .collect();
    rows.extend(team_rows.iter().map(super::team::ListRow::cells));
    let head = [
        "ORIGIN",
        "TYPE",
        "PROJECT",
        "STATE",
        "LAST USED",
        "EXPIRES",
        "LABEL",
        "SOURCE",
    ];
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&head);
    for r in &rows {
        line(&r.each_ref().map(String::as_str));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(ctx: &Ctx, t: Target) -> anyhow::Result<ExitCode> {
    let (origin, project) = t.resolve()?;
    if let Some(team) = &t.team {
        let change = super::team::Change::Remove;
        return super::team::change(team, &origin, t.project.as_deref(), change).await;
    }
    let info = act(ctx, &origin, project.as_deref(), Action::Remove).await?;
    println!("Removed {}.", describe(&info));
    Ok(ExitCode::SUCCESS)
}

pub async fn set_enabled(ctx: &Ctx, t: Target, enabled: bool) -> anyhow::Result<ExitCode> {
    let (origin, project) = t.resolve()?;
    if let Some(team) = &t.team {
        let change = super::team::Change::Enable(enabled);
        return super::team::change(team, &origin, t.project.as_deref(), change).await;
    }
    let action = if enabled {
        Action::Enable
    } else {
        Action::Disable
    };
    let info = act(ctx, &origin, project.as_deref(), action).await?;
    let verb = if enabled { "Enabled" } else { "Disabled" };
    println!("{verb} {}.", describe(&info));
    Ok(ExitCode::SUCCESS)
}

/// Calls a route on one credential that answers with its metadata.
async fn act(
    ctx: &Ctx,
    origin: &Origin,
    project: Option<&str>,
    action: Action,
) -> anyhow::Result<CredentialInfo> {
    Ok(ctx.connect().await?.act(origin, project, action).await?)
}

fn describe(info: &CredentialInfo) -> String {
    match &info.project {
        Some(p) => format!("{} (project {p})", info.origin),
        None => info.origin.to_string(),
    }
}

fn target_args(info: &CredentialInfo) -> String {
    info.origin.as_typed(info.project.as_deref())
}

/// A Unix time as an RFC 3339 date, to the second.
pub fn date(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// The EXPIRES cell of `list`: `-` when unknown, the day, and `(EXPIRED)` once past.
fn expires_cell(at: Option<u64>, now: u64) -> String {
    match at {
        None => "-".into(),
        Some(at) if at <= now => format!("{} (EXPIRED)", expiry::day(at)),
        Some(at) => expiry::day(at),
    }
}
