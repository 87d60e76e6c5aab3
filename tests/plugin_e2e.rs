//! End to end: real PHP, real Composer, the real daemon on a real gnome-keyring, and a
//! loopback repository that demands credentials; the server's log proves what crossed the wire.

mod composer_fixture;
mod support;

use composer_fixture::*;
use serde_json::json;

const PUB_A: &str = "5f0e7a1c9b2d48e6a3c1f09d7e8b6a54";
const PRIV_A: &str = "b7c3e9f1a2d4065c8e1f3a7b9d2c4e60";
const PUB_B: &str = "0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f";
const PRIV_B: &str = "e1d2c3b4a5968778695a4b3c2d1e0f9a";
const TOKEN: &str = "tok-8d3f1b7e6c2a4905b1e7d3c9f2a6b8e4";

fn packages() -> serde_json::Value {
    json!({
        "acme/alpha": [package("1.0.0", "Alpha")],
        "acme/beta": [package("2.1.0", "Beta")],
        "acme/gamma": [package("0.3.0", "Gamma")],
    })
}

fn composer_repo(port: u16) -> serde_json::Value {
    json!({"type": "composer", "url": format!("http://127.0.0.1:{port}")})
}

#[test]
fn installs_with_http_basic_and_bearer_from_the_daemon() {
    let (t, _d) = composer_env();
    let server = RepoServer::start(
        json!([
            {"host": "127.0.0.1", "port": 0, "basic": [basic(PUB_A, PRIV_A, "pair-a")], "packages": ["acme/alpha"]},
            {"host": "127.0.0.1", "port": 0, "bearer": [bearer(TOKEN, "token")], "packages": ["acme/beta"]},
        ]),
        packages(),
        None,
    );
    let (p0, p1) = (server.ports[0], server.ports[1]);
    add(&t, &format!("127.0.0.1:{p0}"), "http-basic", None, &[PUB_A, PRIV_A]);
    add(&t, &format!("127.0.0.1:{p1}"), "bearer", None, &[TOKEN]);
    let dir = project(
        &t,
        "shop",
        vec![composer_repo(p0), composer_repo(p1)],
        json!({"acme/alpha": "^1.0", "acme/beta": "^2.0"}),
    );

    let out = composer(&t, &dir, &["install", "-vvv"]);
    assert!(out.status.success(), "composer install failed: {}", text(&out));
    assert!(dir.join("vendor/acme/alpha/src/Alpha.php").is_file());
    assert!(dir.join("vendor/acme/beta/src/Beta.php").is_file());
    let log = text(&out);
    assert!(log.contains(&format!("Using HTTP basic authentication with username \"{PUB_A}\"")), "{log}");

    // The right credentials crossed the wire for metadata and dists, and nothing was served without them.
    for (listener, label) in [(0, "pair-a"), (1, "token")] {
        for prefix in ["/packages.json", "/p2/", "/dists/"] {
            let seen = server.accepted(listener, prefix);
            assert!(!seen.is_empty() && seen.iter().all(|l| l == label), "listener {listener} {prefix}: {seen:?}");
        }
    }
    assert!(server.requests().iter().all(|r| r["status"] != 401), "{:?}", server.requests());

    for file in ["auth.json"] {
        assert!(!composer_home(&t).join(file).exists());
        assert!(!dir.join(file).exists());
    }
    for secret in [PUB_A, PRIV_A, TOKEN] {
        assert_no_plaintext(&t, secret);
    }
}
