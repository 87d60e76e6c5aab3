//! A project's name in team sources follows its composer.json: on one kept-alive connection to a daemon reading a real OpenBao, a change of the root `name` (in place with the same size, or by a rename) gives the next lookup the new project's team credential.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::bao_team::{put_pair, READER};
use support::openbao::Bao;
use support::TestEnv;

const ORIGIN: &str = "repo.magento.com";

/// One `GET` on the kept-alive connection `c`: the status and the body.
fn ask(c: &mut UnixStream, path: &str) -> (u16, String) {
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: l\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content-length");
        if body.len() >= len {
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            return (status, body.to_owned());
        }
    }
}

/// The username of the credential the lookup from `project` released.
fn user(c: &mut UnixStream, project: &Path) -> String {
    let (status, body) = ask(
        c,
        &format!(
            "/v1/credentials/{ORIGIN}?project={}",
            project.to_str().unwrap().replace('/', "%2F")
        ),
    );
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    json["credential"]["username"].as_str().unwrap().to_owned()
}

/// Sets a file's modification time an hour back (its change time becomes now).
fn backdate(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

#[test]
fn team_project_name_follows_composer_json_on_one_connection() {
    let bao = Bao::dev();
    bao.policy("composer-read", READER);
    for name in ["one", "two"] {
        put_pair(
            &bao,
            &format!("composer/projects/test/{name}/{ORIGIN}"),
            &format!("TEAM-{}", name.to_uppercase()),
        );
    }
    let t = TestEnv::with_keyring(true);
    t.ok(&["team", "add", "acme", "--addr", bao.addr()], "");
    std::fs::write(
        t.home().join(".vault-token"),
        format!("{}\n", bao.token(&["composer-read"], "1h")),
    )
    .unwrap();
    let _d = t.start_daemon(&[]);
    let dir = t.dir.path().join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let file = dir.join("composer.json");
    std::fs::write(&file, r#"{"name": "test/one"}"#).unwrap();
    // The daemon remembers a name only from a file whose times are a few seconds old (a
    // write within the file system's clock tick could otherwise keep its stamp): let this
    // one settle, so that the lookups below are answered from what it remembered.
    backdate(&file);
    std::thread::sleep(composer_keyd::file_memo::SETTLED + Duration::from_millis(500));

    let mut c = UnixStream::connect(t.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(user(&mut c, &dir), "TEAM-ONE", "read");
    assert_eq!(user(&mut c, &dir), "TEAM-ONE", "remembered");

    // Rewritten in place, with the same size and an old modification time: the same inode,
    // and only the change time tells.
    let before = std::fs::metadata(&file).unwrap();
    std::fs::write(&file, r#"{"name": "test/two"}"#).unwrap();
    backdate(&file);
    let after = std::fs::metadata(&file).unwrap();
    assert_eq!((before.ino(), before.len()), (after.ino(), after.len()));
    assert_eq!(user(&mut c, &dir), "TEAM-TWO", "rewritten in place");

    // Replaced by a rename: another inode.
    let tmp = dir.join("composer.json.tmp");
    std::fs::write(&tmp, r#"{"name": "test/one"}"#).unwrap();
    backdate(&tmp);
    std::fs::rename(&tmp, &file).unwrap();
    assert_eq!(user(&mut c, &dir), "TEAM-ONE", "replaced");

    // Settled again and remembered, then gone: no name, so no project entry applies.
    std::thread::sleep(composer_keyd::file_memo::SETTLED + Duration::from_millis(500));
    assert_eq!(user(&mut c, &dir), "TEAM-ONE");
    assert_eq!(user(&mut c, &dir), "TEAM-ONE");
    std::fs::remove_file(&file).unwrap();
    let path = format!(
        "/v1/credentials/{ORIGIN}?project={}",
        dir.to_str().unwrap().replace('/', "%2F")
    );
    let (status, body) = ask(&mut c, &path);
    assert_eq!(status, 404, "without composer.json: {body}");
}
