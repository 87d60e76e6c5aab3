//! Composer in a real Docker container, wired by `composer-keyd container --write`: the host
//! daemon's socket and a plugin-ready COMPOSER_HOME, a real `composer install` against the
//! loopback repository, and no secret in any file, in `docker inspect` or in the container.
//!
//! Needs root (dockerd, debootstrap); the image is built once by scripts/debian-root.

use crate::composer_fixture;
use crate::support;

use composer_fixture::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::docker::{docker, Container};
use support::TestEnv;

const PUB: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const PRIV: &str = "5ecre7005ecre7005ecre7005ecre700";

fn packages() -> Value {
    json!({"acme/alpha": [package("1.0.0", "Alpha")]})
}

/// A daemon, the repository (basic auth, loopback) and a project whose credential is scoped
/// to it on the host.
fn setup() -> (TestEnv, support::Daemon, RepoServer, std::path::PathBuf) {
    require_tools();
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let d = t.start_daemon(&[]);
    let server = RepoServer::start(
        json!([{"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "pair")], "packages": ["acme/alpha"]}]),
        packages(),
        None,
    );
    let port = server.ports[0];
    let repo = json!({"type": "composer", "url": format!("http://127.0.0.1:{port}")});
    let dir = project(&t, "shop", vec![repo], json!({"acme/alpha": "^1.0"}));
    let dir = std::fs::canonicalize(dir).unwrap();
    add(
        &t,
        &format!("127.0.0.1:{port}"),
        "http-basic",
        Some(&dir),
        &[PUB, PRIV],
    );
    (t, d, server, dir)
}

/// `composer-keyd container ARGS`, asserted to succeed; its stdout.
fn container_cli(t: &TestEnv, args: &[&str]) -> String {
    let out = t
        .command(support::BIN)
        .arg("container")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "container {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// The environment the test adds for Composer as root in the container (not wiring).
const RUN_ENV: &[&str] = &[
    "COMPOSER_ALLOW_SUPERUSER=1",
    "COMPOSER_NO_INTERACTION=1",
    "COMPOSER_NO_AUDIT=1",
];

fn assert_installed_without_plaintext(
    t: &TestEnv,
    server: &RepoServer,
    dir: &Path,
    c: &Container,
    out: &std::process::Output,
) {
    assert!(out.status.success(), "{}", text(out));
    assert!(
        text(out).contains(&format!(
            "Using HTTP basic authentication with username \"{PUB}\""
        )),
        "{}",
        text(out)
    );
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert_eq!(
        server.accepted(0, "/dists/").first().map(String::as_str),
        Some("pair"),
        "{:?}",
        server.requests()
    );
    // Project, host homes and the container's COMPOSER_HOME all live under the test dir.
    assert_no_plaintext(t, PRIV);
    let inspect = c.inspect();
    assert!(!inspect.contains(PRIV), "the secret is in docker inspect");
    assert!(
        !inspect.contains(PUB),
        "the key's public half is in docker inspect"
    );
    assert!(
        !support::contains(&c.filesystem(), PRIV.as_bytes()),
        "the secret is in a file in the container"
    );
}

#[test]
fn same_uid_docker_run_with_the_written_wiring() {
    let dk = docker();
    let (t, _d, server, dir) = setup();
    let flags = container_cli(
        &t,
        &["docker", "--write", "--project", dir.to_str().unwrap()],
    );
    let home = t.home().join(".local/share/composer-keyd/container-home");
    assert!(
        home.join("vendor/composer-keyd/composer-plugin").is_dir(),
        "the container home has the plugin"
    );
    let c = Container::new("docker");
    let env: String = RUN_ENV.iter().map(|e| format!(" -e {e}")).collect();
    let script = format!(
        "docker run --name {} --network host {}{env} {} composer install --no-ansi -vvv",
        c.0,
        flags.trim().replace("\\\n", " "),
        dk.image
    );
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert_installed_without_plaintext(&t, &server, &dir, &c, &out);
}

#[test]
fn compose_override_used_by_real_docker_compose() {
    support::require("docker-compose", "docker-compose");
    let dk = docker();
    let (t, _d, server, dir) = setup();
    let d = dir.to_str().unwrap();
    let base = json!({"services": {"app": {
        "image": dk.image,
        "network_mode": "host",
        "working_dir": d,
        "volumes": [format!("{d}:{d}")],
        "environment": RUN_ENV,
    }}});
    // JSON is YAML: the user's own compose file, which the override only adds to.
    std::fs::write(dir.join("compose.yaml"), base.to_string()).unwrap();
    let printed = container_cli(&t, &["compose", "--project", d, "--service", "app"]);
    assert!(
        !dir.join("compose.composer-keyd.yaml").exists(),
        "without --write nothing is written"
    );
    container_cli(
        &t,
        &["compose", "--write", "--project", d, "--service", "app"],
    );
    let written = std::fs::read_to_string(dir.join("compose.composer-keyd.yaml")).unwrap();
    assert_eq!(printed, written);

    let project_name = format!("ckdcompose{}", std::process::id());
    let _down = ComposeDown(dir.clone(), project_name.clone());
    let c = Container::new("compose");
    let out = Command::new("docker-compose")
        .args([
            "-p",
            &project_name,
            "-f",
            "compose.yaml",
            "-f",
            "compose.composer-keyd.yaml",
        ])
        .args([
            "run",
            "-T",
            "--name",
            &c.0,
            "app",
            "composer",
            "install",
            "--no-ansi",
            "-vvv",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_installed_without_plaintext(&t, &server, &dir, &c, &out);
}

/// `docker-compose down` for a test's compose project, when dropped.
struct ComposeDown(std::path::PathBuf, String);

impl Drop for ComposeDown {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["-p", &self.1, "-f", "compose.yaml", "down"])
            .current_dir(&self.0)
            .output();
    }
}

#[test]
fn doctor_in_a_container_names_what_is_missing() {
    let dk = docker();
    let (t, _d, _server, dir) = setup();
    let flags = container_cli(
        &t,
        &["docker", "--write", "--project", dir.to_str().unwrap()],
    );
    let flags = flags.trim().replace("\\\n", " ");
    let doctor = |extra: &str| -> String {
        let script = format!(
            "docker run --rm --network none --mount type=bind,source={},target=/usr/local/bin/composer-keyd,readonly {extra} {} composer-keyd doctor --offline",
            support::BIN,
            dk.image
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        text(&out)
    };

    let none = doctor("");
    assert!(
        none.contains("PROBLEM  container: no socket is mounted"),
        "{none}"
    );

    let socket = t.socket();
    let plugin_missing = doctor(&format!(
        "--mount type=bind,source={},target=/run/composer-keyd.sock -e COMPOSER_KEYD_SOCK=/run/composer-keyd.sock",
        socket.display()
    ));
    assert!(
        plugin_missing.contains("ok       daemon"),
        "{plugin_missing}"
    );
    assert!(
        plugin_missing.contains(
            "note     container: the plugin is not loaded: COMPOSER_HOME is not the mounted"
        ),
        "{plugin_missing}"
    );

    let me = composer_keyd_uid();
    // SAFETY: getegid has no preconditions and cannot fail.
    let gid = unsafe { libc::getegid() };
    let n = flags.matches("--user ").count();
    assert_eq!(n, 1, "{flags}");
    let other = doctor(&flags.replace(&format!("--user {me}:{gid}"), "--user 33:33"));
    assert!(other.contains("PROBLEM  container"), "{other}");
    assert!(
        other.contains(&format!("the daemon refuses this uid: Composer runs as uid 33 here, the daemon serves only uid {me}")),
        "{other}"
    );

    let wired = doctor(&flags);
    assert!(wired.contains("ok       daemon"), "{wired}");
    assert!(wired.contains("ok       plugin"), "{wired}");
    assert!(!wired.contains("PROBLEM  container"), "{wired}");
}

/// The uid the tests' daemon runs as (the test's own).
fn composer_keyd_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

const PUB_B: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
const PRIV_B: &str = "5ecb5ecb5ecb5ecb5ecb5ecb5ecb5ecb";

/// Runs `sh -c SCRIPT`.
fn sh(script: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

/// Grants for uid 33 (www-data): (c) refused without one, with the fix printed; (b) works
/// with one; (d) a grant for project A releases nothing scoped to project B; (e) refused
/// after revoke.
#[test]
fn grants_for_another_uid() {
    let dk = docker();
    require_tools();
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let _d = t.start_daemon(&[]);
    let server = RepoServer::start(
        json!([
            {"host": "127.0.0.1", "port": 0, "basic": [basic(PUB, PRIV, "pair-a")], "packages": ["acme/alpha"]},
            {"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_B, PRIV_B, "pair-b")], "packages": ["acme/beta"]},
        ]),
        json!({"acme/alpha": [package("1.0.0", "Alpha")], "acme/beta": [package("1.0.0", "Beta")]}),
        None,
    );
    let (p0, p1) = (server.ports[0], server.ports[1]);
    let repo = |p: u16| json!({"type": "composer", "url": format!("http://127.0.0.1:{p}")});
    let a = std::fs::canonicalize(project(
        &t,
        "a",
        vec![repo(p0)],
        json!({"acme/alpha": "^1.0"}),
    ))
    .unwrap();
    let b = std::fs::canonicalize(project(
        &t,
        "b",
        vec![repo(p1)],
        json!({"acme/beta": "^1.0"}),
    ))
    .unwrap();
    add(
        &t,
        &format!("127.0.0.1:{p0}"),
        "http-basic",
        Some(&a),
        &[PUB, PRIV],
    );
    add(
        &t,
        &format!("127.0.0.1:{p1}"),
        "http-basic",
        Some(&b),
        &[PUB_B, PRIV_B],
    );
    // Unscoped too: a grant without --include-global must not release it either.
    add(
        &t,
        &format!("127.0.0.1:{p1}"),
        "http-basic",
        None,
        &[PUB_B, PRIV_B],
    );
    for p in [&a, &b] {
        assert!(sh(&format!("chown -R 33:33 '{}'", p.display()))
            .status
            .success());
    }
    let (ad, bd) = (a.to_str().unwrap(), b.to_str().unwrap());

    // (c) No grant: `container --uid 33` says which grant is missing; the main socket
    // mounted by hand refuses uid 33, Composer goes on without us, the plugin names the fix.
    let out = t
        .command(support::BIN)
        .args([
            "container",
            "docker",
            "--write",
            "--project",
            ad,
            "--uid",
            "33",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("composer-keyd grant add --uid 33 --project {ad}")),
        "{}",
        text(&out)
    );
    let same = container_cli(&t, &["docker", "--write", "--project", ad]);
    let same = same
        .trim()
        .replace("\\\n", " ")
        .replace("--user 0:0", "--user 33:33");
    let env: String = RUN_ENV.iter().map(|e| format!(" -e {e}")).collect();
    let c = Container::new("nogrant");
    let out = sh(&format!(
        "docker run --name {} --network host {same}{env} {} composer install --no-ansi",
        c.0, dk.image
    ));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("this is uid 33 and the daemon serves uid 0: on the host run `composer-keyd grant add --uid 33 --project {ad}`")),
        "{}",
        text(&out)
    );
    assert!(server.accepted(0, "/").is_empty());
    drop(c);

    // (b) With a grant: the grant's socket, read-only, project A.
    t.ok(
        &[
            "grant",
            "add",
            "--uid",
            "33",
            "--project",
            ad,
            "--name",
            "shop-www",
        ],
        "",
    );
    assert!(t.ok(&["grant", "list"], "").contains("shop-www  uid 33"));
    let flags = container_cli(&t, &["docker", "--write", "--project", ad, "--uid", "33"]);
    let flags = flags.trim().replace("\\\n", " ");
    assert!(
        flags.contains("grant-shop-www.sock") && flags.contains("--user 33:33"),
        "{flags}"
    );
    let c = Container::new("grant");
    // Project B is mounted too, so (d) can run Composer there through the same grant.
    let started = sh(&format!(
        "docker run -d --name {} --network host {flags} --mount type=bind,source={bd},target={bd}{env} {} sleep 600",
        c.0, dk.image
    ));
    assert!(started.status.success(), "{}", text(&started));
    let exec = |dir: &str, args: &str| sh(&format!("docker exec -w {dir} {} {args}", c.0));
    let out = exec(ad, "composer install --no-ansi -vvv");
    assert!(out.status.success(), "{}", text(&out));
    assert!(a.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert_eq!(
        server.accepted(0, "/dists/").first().map(String::as_str),
        Some("pair-a")
    );
    let log = t.ok(&["log", "--json"], "");
    assert!(
        log.lines().any(|l| l.contains("\"release\"")
            && l.contains("grant shop-www")
            && l.contains("\"uid\":33")),
        "{log}"
    );
    // Only reads: a write through the grant is refused.
    let put = exec(ad, "php -r '$s=stream_socket_client(\"unix:///run/composer-keyd.sock\");fwrite($s,\"DELETE /v1/credentials/127.0.0.1:1 HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n\");echo stream_get_contents($s);'");
    assert!(
        String::from_utf8_lossy(&put.stdout).contains("403"),
        "{}",
        text(&put)
    );

    // (d) The same grant, asked from project B: neither B's credential nor the unscoped one
    // is released.
    let out = exec(bd, "composer install --no-ansi");
    assert!(
        text(&out).contains("required authentication"),
        "{}",
        text(&out)
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        server.accepted(1, "/").is_empty(),
        "{:?}",
        server.requests()
    );
    assert!(!text(&out).contains(PRIV_B));

    // No secret anywhere: files, docker inspect, the container's filesystem.
    assert_no_plaintext(&t, PRIV);
    assert_no_plaintext(&t, PRIV_B);
    let inspect = c.inspect();
    assert!(!inspect.contains(PRIV) && !inspect.contains(PRIV_B));
    let fs = c.filesystem();
    assert!(!support::contains(&fs, PRIV.as_bytes()) && !support::contains(&fs, PRIV_B.as_bytes()));

    // (e) Revoked: the running container is refused from now on.
    t.ok(&["grant", "revoke", "shop-www"], "");
    assert!(!t.ok(&["grant", "list"], "").contains("shop-www"));
    server.clear();
    assert!(exec(ad, "rm -rf vendor composer.lock /tmp/composer-cache")
        .status
        .success());
    let out = exec(ad, "composer install --no-ansi");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(server.accepted(0, "/").is_empty());
    assert!(
        text(&out).contains("composer-keyd grant add --uid 33"),
        "{}",
        text(&out)
    );
}

/// A grant's socket: host processes of the granted uid cannot reach it (0700 runtime dir),
/// and through it the daemon admits only the granted uid, not even its own.
#[test]
fn grant_socket_admits_only_its_uid() {
    use std::io::{Read, Write};
    support::require("setpriv", "util-linux");
    let t = TestEnv::with_keyring(true);
    let _d = t.start_daemon(&[]);
    let dir = t.dir.path().join("projects/p");
    std::fs::create_dir_all(&dir).unwrap();
    t.ok(
        &[
            "grant",
            "add",
            "--uid",
            "33",
            "--project",
            dir.to_str().unwrap(),
            "--name",
            "g",
        ],
        "",
    );
    let sock = t.socket().parent().unwrap().join("grant-g.sock");
    assert!(sock.exists(), "the daemon binds the grant's socket");

    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    // The daemon may close the connection before the request is written (EPIPE): refused too.
    let _ = s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.is_empty(),
        "uid {} got a reply: {}",
        composer_keyd_uid(),
        String::from_utf8_lossy(&reply)
    );
    let log = t.ok(&["log", "--json"], "");
    assert!(
        log.lines()
            .any(|l| l.contains("reject-peer") && l.contains("grant g")),
        "{log}"
    );

    let host33 = Command::new("setpriv")
        .args([
            "--reuid=33",
            "--regid=33",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(format!(
            "import socket; socket.socket(socket.AF_UNIX).connect({:?})",
            sock.to_str().unwrap()
        ))
        .output()
        .unwrap();
    assert!(!host33.status.success());
    assert!(
        text(&host33).contains("Permission denied"),
        "{}",
        text(&host33)
    );

    t.ok(&["grant", "revoke", "g"], "");
    assert!(!sock.exists(), "revoke removes the socket");
}
