//! `serve`'s limit, confirmation and audit flags: every bound the daemon enforces, settable in one place, with `server::Limits` holding the defaults.

use clap::Args;
use composer_keyd::audit::AuditConfig;
use composer_keyd::server::Limits;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A duration on the command line: `5s`, `500ms`, `2m`, or bare seconds (`5`).
#[derive(Clone, Copy, Debug)]
pub struct Dur(pub Duration);

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Dur, String> {
        let d = super::duration::parse(s)?;
        if d.is_zero() {
            return Err("must be more than zero".into());
        }
        Ok(Dur(d))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

fn d(x: Duration) -> Dur {
    Dur(x)
}

fn at_least_8k(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if n < 8192 {
        return Err("hyper needs at least 8192 bytes for a request head".into());
    }
    Ok(n)
}

/// The daemon's bounds. Defaults come from `Limits::default()`.
#[derive(Args, Debug)]
pub struct LimitArgs {
    /// Largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_body)]
    max_body: usize,
    /// Largest request head (request line and headers), in bytes; at least 8192.
    #[arg(long, value_name = "BYTES", value_parser = at_least_8k, default_value_t = Limits::default().max_head)]
    max_head: usize,
    /// Time to send a complete request head; also how long an idle keep-alive connection stays open.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().header_timeout))]
    header_timeout: Dur,
    /// Time to send a whole request body once the head is in.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().body_timeout))]
    body_timeout: Dur,
    /// Time a response may wait for a client that does not read it.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().write_timeout))]
    write_timeout: Dur,
    /// Connections served at once (lowered to fit the open-files limit). At the cap the
    /// longest-idle connection is closed to make room; if all are busy, new ones wait.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), default_value_t = Limits::default().max_connections as u32)]
    max_connections: u32,
    /// Time open connections get to finish at shutdown.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().drain_timeout))]
    drain_timeout: Dur,
    /// Time a single keyring or vault call may take before it answers backend-unavailable.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().backend_timeout))]
    backend_timeout: Dur,
    /// The program that asks before releasing a `--confirm` credential (default: $SSH_ASKPASS, with a display; without one, the terminal of a foreground daemon).
    #[arg(long, value_name = "PATH", env = "COMPOSER_KEYD_ASKPASS")]
    askpass: Option<PathBuf>,
    /// Time the user has to answer the askpass dialog; no answer refuses the release.
    #[arg(long, value_name = "DURATION", default_value_t = d(Limits::default().confirm_timeout))]
    confirm_timeout: Dur,
    /// Size at which the audit log is rotated, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = AuditConfig::in_dir(PathBuf::new()).max_bytes)]
    audit_max_size: u64,
    /// Rotated audit logs kept.
    #[arg(long, value_name = "N", default_value_t = AuditConfig::in_dir(PathBuf::new()).keep)]
    audit_keep: usize,
}

impl LimitArgs {
    /// The limits as given.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body: self.max_body,
            max_head: self.max_head,
            header_timeout: self.header_timeout.0,
            body_timeout: self.body_timeout.0,
            write_timeout: self.write_timeout.0,
            max_connections: self.max_connections as usize,
            drain_timeout: self.drain_timeout.0,
            backend_timeout: self.backend_timeout.0,
            confirm_timeout: self.confirm_timeout.0,
        }
    }

    /// `--askpass`, else `$COMPOSER_KEYD_ASKPASS` (via clap), else `$SSH_ASKPASS` with a display.
    pub fn askpass(&self) -> Option<PathBuf> {
        self.askpass
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(composer_keyd::agent::policy::Confirm::program_from_env)
    }

    /// The audit log in `dir`, rotated as asked.
    pub fn audit(&self, dir: PathBuf) -> AuditConfig {
        AuditConfig {
            dir,
            max_bytes: self.audit_max_size.max(4096),
            keep: self.audit_keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("5".parse::<Dur>().unwrap().0, Duration::from_secs(5));
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!("2m".parse::<Dur>().unwrap().0, Duration::from_secs(120));
        assert!("0".parse::<Dur>().is_err());
        assert!("soon".parse::<Dur>().is_err());
        assert_eq!(Dur(Duration::from_secs(5)).to_string(), "5s");
    }
}
