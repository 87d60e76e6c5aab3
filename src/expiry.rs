//! When a credential expires: the dates users and forges write (`--expires`, GitHub's
//! `GitHub-Authentication-Token-Expiration` header, GitLab's `expires_at`), who may carry
//! one, and the one-line warnings `doctor`, `exec` and the plugin print.
//!
//! An expired credential is still released: the server, not our clock or a date typed by
//! hand, decides whether it still works (forges extend tokens; a typed date may be off), and
//! refusing it locally would turn a warning into a failed install. The line says it expired.

use crate::credential::{CredentialType, Origin};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days before the date that warnings start, when config.toml does not say.
pub const DEFAULT_WARNING_DAYS: u32 = 7;

const DAY: u64 = 86_400;

/// Why an expiry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpiryError {
    /// Neither a date nor a duration; holds the text (printable).
    #[error(
        "`{0}` is neither a date (2026-12-31, 2026-12-31T18:00:00Z) nor a duration (30d, 12h, 2w)"
    )]
    Unreadable(String),
    /// Marketplace key pairs do not expire.
    #[error("Magento Marketplace key pairs do not expire; repo.magento.com takes no --expires")]
    Marketplace,
}

/// Whether a credential of `kind` for `origin` may carry an expiry. Marketplace key pairs
/// (http-basic for repo.magento.com) never expire and are never marked as expiring.
pub fn may_expire(origin: &Origin, kind: CredentialType) -> bool {
    !(origin.as_str() == "repo.magento.com" && kind == CredentialType::HttpBasic)
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads `--expires`: a date (`YYYY-MM-DD`, midnight UTC at its start, as GitLab's
/// `expires_at`), a date and time (RFC 3339, or GitHub's `YYYY-MM-DD HH:MM:SS UTC`), or a
/// duration from `now` (`30d`, `12h`, `2w`, humantime's units).
pub fn parse(text: &str, now: u64) -> Result<u64, ExpiryError> {
    let t = text.trim();
    if let Some(at) = parse_date(t) {
        return Ok(at);
    }
    // Bare numbers are refused: days or seconds would be a guess.
    if !t.is_empty() && !t.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(d) = humantime::parse_duration(t) {
            return Ok(now.saturating_add(d.as_secs()));
        }
    }
    Err(ExpiryError::Unreadable(crate::audit::printable(t)))
}

/// A date or date-time as forges write them; `None` when it is neither.
pub fn parse_date(text: &str) -> Option<u64> {
    let t = text.trim();
    // A numeric zone (`-0700`), as some GitHub Enterprise versions write it.
    if let Some((local, zone)) = t.rsplit_once(' ') {
        let b = zone.as_bytes();
        if b.len() == 5 && (b[0] == b'+' || b[0] == b'-') && b[1..].iter().all(u8::is_ascii_digit) {
            let h: i64 = zone[1..3].parse().ok()?;
            let m: i64 = zone[3..5].parse().ok()?;
            let off = (h * 3600 + m * 60) * if b[0] == b'+' { 1 } else { -1 };
            let at = i64::try_from(parse_date(local)?).ok()?;
            return u64::try_from(at - off).ok();
        }
    }
    let t = t.strip_suffix(" UTC").unwrap_or(t);
    let full = if t.len() == 10 {
        format!("{t} 00:00:00")
    } else {
        t.to_owned()
    };
    let at = humantime::parse_rfc3339_weak(&full)
        .or_else(|_| humantime::parse_rfc3339(&full))
        .ok()?;
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// A Unix time as the day it falls on, UTC (`2026-12-31`).
pub fn day(secs: u64) -> String {
    let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
    s.get(..10).unwrap_or(&s).to_owned()
}

/// Where a credential stands against its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No date, or further off than the warning window.
    Fine,
    /// Within the window: days left, rounded up (0 = expires within a day).
    Soon(u64),
    /// The date has passed.
    Expired,
}

/// The standing of a credential expiring `at` (if ever), `warn_days` ahead of time.
pub fn standing(at: Option<u64>, now: u64, warn_days: u32) -> Standing {
    match at {
        None => Standing::Fine,
        Some(at) if at <= now => Standing::Expired,
        Some(at) if at - now < DAY => Standing::Soon(0),
        Some(at) if at - now <= u64::from(warn_days) * DAY => {
            Standing::Soon((at - now).div_ceil(DAY))
        }
        Some(_) => Standing::Fine,
    }
}

/// The one line that warns about `target` (as typed: `ORIGIN [--project DIR]`), or `None`.
pub fn warning(target: &str, at: Option<u64>, now: u64, warn_days: u32) -> Option<String> {
    let origin = target.split(' ').next().unwrap_or(target);
    match standing(at, now, warn_days) {
        Standing::Fine => None,
        Standing::Soon(days) => Some(format!(
            "the credential for {origin} expires on {} ({}); store a new one with `composer-keyd rotate {target}`",
            day(at?),
            match days {
                0 => "within a day".to_owned(),
                1 => "in 1 day".to_owned(),
                n => format!("in {n} days"),
            }
        )),
        Standing::Expired => Some(format!(
            "the credential for {origin} expired on {}; it is still sent, and the server may refuse it: store a new one with `composer-keyd rotate {target}`",
            day(at?)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_000_000; // 2026-11-30

    #[test]
    fn dates_durations_and_forge_spellings() {
        assert_eq!(parse("2026-12-31", NOW), Ok(1_798_675_200));
        assert_eq!(
            parse("2026-12-31T12:00:00Z", NOW),
            Ok(1_798_675_200 + 43_200)
        );
        assert_eq!(
            parse_date("2026-12-31 12:00:00 UTC"),
            Some(1_798_675_200 + 43_200)
        );
        let noon = Some(1_798_675_200 + 43_200);
        assert_eq!(parse_date("2026-12-31 05:00:00 -0700"), noon);
        assert_eq!(parse_date("2026-12-31 12:00:00 +0000"), noon);
        assert_eq!(parse_date("2026-12-31 12:00:00 +zz00"), None);
        assert_eq!(parse("30d", NOW), Ok(NOW + 30 * DAY));
        assert_eq!(parse(" 2w ", NOW), Ok(NOW + 14 * DAY));
        assert!(matches!(parse("30", NOW), Err(ExpiryError::Unreadable(_))));
        assert!(
            matches!(parse("soon\x1b[2J", NOW), Err(ExpiryError::Unreadable(s)) if !s.contains('\x1b'))
        );
        assert_eq!(day(1_798_675_200), "2026-12-31");
    }

    #[test]
    fn standing_and_one_line() {
        assert_eq!(standing(None, NOW, 7), Standing::Fine);
        assert_eq!(standing(Some(NOW + 8 * DAY), NOW, 7), Standing::Fine);
        assert_eq!(standing(Some(NOW + 3 * DAY), NOW, 7), Standing::Soon(3));
        // `--expires 3d` read a moment later still says 3 days.
        assert_eq!(standing(Some(NOW + 3 * DAY - 5), NOW, 7), Standing::Soon(3));
        assert_eq!(standing(Some(NOW + 3600), NOW, 7), Standing::Soon(0));
        assert_eq!(standing(Some(NOW + 3 * DAY), NOW, 2), Standing::Fine);
        assert_eq!(standing(Some(NOW), NOW, 7), Standing::Expired);
        let w = warning("github.com", Some(NOW + 3 * DAY), NOW, 7).unwrap();
        assert!(w.contains("in 3 days") && w.contains("composer-keyd rotate github.com"));
        assert!(!w.contains('\n'));
        let e = warning("gitlab.example --project /p", Some(NOW - DAY), NOW, 7).unwrap();
        assert!(e.starts_with("the credential for gitlab.example expired on 2026-11-29"));
        assert!(e.contains("`composer-keyd rotate gitlab.example --project /p`"));
    }

    #[test]
    fn marketplace_pairs_never_expire() {
        let m = Origin::parse("repo.magento.com").unwrap();
        assert!(!may_expire(&m, CredentialType::HttpBasic));
        let g = Origin::parse("github.com").unwrap();
        assert!(may_expire(&g, CredentialType::GithubOauth));
    }
}
