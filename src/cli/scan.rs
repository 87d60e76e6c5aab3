//! `scan`: finds plaintext Composer credentials; exits 1 when it finds any, so it can guard a
//! commit or a CI run.

use anyhow::Context;
use clap::Args;
use composer_keyd::composer_home;
use composer_keyd::credential::CredentialType;
use composer_keyd::scan::{self, Finding};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files and directories to search (default: the current project, if any, and COMPOSER_HOME).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Print a JSON array of findings.
    #[arg(long)]
    json: bool,
    /// Also search every committed version of auth.json, composer.json and composer.lock.
    #[arg(long)]
    git_history: bool,
    /// Do not report COMPOSER_AUTH in the environment (a CI job that injects it on purpose).
    #[arg(long)]
    no_env: bool,
}

/// Everything `scan` with default paths finds; shared with `doctor`.
pub fn default_findings() -> anyhow::Result<(Vec<Finding>, Vec<String>)> {
    let cwd = std::env::current_dir().context("the current directory")?;
    let home = composer_home::composer_home()?;
    // Outside a project only COMPOSER_HOME is searched: walking all of $HOME is not a default.
    let mut paths: Vec<PathBuf> = composer_home::find_project(&cwd)
        .map(|p| p.root)
        .into_iter()
        .collect();
    if home.is_dir() {
        paths.push(home.clone());
    }
    let (mut found, problems) = scan::scan_paths(&paths, Some(&home));
    found.extend(env_findings());
    Ok((found, problems))
}

fn env_findings() -> Vec<Finding> {
    match std::env::var("COMPOSER_AUTH") {
        Ok(v) if !v.trim().is_empty() => {
            let v = zeroize::Zeroizing::new(v);
            scan::scan_env(&v)
        }
        _ => Vec::new(),
    }
}

/// The command that fixes a finding.
pub fn fix_for(f: &Finding) -> String {
    if f.file == "$COMPOSER_AUTH" {
        return "composer-keyd import --from-env".into();
    }
    let file = &f.file;
    let add = |t: &str| {
        if f.origin == "-" {
            "composer-keyd add ORIGIN".to_owned()
        } else {
            let cert = if t == "client-certificate" {
                " --local-cert FILE"
            } else {
                ""
            };
            format!("composer-keyd add {} --type {t}{cert}", f.origin)
        }
    };
    if f.commit.is_some() {
        return format!(
            "it is in git history: revoke it where it was issued, then store the new one with `{}`",
            add(if CredentialType::parse(&f.kind).is_some() {
                &f.kind
            } else {
                "http-basic"
            })
        );
    }
    match f.kind.as_str() {
        scan::LEFTOVER_TEMP => format!(
            "delete it with `rm -- {file}`: a composer-keyd write was killed before it finished, and the file it was replacing is intact (`composer-keyd import` also removes these next to the auth.json files it handles)"
        ),
        "unreadable" => format!("fix the JSON in {file}, then run `composer-keyd import {file}`"),
        "url-credentials" => format!(
            "remove user:password@ from the URL at {} in {file}, then `{}`",
            f.at,
            add("http-basic")
        ),
        "auth-header" => format!(
            "remove the header at {} in {file}, then `{}`",
            f.at,
            add("bearer")
        ),
        t if f.at.starts_with("config.") => {
            format!(
                "`{}`, then delete {}.{} from {file}",
                add(t),
                f.at,
                f.origin
            )
        }
        _ => format!("composer-keyd import {file}"),
    }
}

pub fn run(a: ScanArgs) -> anyhow::Result<ExitCode> {
    let (mut found, problems) = if a.paths.is_empty() {
        let (mut f, p) = default_findings()?;
        if a.no_env {
            f.retain(|x| x.file != "$COMPOSER_AUTH");
        }
        (f, p)
    } else {
        let home = composer_home::composer_home().ok();
        let (mut f, p) = scan::scan_paths(&a.paths, home.as_deref());
        if !a.no_env {
            f.extend(env_findings());
        }
        (f, p)
    };
    if a.git_history {
        let dir = match a.paths.iter().find(|p| p.is_dir()) {
            Some(d) => d.clone(),
            None => {
                let cwd = std::env::current_dir().context("the current directory")?;
                composer_home::find_project(&cwd).map_or(cwd, |p| p.root)
            }
        };
        found.extend(scan::scan_git_history(&dir)?);
    }
    for p in &problems {
        eprintln!("composer-keyd: warning: could not read {p}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else if found.is_empty() {
        println!("No plaintext Composer credentials found.");
    } else {
        for f in &found {
            println!("{}", f.line());
            println!("    fix: {}", fix_for(f));
        }
        println!(
            "{} plaintext credential(s) found. `composer-keyd import` moves auth.json secrets into the keyring.",
            found.len()
        );
    }
    Ok(if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
