//! Credentials embedded in git remotes: `url`/`pushurl` values and `[url "..."]` sections
//! with userinfo in a repository's `.git/config`, named by remote, never shown.

use super::{read_bounded, urls_with_credentials, Finding};
use std::path::Path;

/// Adds a finding for every URL with userinfo in `git_dir/config`. A missing config is no
/// finding; an unreadable one is a problem.
pub(super) fn scan_git_dir(git_dir: &Path, found: &mut Vec<Finding>, problems: &mut Vec<String>) {
    let config = git_dir.join("config");
    let bytes = match read_bounded(&config) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            problems.push(format!("{}: {e}", config.display()));
            return;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    for (at, origin) in analyze(&text) {
        found.push(Finding {
            file: config.display().to_string(),
            commit: None,
            at,
            origin,
            kind: "url-credentials".into(),
        });
    }
}

/// `(where, origin)` for each URL with credentials. `where` is `remote.NAME.url` and the
/// like; a section whose name is itself such a URL is reported as `url section`.
fn analyze(text: &str) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) || line.is_empty() {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next().unwrap_or_default();
            let (name, sub) = match header.split_once(char::is_whitespace) {
                Some((n, s)) => (n, s.trim().trim_matches('"')),
                None => (header, ""),
            };
            let credentials = urls_with_credentials(sub);
            if !credentials.is_empty() {
                // The subsection is the secret-bearing URL: name the section kind only.
                for origin in credentials {
                    hits.push((format!("{} section", name.to_ascii_lowercase()), origin));
                }
                section = name.to_ascii_lowercase();
            } else if sub.is_empty() {
                section = name.to_ascii_lowercase();
            } else {
                section = format!("{}.{sub}", name.to_ascii_lowercase());
            }
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = key.trim().to_ascii_lowercase();
        for origin in urls_with_credentials(value.trim().trim_matches('"')) {
            hits.push((format!("{section}.{key}"), origin));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_userinfo_in_remotes_and_url_sections_without_the_secret() {
        let cfg = "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = https://ci:s3cret@git.example.com/a.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n[remote \"up\"]\n\turl = https://git.example.com/b.git\n\tpushurl = \"http://tok@127.0.0.1:8080/b.git\"\n[url \"https://u:p4ss@mirror.example/\"]\n\tinsteadOf = https://github.com/\n# url = https://x:y@commented.example/\n";
        let hits = analyze(cfg);
        assert_eq!(
            hits,
            vec![
                ("remote.origin.url".into(), "git.example.com".into()),
                ("remote.up.pushurl".into(), "127.0.0.1:8080".into()),
                ("url section".into(), "mirror.example".into()),
            ]
        );
        for (at, origin) in &hits {
            assert!(!at.contains("s3cret") && !at.contains("p4ss") && !origin.contains('@'));
        }
    }

    #[test]
    fn placeholders_and_plain_urls_are_not_findings() {
        assert!(analyze(
            "[remote \"o\"]\n url = https://${TOKEN}@h/x\n url = git@h:x.git\n url = https://h/x\n"
        )
        .is_empty());
    }

    #[test]
    fn scans_a_git_dir_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir(&git).unwrap();
        let (mut found, mut problems) = (Vec::new(), Vec::new());
        scan_git_dir(&git, &mut found, &mut problems);
        assert!(found.is_empty() && problems.is_empty());
        std::fs::write(
            git.join("config"),
            "[remote \"origin\"]\n url = https://a:b@h.example/x\n",
        )
        .unwrap();
        scan_git_dir(&git, &mut found, &mut problems);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].line(),
            format!(
                "{}: url-credentials for h.example at remote.origin.url",
                git.join("config").display()
            )
        );
        // And through the tree walk `scan` does.
        let (walked, _) = super::super::scan_paths(&[dir.path().to_path_buf()], None);
        assert_eq!(walked, found);
    }
}
