//! `composer-keyd setup` on a fresh HOME with a real Secret Service and real Composer: it ends
//! with a passing doctor, imports plaintext when asked, and a second run changes nothing.

use crate::composer_fixture;
use crate::support;

use composer_fixture::{composer_home, isolate_composer, require_tools, text};
use support::TestEnv;

const PUB: &str = "5e7a0b1c2d3e4f5061728394a5b6c7d8";
const PRIV: &str = "8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a";

fn setup(t: &TestEnv, args: &[&str]) -> std::process::Output {
    // Run from HOME, which is no Composer project, with autostart on, as a new user would.
    t.command(support::BIN)
        .arg("setup")
        .args(args)
        .current_dir(t.home())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn setup_on_a_fresh_home_ends_with_a_passing_doctor_and_is_idempotent() {
    require_tools();
    let mut t = TestEnv::with_keyring(true);
    isolate_composer(&mut t);
    let home = composer_home(&t);
    let auth = serde_json::json!({"http-basic": {"repo.magento.com": {"username": PUB, "password": PRIV}}});
    std::fs::write(home.join("auth.json"), auth.to_string()).unwrap();

    let out = setup(&t, &["--import"]);
    let first = text(&out);
    assert!(out.status.success(), "setup failed:\n{first}");
    assert!(first.contains("no service manager runs here"), "{first}");
    assert!(first.contains("keyring"), "{first}");
    assert!(first.contains("1 secret(s) in plaintext"), "{first}");
    assert!(
        !first.contains("PROBLEM"),
        "doctor found problems:\n{first}"
    );
    assert!(
        !home.join("auth.json").exists(),
        "the plaintext file was imported and removed"
    );
    assert!(home
        .join("vendor/composer-keyd/composer-plugin/composer.json")
        .is_file());

    let list = t.ok(&["list", "--json"], "");
    assert!(list.contains("repo.magento.com"), "{list}");

    let out = setup(&t, &[]);
    let second = text(&out);
    assert!(out.status.success(), "second setup failed:\n{second}");
    assert!(second.contains("Nothing changed"), "{second}");
    assert!(second.contains("already installed"), "{second}");

    for s in [PUB, PRIV] {
        assert!(
            !first.contains(s) && !second.contains(s),
            "setup printed a secret"
        );
        assert!(
            t.files_containing(s).is_empty(),
            "{:?}",
            t.files_containing(s)
        );
    }
    // Stop the daemon setup started.
    let status = support::request(&t.socket(), "GET", "/v1/status", None)
        .unwrap()
        .json();
    // SAFETY: kill has no memory effects; the pid is the daemon this test's setup started.
    unsafe { libc::kill(status["pid"].as_i64().unwrap() as i32, libc::SIGTERM) };
}
