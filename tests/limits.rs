//! The daemon's limits against the real daemon: slowloris, thousands of idle connections, idle keep-alive,
//! the connection cap, a client that stops reading, and a backend that stops answering.

use crate::support;

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use support::net::{fd_count, is_closed, raise_nofile, read_response};
use support::{request, TestEnv};

const TOKEN: &str = "limits-test-token-0123456789";

fn setup(args: &[&str]) -> (TestEnv, support::Daemon) {
    let t = TestEnv::with_keyring(true);
    let d = t.start_daemon(args);
    t.ok(
        &["add", "x.example", "--type", "bearer"],
        &format!("{TOKEN}\n"),
    );
    (t, d)
}

fn served(t: &TestEnv) -> bool {
    request(&t.socket(), "GET", "/v1/credentials/x.example", None)
        .is_ok_and(|r| r.status == 200 && r.json()["credential"]["token"] == TOKEN)
}

/// Polls (every 100 ms, at most `limit`) until every connection is closed; returns how many are left.
fn wait_all_closed(conns: &mut [UnixStream], limit: Duration) -> usize {
    let start = Instant::now();
    let mut open: Vec<usize> = (0..conns.len()).collect();
    while !open.is_empty() && start.elapsed() < limit {
        open.retain(|&i| !is_closed(&mut conns[i]));
        std::thread::sleep(Duration::from_millis(100));
    }
    open.len()
}

#[test]
fn slowloris_connections_are_closed_at_the_header_timeout_while_service_continues() {
    let (t, _d) = setup(&["--header-timeout", "2s"]);
    let mut conns: Vec<UnixStream> = (0..100)
        .map(|_| {
            let mut s = UnixStream::connect(t.socket()).unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\n")
                .unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut closed_at = vec![None; conns.len()];
    // One header line per connection every 200 ms, for at most 5 s (2.5x the time-out).
    while start.elapsed() < Duration::from_secs(5) && closed_at.iter().any(Option::is_none) {
        for (i, s) in conns.iter_mut().enumerate() {
            if closed_at[i].is_some() {
                continue;
            }
            let wrote = s.write_all(b"X-Slow: 1\r\n").is_ok();
            if !wrote || is_closed(s) {
                closed_at[i] = Some(start.elapsed());
            }
        }
        assert!(served(&t), "service continues during the slowloris");
        std::thread::sleep(Duration::from_millis(200));
    }
    let open = closed_at.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} slow connections still open after 5 s");
    let first = closed_at.iter().flatten().min().unwrap();
    assert!(
        *first >= Duration::from_millis(1500),
        "a slow but live connection was cut early, at {first:?}"
    );
    assert!(served(&t));
}

#[test]
fn a_request_longer_than_the_header_timeout_is_answered_and_its_connection_then_times_out() {
    let (t, _d) = setup(&["--header-timeout", "1s", "--body-timeout", "30s"]);
    let body = br#"{"credential":{"type":"bearer","token":"slow-body-token"}}"#;
    let mut s = UnixStream::connect(t.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "PUT /v1/credentials/slow.example HTTP/1.1\r\nHost: l\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..5]).unwrap();
    // Inside the request for 2.5 header time-outs: the header deadline must not cut it.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!is_closed(&mut s), "a connection inside a request was cut");
    s.write_all(&body[5..]).unwrap();
    let r = read_response(&mut s, &mut Vec::new()).unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Idle again, it gets one header time-out for its next head, counted from the answer.
    let answered = Instant::now();
    let mut closed = None;
    while closed.is_none() && answered.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        if is_closed(&mut s) {
            closed = Some(answered.elapsed());
        }
    }
    let closed = closed.expect("the idle connection was never closed");
    assert!(
        closed >= Duration::from_millis(800),
        "closed {closed:?} after its answer, before its header time-out"
    );
}

#[test]
fn four_thousand_idle_connections_and_idle_keep_alive_are_closed() {
    assert!(raise_nofile() > 4500, "this test needs 4,500 open files");
    let (t, d) = setup(&["--header-timeout", "3s"]);
    let before = fd_count(d.pid());
    let mut idle: Vec<UnixStream> = (0..4000)
        .map(|i| UnixStream::connect(t.socket()).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // Keep-alive connections that made one request each, then went quiet.
    let mut kept: Vec<UnixStream> = (0..50)
        .map(|_| {
            let mut s = UnixStream::connect(t.socket()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\n\r\n")
                .unwrap();
            let r = read_response(&mut s, &mut Vec::new()).unwrap().unwrap();
            assert_eq!(r.status, 200);
            s
        })
        .collect();
    for _ in 0..20 {
        assert!(served(&t), "service continues with 4,050 idle connections");
    }
    let held = fd_count(d.pid());
    assert!(
        held >= before + 4000,
        "the daemon held them: {before} -> {held}"
    );
    let left = wait_all_closed(&mut idle, Duration::from_secs(10));
    assert_eq!(left, 0, "idle connections never closed");
    let left = wait_all_closed(&mut kept, Duration::from_secs(5));
    assert_eq!(left, 0, "idle keep-alive connections never closed");
    drop(idle);
    drop(kept);
    std::thread::sleep(Duration::from_millis(200));
    assert!(fd_count(d.pid()) < before + 50, "descriptors were released");
    assert!(served(&t));
}

#[test]
fn at_the_cap_busy_connections_are_never_cut_and_the_extra_one_waits() {
    let (t, _d) = setup(&[
        "--max-connections",
        "8",
        "--header-timeout",
        "30s",
        "--body-timeout",
        "30s",
    ]);
    // Eight connections inside a request: each has sent a head and part of its body.
    let body = br#"{"credential":{"type":"bearer","token":"busy-token"}}"#;
    let head = format!(
        "PUT /v1/credentials/busy.example HTTP/1.1\r\nHost: l\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut held: Vec<UnixStream> = (0..8)
        .map(|_| {
            let mut s = UnixStream::connect(t.socket()).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body[..5]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = UnixStream::connect(t.socket()).unwrap();
    extra
        .write_all(b"GET /v1/status HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n")
        .unwrap();
    extra
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let waited = read_response(&mut extra, &mut Vec::new());
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the ninth connection was served beyond the cap: {waited:?}"
    );
    // The busy ones were not cut: one finishes its body and is answered.
    let s = &mut held[0];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&body[5..]).unwrap();
    let r = read_response(s, &mut Vec::new()).unwrap().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // Now idle, it gives its place to the waiting one.
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = read_response(&mut extra, &mut Vec::new()).unwrap().unwrap();
    assert_eq!(r.status, 200);
    assert!(is_closed(&mut held[0]), "the idle one was closed for it");
    for s in &mut held[1..] {
        assert!(!is_closed(s), "a busy connection was cut");
    }
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let (t, _d) = setup(&["--write-timeout", "1s", "--header-timeout", "60s"]);
    let s = UnixStream::connect(t.socket()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    // Requests until the daemon gives up on us (bounded: 200,000 requests or an error).
    let req = b"GET /v1/credentials/x.example HTTP/1.1\r\nHost: l\r\n\r\n";
    let writer = std::thread::spawn(move || {
        for _ in 0..200_000 {
            if let Err(e) = w.write_all(req) {
                return Some(e.kind());
            }
        }
        None
    });
    let ended = writer.join().unwrap();
    assert!(
        matches!(
            ended,
            Some(ErrorKind::BrokenPipe | ErrorKind::ConnectionReset)
        ),
        "the daemon kept a connection whose peer does not read: {ended:?}"
    );
    drop(s);
    assert!(served(&t));
}

#[test]
fn a_backend_that_stops_answering_times_out_and_service_continues() {
    let (t, _d) = setup(&["--backend-timeout", "2s"]);
    let kr = t.keyring_pid().unwrap() as i32;
    // SAFETY: kill has no memory effects; the pid is this test's own gnome-keyring-daemon.
    unsafe { libc::kill(kr, libc::SIGSTOP) };
    let put = |tok: &str| {
        request(
            &t.socket(),
            "PUT",
            "/v1/credentials/y.example",
            Some(&format!(
                r#"{{"credential":{{"type":"bearer","token":"{tok}"}}}}"#
            )),
        )
        .unwrap()
    };
    let r = put("while-stopped");
    assert_eq!(
        (r.status, r.kind().as_str()),
        (503, "backend-unavailable"),
        "{}",
        r.body
    );
    // Cached secrets and metadata still answer while the keyring is stopped.
    assert!(served(&t));
    assert_eq!(
        request(&t.socket(), "GET", "/v1/status", None)
            .unwrap()
            .status,
        200
    );
    // SAFETY: as above.
    unsafe { libc::kill(kr, libc::SIGCONT) };
    // Bounded: the stalled call drains first; 20 tries of up to 2 s.
    let ok = (0..20).any(|_| put("after-resume").status == 200);
    assert!(ok, "the keyring works again after it resumes");
    let r = request(&t.socket(), "GET", "/v1/credentials/y.example", None).unwrap();
    assert_eq!(r.json()["credential"]["token"], "after-resume");
}
