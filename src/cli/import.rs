//! `import`: moves auth.json and COMPOSER_AUTH secrets into the store, then scrubs the files.
//!
//! Every secret is stored before any file changes, and a file is scrubbed only of entries the
//! daemon confirmed, so a kill at any point loses nothing and a rerun finishes the job.

use super::Ctx;
use anyhow::Context;
use clap::Args;
use composer_keyd::atomic::{Shared, Stage};
use composer_keyd::authjson::{self, AuthDoc, Entry, Scrubbed, Skipped};
use composer_keyd::client::Client;
use composer_keyd::composer_home;
use composer_keyd::protocol::{BackendKind, PutCredential, PutOutcome};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// auth.json files (default: the global one in COMPOSER_HOME, the project's, and the
    /// project's var/composer_home/auth.json).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the plan; store nothing and change no file.
    #[arg(long)]
    dry_run: bool,
    /// Overwrite a stored credential that holds a different secret.
    #[arg(long)]
    replace: bool,
    /// Import COMPOSER_AUTH from the environment (only it, unless FILEs are given too).
    #[arg(long)]
    from_env: bool,
    /// Read and rewrite auth.json files in directories that other users own or can write.
    /// They could swap the file while it is rewritten; without this, such files are refused.
    #[arg(long)]
    allow_shared_dir: bool,
}

mod source;
use source::{Allow, Input};

// Test pauses (`COMPOSER_KEYD_TEST_PAUSE`, debug builds only), for a test to kill the import.
use composer_keyd::testhook::{pause, pause_async};

/// The files `import` reads when given none: the global auth.json, and the project's own
/// and its `var/composer_home/auth.json`.
pub fn default_files(home: &Path, project: Option<&composer_home::Project>) -> Vec<PathBuf> {
    let mut files = vec![home.join("auth.json")];
    if let Some(p) = project {
        files.push(p.auth_json());
        files.push(p.magento_auth_json());
    }
    files
}

pub async fn run(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<ExitCode> {
    let home = composer_home::composer_home()?;
    let cwd = std::env::current_dir().context("the current directory")?;
    let project = composer_home::find_project(&cwd);
    let mut failed = false;

    let mut candidates: Vec<(PathBuf, bool)> = a.files.iter().map(|f| (f.clone(), true)).collect();
    if a.files.is_empty() && !a.from_env {
        candidates.extend(
            default_files(&home, project.as_ref())
                .into_iter()
                .map(|f| (f, false)),
        );
    }
    let mut sources = Vec::new();
    let mut seen = Vec::new();
    let allow = Allow {
        shared_dir: a.allow_shared_dir,
        dry_run: a.dry_run,
    };
    for (path, explicit) in candidates {
        let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.contains(&canon) {
            continue;
        }
        seen.push(canon);
        match source::open(&path, &home, project.as_ref(), &allow) {
            Ok(Some(src)) => sources.push(src),
            Ok(None) if explicit => {
                eprintln!("composer-keyd: {} does not exist", path.display());
                failed = true;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("composer-keyd: {e}");
                failed = true;
            }
        }
    }
    if a.from_env {
        match std::env::var("COMPOSER_AUTH") {
            Ok(v) if !v.trim().is_empty() => {
                let v = zeroize::Zeroizing::new(v);
                sources.push(Input {
                    path: None,
                    target: None,
                    scope: None,
                    doc: AuthDoc::parse(v.as_bytes(), "COMPOSER_AUTH")?,
                });
            }
            _ => println!("COMPOSER_AUTH is not set; nothing to import from the environment."),
        }
    }

    let plans: Vec<(Vec<Entry>, Vec<Skipped>)> = sources.iter().map(|s| s.doc.entries()).collect();
    let total: usize = plans.iter().map(|p| p.0.len()).sum();
    let store = if a.dry_run || total == 0 {
        backend_word(&ctx.client).await
    } else {
        backend_word(ctx.connect().await?).await
    };
    print_plan(&sources, &plans, store, failed);
    if a.dry_run {
        println!("Dry run: nothing was stored and no file was changed.");
        return Ok(exit(failed));
    }
    if total == 0 {
        println!("Nothing to import.");
        return Ok(exit(failed || plans.iter().any(|p| !p.1.is_empty())));
    }

    // 1. Store everything. A failure here stops the import before any file changes.
    let client = ctx.connect().await?;
    let mut outcomes: Vec<Vec<PutOutcome>> = Vec::with_capacity(sources.len());
    let mut first = true;
    for (src, (entries, _)) in sources.iter().zip(&plans) {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let body = PutCredential {
                credential: e.credential.clone(),
                label: Some(format!("imported from {}", src.name())),
                rotate: false,
                no_clobber: !a.replace,
                confirm: None,
                allow_exe: None,
                expires: None,
                confirm_scope: None,
            };
            let reply = client
                .put_credential(&e.origin, src.scope.as_deref(), &body)
                .await
                .with_context(|| format!("storing {} {} from {}", e.kind, e.origin, src.name()))?;
            out.push(reply.outcome);
            if first {
                first = false;
                pause_async("import-after-first-store").await;
            }
        }
        outcomes.push(out);
    }
    pause_async("import-after-store").await;

    // 2. Scrub each file of what the daemon now holds.
    let mut counts = [0usize; 4];
    let mut conflicts = Vec::new();
    for (i, (src, (entries, skipped))) in sources.iter().zip(&plans).enumerate() {
        let mut moved = Vec::new();
        for (e, outcome) in entries.iter().zip(&outcomes[i]) {
            match outcome {
                PutOutcome::Created => counts[0] += 1,
                PutOutcome::Unchanged => counts[1] += 1,
                PutOutcome::Replaced | PutOutcome::Rotated => counts[2] += 1,
                _ => {
                    counts[3] += 1;
                    conflicts.push((src, e));
                    continue;
                }
            }
            moved.push(e);
        }
        let Some(path) = src.file() else { continue };
        if !skipped.is_empty() {
            failed = true;
        }
        let shared = if a.allow_shared_dir {
            Shared::Allow
        } else {
            Shared::Refuse
        };
        let mut at = |stage| {
            if stage == Stage::BeforeRename {
                pause("import-scrub-before-rename");
            }
        };
        match authjson::scrub_with(path, &moved, shared, &mut at) {
            Ok(Scrubbed::Rewritten { removed }) => println!(
                "Scrubbed {}: {removed} secret(s) removed, the rest kept.",
                path.display()
            ),
            Ok(Scrubbed::Removed { removed }) => println!(
                "Removed {}: its {removed} secret(s) are in the {store} and nothing else was left.",
                path.display()
            ),
            Ok(Scrubbed::Untouched) => {}
            Err(e) => {
                eprintln!("composer-keyd: {e} (the secrets are stored; rerun `composer-keyd import` to finish)");
                failed = true;
            }
        }
        if i == 0 {
            pause_async("import-after-first-scrub").await;
        }
    }
    println!(
        "Imported {} credential(s): {} new, {} already stored, {} replaced.",
        counts[0] + counts[1] + counts[2],
        counts[0],
        counts[1],
        counts[2]
    );
    if !conflicts.is_empty() {
        failed = true;
        println!("Left in place, because a different secret is already stored:");
        for (src, e) in &conflicts {
            println!("  {} {} in {}", e.kind, e.origin, src.name());
        }
        println!("Keep the stored one and delete these entries by hand, or run `composer-keyd import --replace` to overwrite the stored ones.");
    }
    if sources.iter().any(|s| s.path.is_none()) {
        env_advice(&home);
    }
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What the daemon keeps secrets in, for messages: its backend when it answers, else a word
/// that is true of every backend.
async fn backend_word(client: &Client) -> &'static str {
    match client.status().await {
        Ok(st) => st.backend.name(),
        Err(_) => BackendKind::Unknown.name(),
    }
}

/// `failed`: a file was already refused with its reason, so "none found" would be untrue.
fn print_plan(sources: &[Input], plans: &[(Vec<Entry>, Vec<Skipped>)], store: &str, failed: bool) {
    if sources.is_empty() && !failed {
        println!("No auth.json found (looked in COMPOSER_HOME and the current project).");
    }
    for (src, (entries, skipped)) in sources.iter().zip(plans) {
        let scope = src
            .scope
            .as_deref()
            .map_or_else(|| "all projects".to_owned(), |p| format!("project {p}"));
        println!("{} (for {scope}):", src.name());
        if entries.is_empty() && skipped.is_empty() {
            println!("  nothing to import");
        }
        for e in entries {
            println!("  {:<16} {}  -> {store}", e.kind.as_str(), e.origin);
        }
        for s in skipped {
            println!("  {:<16} {}  left in place: {}", s.kind, s.key, s.reason);
        }
    }
}

/// Where COMPOSER_AUTH is likely set, so the user can delete it there.
fn env_advice(home: &Path) {
    let user = std::env::var_os("HOME").map(PathBuf::from);
    let mut files: Vec<PathBuf> = [
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".config/fish/config.fish",
        ".pam_environment",
    ]
    .iter()
    .filter_map(|f| user.as_ref().map(|u| u.join(f)))
    .collect();
    files.push(PathBuf::from("/etc/environment"));
    files.push(home.join(".env"));
    if let Ok(cwd) = std::env::current_dir() {
        files.push(cwd.join(".env"));
    }
    println!("COMPOSER_AUTH still holds these secrets in plaintext. Remove the variable where it is set:");
    let mut any = false;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let text = zeroize::Zeroizing::new(text);
        for (n, line) in text.lines().enumerate() {
            if line.contains("COMPOSER_AUTH") {
                println!("  {}:{}", f.display(), n + 1);
                any = true;
            }
        }
    }
    if !any {
        println!("  (not found in the usual shell start-up files; check your CI settings, container env or secret manager)");
    }
    println!("then run `unset COMPOSER_AUTH` in open shells. Composer gets the credentials from the plugin, or use `composer-keyd exec -- composer ...`.");
}
