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
fn team_rotation_in_openbao_reaches_the_next_install_through_the_refresh_path() {
    use crate::composer_fixture::{basic, composer, project, RepoServer};
    use crate::plugin_e2e::{composer_repo, packages};
    let bao = Bao::dev();
    let new_pub = "9".repeat(32);
    let new_priv = "8".repeat(32);
    // The repository already takes only the new pair: the Marketplace regenerated the keys.
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(&new_pub, &new_priv, "new-pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let (t, _d) = team_daemon(&bao, &[]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    // The daemon holds the old pair in its cache (TTL 5 min).
    assert_eq!(t.credential(&origin, Some(&dir))["username"], PUB);
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", &new_pub),
            ("password", &new_priv),
        ],
    );

    let first = composer(&t, &dir, &["install"]);
    assert!(
        !first.status.success(),
        "the cached old pair is refused: {}",
        text(&first)
    );
    assert!(
        text(&first).contains("changed in its source"),
        "{}",
        text(&first)
    );
    let refused = server
        .requests()
        .iter()
        .filter(|r| r["status"] == 401)
        .count();
    assert!(refused >= 1, "{:?}", server.requests());
    server.clear();
    let second = composer(&t, &dir, &["install"]);
    assert!(
        second.status.success(),
        "no daemon restart needed: {}",
        text(&second)
    );
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "new-pair"),
        "{seen:?}"
    );
    assert!(server.requests().iter().all(|r| r["status"] != 401));
}
