//! The audit log under load, against the real daemon and a vault: the first release per
//! connection and credential is on disk before the reply (so a kill -9 loses none), repeats
//! are counted into one line when the connection ends or the daemon locks, and the record of
//! a first release names the peer's executable, read only then.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{wait_for, TestEnv};

const PW: &str = "audit test passphrase";
const ORIGINS: [&str; 2] = ["a.example", "b.example"];

/// A kept-alive HTTP/1.1 connection to the daemon.
struct Conn {
    stream: UnixStream,
}

impl Conn {
    fn open(sock: &Path) -> Conn {
        let stream = UnixStream::connect(sock).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Conn { stream }
    }

    /// `GET path` on this connection: the status and body, or `None` once the daemon is gone.
    fn get(&mut self, path: &str) -> Option<(u16, String)> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: l\r\nConnection: keep-alive\r\n\r\n");
        self.stream.write_all(req.as_bytes()).ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let status = head.split(' ').nth(1)?.parse().ok()?;
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return Some((status, body));
                }
            }
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// A lookup of `origin` from project `/nonexistent/conn-N`: the project names the connection
/// in its first-release record.
fn path(origin: &str, conn: usize) -> String {
    format!("/v1/credentials/{origin}?project=%2Fnonexistent%2Fconn-{conn}")
}

fn project(conn: usize) -> String {
    format!("/nonexistent/conn-{conn}")
}

fn log_path(t: &TestEnv) -> PathBuf {
    t.home().join(".local/state/composer-keyd/audit.log")
}

/// Every line of the audit log, each of which must be a whole JSON record.
fn records(t: &TestEnv) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log_path(t)).unwrap();
    assert!(text.ends_with('\n'), "the last line is torn: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line ({e}): {l:?}")))
        .collect()
}

/// The release lines of connection `conn` for `origin`: (first-release lines, sum of counts).
fn releases(all: &[serde_json::Value], conn: usize, origin: &str) -> (usize, u64) {
    let mine = all.iter().filter(|r| {
        r["event"] == "release" && r["origin"] == origin && r["project"] == project(conn)
    });
    mine.fold((0, 0), |(firsts, counted), r| match r["repeats"].as_u64() {
        Some(n) => (firsts, counted + n),
        None => (firsts + 1, counted),
    })
}

/// A daemon over a fresh vault holding a token for each of `ORIGINS`.
fn daemon_with_credentials(t: &TestEnv) -> support::Daemon {
    let d = t.start_daemon(&["--audit-max-size", "100000000"]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    for o in ORIGINS {
        t.ok(&["add", o, "--type", "bearer"], &format!("token-{o}\n"));
    }
    d
}

#[test]
fn a_kill_9_mid_load_loses_no_first_release_and_tears_no_line() {
    let t = TestEnv::fast_vault();
    let mut d = daemon_with_credentials(&t);
    let sock = t.socket();
    let served = AtomicUsize::new(0);
    let got: Vec<BTreeSet<&str>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..6)
            .map(|conn| {
                let (sock, served) = (&sock, &served);
                s.spawn(move || {
                    let mut c = Conn::open(sock);
                    let mut got = BTreeSet::new();
                    // Bounded: the daemon is killed long before, and then every call fails.
                    for i in 0..20_000 {
                        let origin = ORIGINS[(i / 7 + conn) % 2];
                        match c.get(&path(origin, conn)) {
                            Some((200, body)) => {
                                assert!(body.contains(&format!("token-{origin}")), "{body}");
                                got.insert(origin);
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            Some((status, body)) => panic!("{status}: {body}"),
                            None => break,
                        }
                    }
                    got
                })
            })
            .collect();
        assert!(
            wait_for(600, || served.load(Ordering::Relaxed) >= 600),
            "the load never got going"
        );
        d.kill9();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(
        served.load(Ordering::Relaxed) < 6 * 20_000,
        "the kill came after the load"
    );
    let all = records(&t);
    for (conn, origins) in got.iter().enumerate() {
        assert!(!origins.is_empty(), "connection {conn} got nothing");
        for origin in origins {
            // At least: the old daemon, which wrote every release, kept this promise too.
            let (firsts, _) = releases(&all, conn, origin);
            assert!(firsts >= 1, "connection {conn}, {origin}: {all:#?}");
        }
    }
}

#[test]
fn repeats_are_counted_into_one_line_at_close_and_at_lock() {
    let t = TestEnv::fast_vault();
    let d = daemon_with_credentials(&t);
    let sock = t.socket();
    let mut served: BTreeMap<(usize, &str), u64> = BTreeMap::new();
    for conn in 0..3 {
        let mut c = Conn::open(&sock);
        for i in 0..(50 + conn * 30) {
            let origin = ORIGINS[(i + conn) % 2];
            let (status, body) = c.get(&path(origin, conn)).expect("an answer");
            assert_eq!(status, 200, "{body}");
            *served.entry((conn, origin)).or_default() += 1;
        }
        // Closing the connection writes its counts; wait for them (bounded).
        drop(c);
        let counted = || {
            ORIGINS
                .iter()
                .all(|o| releases(&records(&t), conn, o).1 > 0)
        };
        assert!(
            wait_for(200, counted),
            "no count lines for connection {conn}"
        );
    }
    let all = records(&t);
    for ((conn, origin), n) in &served {
        let (firsts, counted) = releases(&all, *conn, origin);
        assert_eq!(
            firsts, 1,
            "connection {conn}, {origin}: one first-release line"
        );
        assert_eq!(
            1 + counted,
            *n,
            "connection {conn}, {origin}: the counts add up"
        );
    }

    // A lock writes the counts of a connection still open, and the next release after
    // the unlock is recorded in full again.
    let conn = 7;
    let mut c = Conn::open(&sock);
    for _ in 0..5 {
        assert_eq!(c.get(&path("a.example", conn)).unwrap().0, 200);
    }
    assert_eq!(releases(&records(&t), conn, "a.example"), (1, 0));
    t.ok(&["lock"], "");
    assert_eq!(releases(&records(&t), conn, "a.example"), (1, 4));
    t.ok(&["unlock"], &format!("{PW}\n"));
    assert_eq!(c.get(&path("a.example", conn)).unwrap().0, 200);
    assert_eq!(releases(&records(&t), conn, "a.example"), (2, 4));
    drop(c);
    drop(d);
}

#[test]
fn the_first_release_names_the_executable_and_a_later_policy_still_holds() {
    support::require("python3", "python3");
    let t = TestEnv::fast_vault();
    let _d = daemon_with_credentials(&t);
    let sock = t.socket();
    let me = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    // Opened while no policy names executables: the executable is read at the first release.
    let mut c = Conn::open(&sock);
    assert_eq!(c.get(&path("a.example", 1)).unwrap().0, 200);
    let first = records(&t)
        .into_iter()
        .find(|r| r["event"] == "release" && r["project"] == project(1))
        .expect("the first release is recorded");
    assert_eq!(first["exe"], me.to_str().unwrap(), "{first}");
    assert_eq!(first["pid"], std::process::id());

    // A policy added while the connection is open holds for it: this test is not python.
    t.ok(
        &[
            "add",
            "c.example",
            "--type",
            "bearer",
            "--allow-exe",
            "/usr/bin/python3",
        ],
        "token-c\n",
    );
    let (status, body) = c.get(&path("c.example", 1)).unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains(me.to_str().unwrap()), "{body}");
    assert!(!body.contains("token-c"));
    // And so does it for a connection opened after it.
    let mut c2 = Conn::open(&sock);
    assert_eq!(c2.get(&path("c.example", 2)).unwrap().0, 403);
    assert_eq!(c2.get(&path("a.example", 2)).unwrap().0, 200);
}

#[test]
fn the_everyday_lookup_and_the_full_path_answer_and_count_alike() {
    let t = TestEnv::fast_vault();
    let d = daemon_with_credentials(&t);
    let mut c = Conn::open(&t.socket());
    // The first takes the short path (a plain host, no query, cached since its add); the
    // others spell the same origin so that only the router (`routes::route`) serves them.
    let spellings = [
        "/v1/credentials/a.example",
        "/v1/credentials/A.Example",
        "/v1/credentials/a.example/",
        "/v1/credentials/a%2Eexample",
        "/v1/credentials/a.example",
    ];
    let answers: Vec<(u16, String)> = spellings
        .iter()
        .map(|p| c.get(p).expect("an answer"))
        .collect();
    for (p, a) in spellings.iter().zip(&answers) {
        assert_eq!(a, &answers[0], "{p} answers as the short path does");
    }
    assert_eq!(answers[0].0, 200, "{}", answers[0].1);
    assert!(answers[0].1.contains("token-a.example"));
    let unscoped = |all: &[serde_json::Value]| -> (usize, u64) {
        let mine = all.iter().filter(|r| {
            r["event"] == "release" && r["origin"] == "a.example" && r["project"].is_null()
        });
        mine.fold((0, 0), |(firsts, counted), r| match r["repeats"].as_u64() {
            Some(n) => (firsts, counted + n),
            None => (firsts + 1, counted),
        })
    };
    assert_eq!(
        unscoped(&records(&t)),
        (1, 0),
        "one first release, written at once"
    );
    drop(c);
    assert!(
        wait_for(200, || unscoped(&records(&t)) == (1, 4)),
        "the four repeats, whichever path served them, counted at close: {:?}",
        unscoped(&records(&t))
    );
    drop(d);
}

/// Issue 22, medium: 1.47 million refused connects in 40 s replaced every earlier release
/// record. A bounded flood of refused connections (200,000 or 30 s, whichever comes first)
/// to a grant's socket, plus refused requests on the main socket, leaves every earlier
/// release in `composer-keyd log`; the refusals are there as a few counted lines.
#[test]
fn a_flood_of_refusals_never_pushes_a_release_out_of_the_log() {
    let t = TestEnv::fast_vault();
    // A small log, so that an unlimited flood would rotate every release out in moments.
    let _d = t.start_daemon(&["--audit-max-size", "65536", "--audit-keep", "1"]);
    t.ok(&["unlock"], &format!("{PW}\n{PW}\n"));
    for o in ORIGINS {
        t.ok(&["add", o, "--type", "bearer"], &format!("token-{o}\n"));
    }
    let sock = t.socket();
    for conn in 0..3 {
        for o in ORIGINS {
            assert_eq!(Conn::open(&sock).get(&path(o, conn)).unwrap().0, 200);
        }
    }
    let project = t.dir.path().join("granted");
    std::fs::create_dir_all(&project).unwrap();
    t.ok(
        &[
            "grant",
            "add",
            "--uid",
            "65534",
            "--project",
            project.to_str().unwrap(),
            "--name",
            "flood",
        ],
        "",
    );
    let grant = sock.parent().unwrap().join("grant-flood.sock");

    // This process is not uid 65534: each connect is refused before a byte is read.
    let start = std::time::Instant::now();
    let mut connects = 0u64;
    while connects < 200_000 && start.elapsed() < Duration::from_secs(30) {
        if let Ok(s) = UnixStream::connect(&grant) {
            drop(s);
        }
        connects += 1;
    }
    eprintln!(
        "{connects} refused connects in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    // And refused requests on the main socket, on one kept-alive connection.
    let mut c = Conn::open(&sock);
    for _ in 0..2_000 {
        assert_eq!(c.get("/v1/credentials/absent.example").unwrap().0, 404);
    }
    drop(c);
    // Locking ends the refusals' interval: their counts are written.
    t.ok(&["lock"], "");

    let log: Vec<serde_json::Value> = t
        .ok(&["log", "--json"], "")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for conn in 0..3 {
        for o in ORIGINS {
            assert_eq!(
                releases(&log, conn, o).0,
                1,
                "the release of {o} on connection {conn} is gone after {connects} refused connects"
            );
        }
    }
    let rejects: Vec<_> = log.iter().filter(|r| r["event"] == "reject-peer").collect();
    let counted: u64 = rejects
        .iter()
        .map(|r| r["similar"].as_u64().unwrap_or(0) + u64::from(r["similar"].is_null()))
        .sum();
    assert!(
        counted >= connects / 2,
        "{counted} of {connects} refusals counted"
    );
    assert!(rejects.len() <= 4, "{} reject-peer lines", rejects.len());
    let refused = log
        .iter()
        .filter(|r| r["event"] == "refuse" && r["origin"] == "absent.example")
        .count();
    assert!((1..=2).contains(&refused), "{refused} refuse lines");
    let state = log_path(&t).parent().unwrap().to_path_buf();
    for f in ["audit.log", "refusals.log"] {
        let size = std::fs::metadata(state.join(f)).map_or(0, |m| m.len());
        eprintln!("{f}: {size} bytes after the flood");
    }
}
