//! The lifecycle of team entries against a real OpenBao: add, rotate, rollback, disable,
//! enable and remove with a writing token and refused with a read-only one, `list` naming
//! each entry's source, and a rotation in OpenBao reaching the next `composer install`.

use crate::support;

use crate::team::team_daemon;
use support::bao_team::*;
use support::openbao::Bao;
use support::TestEnv;

#[test]
fn team_lifecycle_with_a_writing_token_and_refusals_with_a_read_only_one() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    bao.policy("composer-write", WRITER);
    let t = TestEnv::bare();
    let tf = t.home().join(".vault-token");
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    let project = t.dir.path().join("shop");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("composer.json"), r#"{"name": "acme/shop"}"#).unwrap();
    let p = project.to_str().unwrap();
    let path = "composer/projects/acme/shop/repo.magento.com";

    write_token(&tf, &bao.token(&["composer-write"], "1h"));
    let out = t.ok(
        &[
            "add",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
            "--label",
            "Shop",
        ],
        &format!("{PUB}\n{PRIV}\n"),
    );
    assert!(out.contains("version 1"), "{out}");
    let v = kv_json(&bao, path);
    assert_eq!(v["data"]["data"]["username"], PUB);
    assert_eq!(v["data"]["data"]["type"], "http-basic");
    assert_eq!(
        bao.metadata(path)["data"]["custom_metadata"]["label"],
        "Shop"
    );
    let new_pub = "1".repeat(32);
    let out = t.ok(
        &[
            "rotate",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        &format!("{new_pub}\n{PRIV}\n"),
    );
    assert!(out.contains("version 2"), "{out}");
    assert_eq!(
        kv_json(&bao, path)["data"]["data"]["username"],
        new_pub.as_str()
    );
    let out = t.ok(
        &[
            "rotate",
            "--rollback",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        "",
    );
    assert!(out.contains("version 3"), "{out}");
    let v = kv_json(&bao, path);
    assert_eq!(
        v["data"]["data"]["username"], PUB,
        "rollback writes the old data"
    );
    assert_eq!(v["data"]["metadata"]["version"], 3);
    t.ok(
        &[
            "disable",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        "",
    );
    let m = bao.metadata(path);
    assert_eq!(m["data"]["custom_metadata"]["disabled"], "true");
    assert_eq!(
        m["data"]["custom_metadata"]["label"], "Shop",
        "the label stays"
    );
    t.ok(
        &[
            "enable",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        "",
    );
    assert!(bao.metadata(path)["data"]["custom_metadata"]
        .get("disabled")
        .is_none());
    // `list` names each credential's source, the team rows from metadata alone.
    bao.kv_put(
        "composer/github.com",
        &[("type", "github-oauth"), ("token", PRIV)],
    );
    let _d = t.start_daemon(&[]);
    let list = t.ok(&["list"], "");
    assert!(list.contains("SOURCE"), "{list}");
    let row = list
        .lines()
        .find(|l| l.starts_with("repo.magento.com"))
        .unwrap_or_default();
    assert!(
        row.contains("acme/shop") && row.contains("Shop") && row.contains("team acme v3"),
        "{list}"
    );
    let row = list
        .lines()
        .find(|l| l.starts_with("github.com"))
        .unwrap_or_default();
    assert!(
        row.contains("(all projects)") && row.contains("team acme v1"),
        "{list}"
    );
    assert!(!list.contains(PRIV));

    // A read-only token: every change is refused, naming the policy path; nothing changes.
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
    let before = bao.metadata(path);
    for (args, stdin) in [
        (vec!["add", "repo.magento.com"], format!("{PUB}\n{PRIV}\n")),
        (
            vec!["rotate", "repo.magento.com"],
            format!("{PUB}\n{PRIV}\n"),
        ),
        (
            vec!["rotate", "--rollback", "repo.magento.com"],
            String::new(),
        ),
        (vec!["disable", "repo.magento.com"], String::new()),
        (vec!["enable", "repo.magento.com"], String::new()),
        (vec!["remove", "repo.magento.com"], String::new()),
    ] {
        let mut argv = args.clone();
        argv.extend(["--team", "acme", "--project", p]);
        let out = t.cli(&argv, &stdin);
        let s = text(&out);
        assert!(!out.status.success(), "{args:?}: {s}");
        assert!(
            s.contains("team acme: token revoked or not allowed to")
                && (s.contains("secret/data/composer/projects/acme/shop/repo.magento.com")
                    || s.contains("secret/metadata/composer/projects/acme/shop/repo.magento.com")),
            "{args:?}: {s}"
        );
    }
    assert_eq!(
        bao.metadata(path)["data"],
        before["data"],
        "nothing changed"
    );

    write_token(&tf, &bao.token(&["composer-write"], "1h"));
    t.ok(
        &[
            "remove",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        "",
    );
    assert!(!bao
        .run_as(
            "root",
            &["kv", "metadata", "get", &format!("secret/{path}")]
        )
        .status
        .success());
    let out = t.cli(
        &[
            "remove",
            "repo.magento.com",
            "--team",
            "acme",
            "--project",
            p,
        ],
        "",
    );
    assert!(text(&out).contains("no secret at"), "{}", text(&out));
}

#[test]
fn team_rotation_in_openbao_reaches_the_very_next_install_with_no_failed_run() {
    use crate::composer_fixture::{basic, composer, project, text, RepoServer};
    use crate::plugin_e2e::{composer_repo, packages};
    let bao = Bao::dev();
    let new_pub = "9".repeat(32);
    let new_priv = "8".repeat(32);
    // The repository takes only the new pair: the Marketplace regenerated the keys.
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(&new_pub, &new_priv, "new-pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    put_pair(&bao, &format!("composer/{origin}"), PUB);
    // A cache TTL far longer than the test: only a read-through can see the new version.
    let (t, _d) = team_daemon(&bao, &["--cache-ttl", "1h"]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    // The daemon holds the old pair in its cache, and a plain lookup is served from it.
    assert_eq!(t.credential(&origin, Some(&dir))["username"], PUB);
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", &new_pub),
            ("password", &new_priv),
        ],
    );
    assert_eq!(
        t.credential(&origin, Some(&dir))["username"],
        PUB,
        "within the TTL a plain lookup is still the cached old pair"
    );

    let out = composer(&t, &dir, &["install"]);
    assert!(
        out.status.success(),
        "the next install, no daemon restart, no failed run: {}",
        text(&out)
    );
    assert!(
        !text(&out).contains("changed in its source"),
        "{}",
        text(&out)
    );
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    let seen = server.accepted(0, "/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "new-pair"),
        "{seen:?}"
    );
    assert!(
        server.requests().iter().all(|r| r["status"] != 401),
        "the repository never saw the old pair: {:?}",
        server.requests()
    );
    let log = t.ok(&["log", "--json"], "");
    assert!(log.contains("team acme v2"), "{log}");

    // `exec` starts a run as the plugin does: a third pair reaches its COMPOSER_AUTH at once.
    let third = "7".repeat(32);
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", &third),
            ("password", &new_priv),
        ],
    );
    assert_eq!(
        t.credential(&origin, Some(&dir))["username"],
        new_pub.as_str()
    );
    let out = t
        .command(crate::support::BIN)
        .current_dir(&dir)
        .args(["exec", "--", "sh", "-c", "printf %s \"$COMPOSER_AUTH\""])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let auth: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        auth["http-basic"][&origin]["username"],
        third.as_str(),
        "{auth}"
    );
}

#[test]
fn team_only_a_runs_first_lookup_reads_through_and_gits_later_lookups_use_the_cache() {
    use crate::composer_fixture::git_server::{widget_repo, GitServer};
    use crate::composer_fixture::{composer, project, text};
    const TOKEN: &str = "gt-7d1e0c9b8a6f42e3b5a1c9d0f7e2b4a8";
    let d = tempfile::tempdir().unwrap();
    let audit = d.path().join("audit.log");
    let hcl = d.path().join("audit.hcl");
    std::fs::write(
        &hcl,
        format!(
            "audit \"file\" \"to-file\" {{\n  options {{ file_path = \"{}\" }}\n}}\n",
            audit.display()
        ),
    )
    .unwrap();
    let bao = Bao::dev_with(&[&format!("-config={}", hcl.display())]);
    let (root, _sha) = widget_repo();
    let server = GitServer::start(root.path(), "{}", "ci", TOKEN);
    let origin = server.origin();
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", "ci"),
            ("password", TOKEN),
        ],
    );
    let (mut t, _daemon) = team_daemon(&bao, &["--cache-ttl", "1h"]);
    t.env
        .insert("COMPOSER_KEYD_BIN".into(), support::BIN.into());
    t.env.insert("GIT_CONFIG_NOSYSTEM".into(), "1".into());
    let dir = project(
        &t,
        "shop",
        vec![
            serde_json::json!({"type": "vcs", "url": format!("{}/git/widget.git", server.base())}),
        ],
        serde_json::json!({"acme/widget": "^1.0"}),
    );
    // Engine reads of the entry, counted by OpenBao's own audit device.
    let wanted = format!("\"path\":\"secret/data/composer/{origin}\"");
    let reads = || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"type\":\"request\"")
                    && l.contains("\"operation\":\"read\"")
                    && l.contains(&wanted)
            })
            .count()
    };
    let releases = || {
        t.ok(&["log", "--json"], "")
            .lines()
            .filter(|l| l.contains("\"release\"") && l.contains(&origin))
            .count()
    };
    // The cache is warm: a lookup without the flag read the entry once.
    assert_eq!(t.credential(&origin, Some(&dir))["username"], "ci");
    assert_eq!(reads(), 1);
    let released = releases();

    let out = composer(&t, &dir, &["install", "--prefer-source"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/widget/.git").is_dir(), "not a clone");
    assert!(server.git_accepted(), "git never authenticated");
    let lookups = releases() - released;
    assert!(
        lookups >= 2,
        "the plugin's lookup and git's through the helper: {lookups}"
    );
    assert_eq!(
        reads(),
        2,
        "one read-through for the run's first lookup; the {} later ones used the cache",
        lookups - 1
    );
}

#[test]
fn team_list_and_list_json_name_each_entrys_source_beside_local_ones() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    bao.kv_put(
        "composer/projects/acme/shop/gitlab.example",
        &[("type", "gitlab-token"), ("token", PRIV)],
    );
    bao.ok(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=label=Shop token",
        "-custom-metadata=disabled=true",
        "secret/composer/projects/acme/shop/gitlab.example",
    ]);
    let t = TestEnv::with_keyring(true);
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    write_token(
        &t.home().join(".vault-token"),
        &bao.token(&["composer-read"], "1h"),
    );
    let _d = t.start_daemon(&[]);
    t.ok(
        &[
            "add",
            "local.example",
            "--type",
            "bearer",
            "--label",
            "Mine",
        ],
        &format!("{PRIV}\n"),
    );

    let table = t.ok(&["list"], "");
    let row = |origin: &str| {
        table
            .lines()
            .find(|l| l.starts_with(origin))
            .unwrap_or_else(|| panic!("no row for {origin}: {table}"))
            .to_owned()
    };
    assert!(
        row("local.example").trim_end().ends_with("local"),
        "{table}"
    );
    assert!(
        row("repo.magento.com").contains("(all projects)")
            && row("repo.magento.com").ends_with("team acme v2"),
        "{table}"
    );
    let g = row("gitlab.example");
    assert!(
        g.contains("acme/shop") && g.contains("DISABLED") && g.contains("Shop token"),
        "{table}"
    );
    assert!(g.ends_with("team acme v1"), "{table}");
    assert!(!table.contains(PRIV));

    let json: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{json}");
    let entry = |origin: &str| {
        entries
            .iter()
            .find(|e| e["origin"] == origin)
            .unwrap_or_else(|| panic!("no entry for {origin}: {json}"))
    };
    let local = entry("local.example");
    assert_eq!(local["source"], "local");
    assert_eq!(local["type"], "bearer");
    assert_eq!(local["label"], "Mine");
    let m = entry("repo.magento.com");
    assert_eq!(m["source"], "team acme v2");
    assert_eq!(m["team"], "acme");
    assert_eq!(m["version"], 2);
    assert_eq!(m["project"], serde_json::Value::Null);
    assert_eq!(m["enabled"], true);
    assert_eq!(
        m["type"],
        serde_json::Value::Null,
        "no secret is read to list"
    );
    let g = entry("gitlab.example");
    assert_eq!(g["source"], "team acme v1");
    assert_eq!(g["project"], "acme/shop");
    assert_eq!(g["enabled"], false);
    assert_eq!(g["label"], "Shop token");
    assert!(!json.to_string().contains(PRIV));

    // A team that cannot answer is an entry with its error; the local ones still list.
    write_token(&t.home().join(".vault-token"), "s.revoked");
    let json: serde_json::Value = serde_json::from_str(&t.ok(&["list", "--json"], "")).unwrap();
    let entries = json.as_array().unwrap();
    assert!(entries.iter().any(|e| e["source"] == "local"), "{json}");
    let failed = entries
        .iter()
        .find(|e| e["source"] == "team acme")
        .unwrap_or_else(|| panic!("{json}"));
    assert!(
        failed["error"].as_str().unwrap().starts_with("team acme:"),
        "{json}"
    );
}
