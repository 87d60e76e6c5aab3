//! `doctor` on who can read command lines: on the forge hosts Composer retries a failed git
//! command with the token of its IO in the URL (its own fallback, which no plugin can turn
//! off), and without `hidepid` on /proc every local user can read that command line.

use super::Report;
use composer_keyd::credential::CredentialType;
use composer_keyd::protocol::CredentialInfo;

/// The hosts where Composer's `Util\Git` retries after any failure, by default.
const FORGE_HOSTS: [&str; 3] = ["github.com", "gitlab.com", "bitbucket.org"];

/// Warns when a forge token is stored and /proc shows every process's command line to
/// every user; says nothing when there is no forge token.
pub(super) fn report(r: &Report, credentials: &[CredentialInfo]) {
    let forges: Vec<&str> = credentials
        .iter()
        .filter(|c| c.enabled && is_forge(c))
        .map(|c| c.origin.as_str())
        .collect();
    let Some(first) = forges.first() else {
        return;
    };
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    match proc_hides_pids(&mounts) {
        Some(true) => r.ok(
            "command lines",
            "/proc is mounted with hidepid: other users cannot read your processes' command lines",
        ),
        _ => r.warn(
            "command lines",
            format!(
                "other local users can read every command line (/proc has no hidepid), and when a git command for {first} fails, Composer retries it with the token in git's command line; on a machine you share, `mount -o remount,hidepid=invisible /proc` (and the same option in /etc/fstab) hides them"
            ),
        ),
    }
}

/// A token for one of the forge hosts, or of a forge's own type anywhere.
fn is_forge(c: &CredentialInfo) -> bool {
    let host = c.origin.as_str().split(':').next().unwrap_or_default();
    FORGE_HOSTS.contains(&host)
        || matches!(
            c.kind,
            CredentialType::GithubOauth
                | CredentialType::GitlabOauth
                | CredentialType::GitlabToken
                | CredentialType::BitbucketOauth
        )
}

/// Whether the /proc this process sees hides other users' processes (`hidepid=1`, `2`,
/// `4` or their names); `None` when no /proc mount is listed.
fn proc_hides_pids(mounts: &str) -> Option<bool> {
    let options = mounts
        .lines()
        .rev()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[1] == "/proc" && f[2] == "proc")
        .map(|f| f[3].to_owned())?;
    Some(options.split(',').any(|o| {
        matches!(
            o.strip_prefix("hidepid="),
            Some("1" | "2" | "4" | "noaccess" | "invisible" | "ptraceable")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::proc_hides_pids;

    #[test]
    fn reads_hidepid_from_the_last_proc_mount() {
        let open = "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n";
        assert_eq!(proc_hides_pids(open), Some(false));
        let hidden = format!("{open}proc /proc proc rw,relatime,hidepid=invisible 0 0\n");
        assert_eq!(proc_hides_pids(&hidden), Some(true));
        assert_eq!(
            proc_hides_pids("proc /proc proc rw,hidepid=2 0 0\n"),
            Some(true)
        );
        assert_eq!(
            proc_hides_pids("proc /proc proc rw,hidepid=off 0 0\n"),
            Some(false)
        );
        assert_eq!(proc_hides_pids("sysfs /sys sysfs rw 0 0\n"), None);
    }
}
