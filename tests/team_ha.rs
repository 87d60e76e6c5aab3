//! Team sources when the engine fails: failover between addresses, a Raft cluster losing its
//! leader (lookups and `composer install`s), an engine that hangs, and an outage served from
//! the cache within the grace period only.

use crate::support;

use crate::team::team_daemon;
use composer_keyd::team::sources::Freshness;
use composer_keyd::team::TeamError;
use std::io::Write;
use std::time::{Duration, Instant};
use support::bao_team::*;
use support::openbao::{free_port, Bao};
use support::TestEnv;

#[test]
fn team_fails_over_and_serves_cache_within_grace_only() {
    let mut bao = Bao::dev();
    let (_d, tf) = reader_token(&bao, "1h");
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let rt = rt();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let s = sources("acme", vec![dead, bao.addr().to_owned()], &tf, |c| {
        c.cache_ttl = Some(Duration::from_millis(300));
        c.grace = Some(Duration::from_secs(2));
    });
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB,
        "the dead first address is skipped"
    );
    bao.server.kill();
    std::thread::sleep(Duration::from_millis(400));
    let found = rt.block_on(s.lookup("repo.magento.com", None, Freshness::Cached));
    assert!(
        found[0].stale,
        "past the TTL, every address down: served from the grace"
    );
    assert!(found[0].result.as_ref().unwrap().is_some());
    assert!(
        s.teams()[0].outage().is_some(),
        "the outage is known for status"
    );
    let first = rt.block_on(s.lookup("repo.magento.com", None, Freshness::RunStart));
    assert!(
        first[0].stale && first[0].result.as_ref().unwrap().is_some(),
        "a run's first lookup falls back to the cache within the grace too"
    );
    std::thread::sleep(Duration::from_millis(2000));
    let found = rt.block_on(s.lookup("repo.magento.com", None, Freshness::Cached));
    let err = found[0]
        .result
        .as_ref()
        .expect_err("refused after the grace");
    assert!(matches!(**err, TeamError::Unavailable { .. }), "{err}");
}

#[test]
fn team_raft_cluster_losing_its_leader_fails_no_lookup() {
    let mut c = support::openbao::Cluster::start();
    c.ok(&[
        "kv",
        "put",
        "secret/composer/repo.magento.com",
        "type=http-basic",
        &format!("username={PUB}"),
        &format!("password={PRIV}"),
    ]);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    write_token(&tf, &c.root);
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.addr.clone()).collect();
    // A short TTL, so lookups go to the cluster while it elects a new leader.
    let s = sources("acme", addrs, &tf, |cfg| {
        cfg.cache_ttl = Some(Duration::from_millis(200));
        cfg.grace = Some(Duration::from_secs(60));
    });
    let rt = rt();
    let leader = c.leader().unwrap();
    let mut stale = 0;
    let mut fresh_after = 0;
    // Bounded: at most 150 lookups, 100 ms apart.
    for i in 0..150 {
        if i == 10 {
            c.nodes[leader].kill();
        }
        let found = rt.block_on(s.lookup("repo.magento.com", None, Freshness::Cached));
        let f = &found[0];
        let e = f
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("lookup {i} failed: {e}"));
        assert!(e.is_some(), "lookup {i}");
        stale += f.stale as u32;
        if i > 10 && !f.stale {
            fresh_after += 1;
            if fresh_after >= 5 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fresh_after >= 5,
        "after the election the new leader serves fresh reads (stale {stale})"
    );
}

#[test]
fn team_raft_leader_killed_during_composer_installs_fails_none() {
    use crate::composer_fixture::{
        basic, composer, install_plugin, isolate_composer, project, require_tools, RepoServer,
    };
    use crate::plugin_e2e::{composer_repo, packages};
    require_tools();
    let mut c = support::openbao::Cluster::start();
    let mut policy = std::process::Command::new(&c.bin);
    let leader = c.leader().unwrap();
    policy
        .args(["policy", "write", "composer-read", "-"])
        .env_clear()
        .env("BAO_ADDR", &c.nodes[leader].addr)
        .env("BAO_TOKEN", &c.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = policy.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(READER.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let token: serde_json::Value =
        serde_json::from_str(&c.ok(&["token", "create", "-format=json", "-policy=composer-read"]))
            .unwrap();
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "ha-pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let origin = format!("127.0.0.1:{}", server.ports[0]);
    c.ok(&[
        "kv",
        "put",
        &format!("secret/composer/{origin}"),
        "type=http-basic",
        &format!("username={PUB}"),
        &format!("password={PRIV}"),
    ]);

    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let mut args = vec!["team", "add", "acme", "--cache-ttl", "1s", "--grace", "2m"];
    for n in &c.nodes {
        args.extend(["--addr", n.addr.as_str()]);
    }
    t.ok(&args, "");
    write_token(
        &t.home().join(".vault-token"),
        token["auth"]["client_token"].as_str().unwrap(),
    );
    let _d = t.start_daemon(&[]);
    install_plugin(&t);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    let cache = std::path::PathBuf::from(&t.env["COMPOSER_CACHE_DIR"]);
    // Bounded: six installs, each from scratch, so each asks for the credential.
    for i in 0..6 {
        if i == 2 {
            c.nodes[leader].kill();
        }
        let _ = std::fs::remove_dir_all(dir.join("vendor"));
        let _ = std::fs::remove_file(dir.join("composer.lock"));
        let _ = std::fs::remove_dir_all(&cache);
        let out = composer(&t, &dir, &["install"]);
        assert!(out.status.success(), "install {i}: {}", text(&out));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let seen = server.accepted(0, "/dists/");
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.iter().all(|l| l == "ha-pair"));
}

#[test]
fn team_hanging_engine_gives_a_typed_error_in_time_and_local_credentials_are_still_served() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let (addr, h, stop) = fake_engine(None);
    let mut t = TestEnv::with_keyring(true);
    crate::composer_fixture::isolate_composer(&mut t);
    t.ok(&["team", "add", "stuck", "--addr", &addr], "");
    write_token(&t.home().join(".vault-token"), "s.whatever");
    let _d = t.start_daemon(&[]);
    t.ok(
        &["add", "local.example", "--type", "bearer"],
        &format!("{PRIV}\n"),
    );
    let dir = t.dir.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("composer.json"), r#"{"name": "test/p"}"#).unwrap();
    for project in [None, Some(dir.as_path())] {
        let t0 = Instant::now();
        assert_eq!(t.credential("local.example", project)["token"], PRIV);
        let r = t.lookup("team.example", project);
        let took = t0.elapsed();
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.kind(), "backend-unavailable", "{}", r.body);
        assert!(r.body.contains("team stuck"), "{}", r.body);
        // The bound, not speed: one team request's 1 s budget, with slack.
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
}

#[test]
fn team_outage_serves_cached_entries_within_the_grace_and_status_says_so() {
    let mut bao = Bao::dev();
    put_pair(&bao, "composer/repo.magento.com", PUB);
    let (t, _d) = team_daemon(&bao, &["--cache-ttl", "1s", "--grace", "3s"]);
    assert_eq!(t.credential("repo.magento.com", None)["username"], PUB);
    let s = t.ok(&["status"], "");
    assert!(s.contains("team:        acme: answering"), "{s}");
    let doctor = text(&t.cli(&["doctor"], ""));
    assert!(
        doctor.contains(&format!("{}  active", bao.addr())),
        "{doctor}"
    );
    assert!(doctor.contains("read yes, write no"), "{doctor}");
    assert!(doctor.contains("renewable"), "{doctor}");
    bao.server.kill();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        t.credential("repo.magento.com", None)["username"],
        PUB,
        "past the TTL, within the grace"
    );
    let s = t.ok(&["status"], "");
    assert!(
        s.contains("acme: every address failing") && s.contains("served for up to 3s"),
        "{s}"
    );
    let doctor = text(&t.cli(&["doctor"], ""));
    assert!(
        doctor.contains("every address failing"),
        "doctor says so: {doctor}"
    );
    assert!(doctor.contains("down: cannot connect"), "{doctor}");
    std::thread::sleep(Duration::from_millis(3000));
    let r = t.lookup("repo.magento.com", None);
    assert_eq!(r.status, 503, "refused after the grace: {}", r.body);
    assert!(!r.body.contains(PRIV));
}
