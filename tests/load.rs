//! A bounded load-and-fault test of the real daemon and keyring: concurrent clients look credentials up,
//! mixed with adds and removes, while idle connections are held open; the daemon is killed with SIGKILL
//! half-way and restarted. It counts wrong answers and lost credentials (both must be zero) and samples RSS.
//!
//! The always-run size is small. The full size (64 clients x 10,000 lookups, 1,000 idle connections):
//!
//!     cargo test --release --test integration -- load:: --ignored --nocapture

use crate::support;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::net::{is_closed, raise_nofile, read_response, status_kb, Rng};
use support::{request, Reply, TestEnv};

struct Plan {
    clients: usize,
    lookups: usize,
    idle: usize,
    stable: usize,
    /// One write (add or remove of the client's own credential) per this many operations.
    write_every: u64,
}

/// A keep-alive connection that reconnects (bounded) when the daemon goes away.
struct Conn {
    sock: PathBuf,
    stream: Option<UnixStream>,
    carry: Vec<u8>,
}

/// What a request came to: a reply, or no reply because the daemon died under it.
enum Outcome {
    Reply(Reply),
    Lost,
}

impl Conn {
    fn new(sock: &Path) -> Conn {
        Conn {
            sock: sock.to_path_buf(),
            stream: None,
            carry: Vec::new(),
        }
    }

    /// Sends one request. A failure before the request was written is retried on a new
    /// connection (every 50 ms, for at most 60 s); one after it is `Lost`.
    fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Outcome {
        let body = body.unwrap_or("");
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: l\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let start = Instant::now();
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the daemon never came back"
            );
            if self.stream.is_none() {
                match UnixStream::connect(&self.sock) {
                    Ok(s) => {
                        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                        self.stream = Some(s);
                        self.carry.clear();
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
            }
            let s = self.stream.as_mut().unwrap();
            if s.write_all(raw.as_bytes()).is_err() {
                self.stream = None;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            return match read_response(s, &mut self.carry) {
                Ok(Some(r)) => Outcome::Reply(r),
                _ => {
                    self.stream = None;
                    Outcome::Lost
                }
            };
        }
    }
}

fn token_of(r: &Reply) -> Option<String> {
    r.json()["credential"]["token"].as_str().map(str::to_owned)
}

#[derive(Default)]
struct Tally {
    lookups: AtomicU64,
    writes: AtomicU64,
    wrong: AtomicU64,
    lost_replies: AtomicU64,
    first_wrong: Mutex<Option<String>>,
}

impl Tally {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Ordering::Relaxed);
        self.first_wrong.lock().unwrap().get_or_insert(what);
    }
}

/// One client: looks up the stable credentials and its own, and adds and removes its own.
/// The values its own credential may have are tracked: a write whose reply was lost to the
/// kill may or may not have landed, so both are accepted until a reply settles it.
fn client(i: usize, plan: &Plan, sock: &Path, tally: &Tally) -> BTreeSet<Option<String>> {
    let mut rng = Rng::new(0x10ad + i as u64);
    let mut conn = Conn::new(sock);
    let own = format!("/v1/credentials/c{i}.example");
    let mut may_be: BTreeSet<Option<String>> = [None].into();
    let mut done = 0;
    let mut op = 0u64;
    while done < plan.lookups {
        op += 1;
        if op.is_multiple_of(plan.write_every) {
            tally.writes.fetch_add(1, Ordering::Relaxed);
            let (outcome, value) = if rng.below(3) == 0 {
                (conn.call("DELETE", &own, None), None)
            } else {
                let v = format!("own-{i}-{op}");
                let body = format!(r#"{{"credential":{{"type":"bearer","token":"{v}"}}}}"#);
                (conn.call("PUT", &own, Some(&body)), Some(v))
            };
            match outcome {
                Outcome::Reply(r) if r.status == 200 => may_be = [value].into(),
                Outcome::Reply(r) if r.status == 404 && value.is_none() => {
                    if !may_be.contains(&None) {
                        tally.wrong(format!(
                            "client {i}: delete found nothing, expected {may_be:?}"
                        ));
                    }
                    may_be = [None].into();
                }
                Outcome::Reply(r) => {
                    tally.wrong(format!("client {i}: write got {}: {}", r.status, r.body))
                }
                Outcome::Lost => {
                    tally.lost_replies.fetch_add(1, Ordering::Relaxed);
                    may_be.insert(value);
                }
            }
            continue;
        }
        done += 1;
        tally.lookups.fetch_add(1, Ordering::Relaxed);
        if rng.below(5) == 0 {
            match conn.call("GET", &own, None) {
                Outcome::Reply(r) => {
                    let got = match r.status {
                        200 => token_of(&r),
                        404 => None,
                        _ => {
                            tally.wrong(format!("client {i}: own lookup {}: {}", r.status, r.body));
                            continue;
                        }
                    };
                    if may_be.contains(&got) {
                        may_be = [got].into();
                    } else {
                        tally.wrong(format!("client {i}: own is {got:?}, expected {may_be:?}"));
                    }
                }
                Outcome::Lost => {
                    tally.lost_replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else {
            let s = rng.below(plan.stable as u64);
            match conn.call("GET", &format!("/v1/credentials/stable{s}.example"), None) {
                Outcome::Reply(r) => {
                    let want = format!("stable-token-{s}");
                    if r.status != 200 || token_of(&r).as_deref() != Some(&want) {
                        tally.wrong(format!("client {i}: stable{s}: {} {}", r.status, r.body));
                    }
                }
                Outcome::Lost => {
                    tally.lost_replies.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    may_be
}

fn hold_idle(sock: &Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| UnixStream::connect(sock).unwrap_or_else(|e| panic!("idle connection {i}: {e}")))
        .collect()
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn run(plan: Plan) {
    assert!(
        raise_nofile() as usize > plan.idle * 2 + 256,
        "not enough open files"
    );
    let mut t = TestEnv::with_keyring(true);
    t.env.insert("RUST_LOG".into(), "warn".into());
    let args = ["--header-timeout", "600s", "--audit-max-size", "1000000"];
    let daemon = t.start_daemon(&args);
    let sock = t.socket();
    for s in 0..plan.stable {
        let body = format!(r#"{{"credential":{{"type":"bearer","token":"stable-token-{s}"}}}}"#);
        let r = request(
            &sock,
            "PUT",
            &format!("/v1/credentials/stable{s}.example"),
            Some(&body),
        );
        assert_eq!(r.unwrap().status, 200);
    }
    let pid = Arc::new(AtomicU32::new(daemon.pid()));
    let idle = hold_idle(&sock, plan.idle);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<(u32, u64, u64)>>> = Arc::default();
    let sampler = {
        let (pid, stop, samples, tally) =
            (pid.clone(), stop.clone(), samples.clone(), tally.clone());
        // Every 250 ms until told to stop (the run is bounded by the clients' own bounds).
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let p = pid.load(Ordering::Relaxed);
                if let Some(rss) = status_kb(p, "VmRSS:") {
                    let done = tally.lookups.load(Ordering::Relaxed);
                    samples.lock().unwrap().push((p, done, rss));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let plan = Arc::new(plan);
    let start = Instant::now();
    let clients: Vec<_> = (0..plan.clients)
        .map(|i| {
            let (plan, sock, tally) = (plan.clone(), sock.clone(), tally.clone());
            std::thread::spawn(move || client(i, &plan, &sock, &tally))
        })
        .collect();
    // Half-way: kill -9, restart, hold a new set of idle connections.
    let total = (plan.clients * plan.lookups) as u64;
    let wait = Instant::now();
    while tally.lookups.load(Ordering::Relaxed) < total / 2 {
        assert!(wait.elapsed() < Duration::from_secs(1800), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut daemon = daemon;
    daemon.kill9();
    let killed_at = tally.lookups.load(Ordering::Relaxed);
    drop(idle);
    let daemon = t.start_daemon(&args);
    pid.store(daemon.pid(), Ordering::Relaxed);
    let mut idle = hold_idle(&sock, plan.idle);
    let own: Vec<BTreeSet<Option<String>>> =
        clients.into_iter().map(|c| c.join().unwrap()).collect();
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    // Nothing lost: every stable credential, and each client's own as its last reply said.
    let mut lost = 0;
    for s in 0..plan.stable {
        let r = request(
            &sock,
            "GET",
            &format!("/v1/credentials/stable{s}.example"),
            None,
        )
        .unwrap();
        if token_of(&r).as_deref() != Some(format!("stable-token-{s}").as_str()) {
            lost += 1;
        }
    }
    for (i, may_be) in own.iter().enumerate() {
        let r = request(&sock, "GET", &format!("/v1/credentials/c{i}.example"), None).unwrap();
        let got = if r.status == 200 { token_of(&r) } else { None };
        if !may_be.contains(&got) {
            lost += 1;
        }
    }
    let still_open = idle.iter_mut().map(is_closed).filter(|c| !c).count();
    let samples = samples.lock().unwrap().clone();
    let report = |p: u32| {
        let mine: Vec<&(u32, u64, u64)> = samples.iter().filter(|s| s.0 == p).collect();
        let warm = mine.get(mine.len() / 4).map_or(0, |s| s.2);
        let last = mine.last().map_or(0, |s| s.2);
        let max = mine.iter().map(|s| s.2).max().unwrap_or(0);
        (mine.len(), warm, last, max)
    };
    let first = samples.first().map_or(0, |s| s.0);
    let (n1, warm1, last1, max1) = report(first);
    let (n2, warm2, last2, max2) = report(daemon.pid());
    println!(
        "load: {} clients x {} lookups = {} lookups and {} writes in {:.1} s ({:.0} lookups/s), \
         {} idle connections; killed at lookup {killed_at}; wrong answers {}, lost credentials {lost}, \
         replies lost to the kill {}; idle connections still open at the end {still_open}/{}",
        plan.clients,
        plan.lookups,
        tally.lookups.load(Ordering::Relaxed),
        tally.writes.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        tally.lookups.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        plan.idle,
        tally.wrong.load(Ordering::Relaxed),
        tally.lost_replies.load(Ordering::Relaxed),
        plan.idle,
    );
    println!(
        "load: RSS before the kill: {n1} samples, at 25% {:.1} MiB, last {:.1} MiB, max {:.1} MiB; \
         after the restart: {n2} samples, at 25% {:.1} MiB, last {:.1} MiB, max {:.1} MiB",
        mib(warm1),
        mib(last1),
        mib(max1),
        mib(warm2),
        mib(last2),
        mib(max2),
    );
    assert_eq!(
        tally.wrong.load(Ordering::Relaxed),
        0,
        "first wrong answer: {:?}",
        tally.first_wrong.lock().unwrap()
    );
    assert_eq!(lost, 0, "credentials lost");
    assert_eq!(
        still_open, plan.idle,
        "the daemon kept the idle connections"
    );
    // Flat: once warm, a daemon's RSS grows by less than half (and 16 MiB) over the run.
    for (warm, last) in [(warm1, last1), (warm2, last2)] {
        if warm > 0 {
            assert!(
                last <= warm + warm / 2 + 16 * 1024,
                "RSS grew: {warm} kB -> {last} kB"
            );
        }
    }
    drop(daemon);
}

#[test]
fn load_and_kill9_small() {
    run(Plan {
        clients: 16,
        lookups: 1000,
        idle: 200,
        stable: 8,
        write_every: 50,
    });
}

#[test]
#[ignore = "the full size takes minutes: cargo test --release --test integration -- load:: --ignored --nocapture"]
fn load_and_kill9_full() {
    run(Plan {
        clients: 64,
        lookups: 10_000,
        idle: 1000,
        stable: 32,
        write_every: 200,
    });
}
