//! `log`: reads the daemon's audit log back, as lines or as JSON, optionally since a time.

use anyhow::{bail, Context};
use clap::Args;
use composer_keyd::audit;
use std::process::ExitCode;
use std::time::SystemTime;

#[derive(Args, Debug)]
pub struct LogArgs {
    /// Print the records as JSON lines, as they are stored.
    #[arg(long)]
    json: bool,
    /// Only records newer than this: a duration (`30m`, `2h`, `7days`) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
}

/// `--since`: how long ago, or when.
fn parse_since(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(SystemTime::now()
            .checked_sub(d)
            .unwrap_or(SystemTime::UNIX_EPOCH));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if let Ok(n) = s.parse::<u64>() {
        bail!("--since {n}: give a unit, e.g. {n}s, {n}m or {n}h");
    }
    bail!("--since {s:?}: expected a duration such as 30m, 2h or 7days, or a time such as 2026-05-01T12:00:00Z")
}

/// Prints the audit records; reading needs no daemon.
pub fn run(a: LogArgs) -> anyhow::Result<ExitCode> {
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let dir = composer_keyd::paths::state_dir()?;
    let (records, bad) = audit::read(&dir, since)
        .with_context(|| format!("reading the audit log in {}", dir.display()))?;
    for r in &records {
        if a.json {
            println!("{}", r.to_json());
        } else {
            println!("{}", r.to_line());
        }
    }
    if records.is_empty() && !a.json {
        eprintln!(
            "No audit records{} in {}.",
            if since.is_some() { " in that time" } else { "" },
            dir.join(audit::FILE_NAME).display()
        );
    }
    if bad > 0 {
        eprintln!("composer-keyd: warning: skipped {bad} unreadable line(s)");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn since_forms() {
        let t = parse_since("2h").unwrap();
        let ago = SystemTime::now().duration_since(t).unwrap();
        assert!(ago >= Duration::from_secs(7200) && ago < Duration::from_secs(7300));
        assert!(parse_since("2026-01-01T00:00:00Z").is_ok());
        let e = parse_since("10").unwrap_err().to_string();
        assert!(e.contains("give a unit"), "{e}");
        assert!(parse_since("yesterday-ish").is_err());
    }
}
