//! The benchmark's client and the zero-work floor responder: the same raw HTTP/1.1 code measures both.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// A keep-alive HTTP/1.1 connection that sends one fixed request and reads one response.
pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    /// A kept-alive connection to the socket at `sock`.
    pub fn open(sock: &Path) -> Conn {
        let stream = UnixStream::connect(sock).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            stream,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Sends `req` and reads the response; returns its total size.
    pub fn round_trip(&mut self, req: &[u8]) -> usize {
        self.stream.write_all(req).expect("write");
        let mut have = 0;
        loop {
            let n = self.stream.read(&mut self.buf[have..]).expect("read");
            assert!(n > 0, "the server closed the connection");
            have += n;
            if let Some(end) = find(&self.buf[..have], b"\r\n\r\n") {
                let len = content_length(&self.buf[..end]);
                let total = end + 4 + len;
                while have < total {
                    let n = self.stream.read(&mut self.buf[have..]).expect("read body");
                    assert!(n > 0, "short body");
                    have += n;
                }
                assert!(
                    self.buf.starts_with(b"HTTP/1.1 200"),
                    "{}",
                    String::from_utf8_lossy(&self.buf[..have])
                );
                return total;
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A `GET` request for `path`.
pub fn get_request(path: &str, keep_alive: bool) -> Vec<u8> {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {conn}\r\n\r\n").into_bytes()
}

/// One request on a fresh connection, as the PHP plugin does.
pub fn one_shot(sock: &Path, req: &[u8]) -> usize {
    Conn::open(sock).round_trip(req)
}

/// A responder that does no work: it answers every request head on `listener` with `canned`.
/// Runs on tokio's current-thread runtime, like the daemon, until the process is killed.
pub fn serve_raw(listener: UnixListener, canned: Vec<u8>) {
    on_current_thread(listener, |listener| async move {
        let canned: &'static [u8] = Box::leak(canned.into_boxed_slice());
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 16 * 1024];
                let mut have = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[have..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have += n;
                    // Answer every complete request head in the buffer.
                    while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
                        let close = find(&buf[..end], b"Connection: close").is_some();
                        if s.write_all(canned).await.is_err() || close {
                            return;
                        }
                        buf.copy_within(end + 4..have, 0);
                        have -= end + 4;
                    }
                }
            });
        }
    });
}

/// Runs `serve` on `listener` on tokio's current-thread runtime, the daemon's flavour.
pub fn on_current_thread<F: std::future::Future<Output = ()>>(
    listener: UnixListener,
    serve: impl FnOnce(tokio::net::UnixListener) -> F,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
    rt.block_on(serve(listener));
}

/// Latencies of `n` keep-alive round trips on one connection.
pub fn latencies(sock: &Path, req: &[u8], n: usize) -> Vec<Duration> {
    let mut c = Conn::open(sock);
    (0..n)
        .map(|_| {
            let t = Instant::now();
            c.round_trip(req);
            t.elapsed()
        })
        .collect()
}

/// Latencies of `n` connect-per-request round trips.
pub fn connect_latencies(sock: &Path, req: &[u8], n: usize) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            one_shot(sock, req);
            t.elapsed()
        })
        .collect()
}

/// Requests per second with `clients` keep-alive clients making `per_client` requests each.
/// Every client connects and makes one request first; the clock runs from when all of them
/// are ready until the last is done, so it counts requests on open connections (the
/// connect-per-request row measures connection set-up, threads starting not at all).
pub fn throughput(sock: &Path, req: &[u8], clients: usize, per_client: usize) -> f64 {
    let (n, secs) = clocked(sock, req, clients, per_client, || ());
    n / secs
}

/// [`throughput`], and the CPU time process `server` spent per request while the clock ran,
/// as the scheduler counts it for each of its threads (`/proc/PID/task/*/schedstat`). A rate
/// with 64 clients on two CPUs is also how the scheduler shares them with the clients; the
/// server's own CPU time per request is the part that is its work alone.
pub fn throughput_and_cpu(
    sock: &Path,
    req: &[u8],
    clients: usize,
    per_client: usize,
    server: u32,
) -> (f64, Duration) {
    let mut before = 0;
    let (n, secs) = clocked(sock, req, clients, per_client, || before = cpu_ns(server));
    let spent = cpu_ns(server).saturating_sub(before);
    (n / secs, Duration::from_nanos((spent as f64 / n) as u64))
}

/// Runs the clients of [`throughput`]; calls `at_start` once all are ready, just before the
/// clock starts. The requests made and the seconds they took.
fn clocked(
    sock: &Path,
    req: &[u8],
    clients: usize,
    per_client: usize,
    at_start: impl FnOnce(),
) -> (f64, f64) {
    let ready = std::sync::Barrier::new(clients + 1);
    let start = std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let mut c = Conn::open(sock);
                c.round_trip(req);
                ready.wait();
                for _ in 0..per_client {
                    c.round_trip(req);
                }
            });
        }
        ready.wait();
        at_start();
        Instant::now()
    });
    ((clients * per_client) as f64, start.elapsed().as_secs_f64())
}

/// The CPU time every thread of process `pid` has run, in nanoseconds.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The `q` quantile (0..=1) of `v`.
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i]
}

/// The full bytes of one response on a fresh connection, to give the floor the same size.
pub fn capture(sock: &Path, path: &str) -> Vec<u8> {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.write_all(&get_request(path, false)).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

/// Runs `f` with the calling thread and every thread of process `server` on one CPU (the last
/// one this thread may use), then lets them all run anywhere again.
///
/// Unpinned, a round trip's latency on a VM is mostly how long an idle virtual CPU takes to
/// wake, which varied threefold between runs and favoured whichever server the scheduler
/// happened to place beside the client. On one CPU it is the work of client and server plus
/// two context switches, the same for every server measured.
pub fn on_one_cpu<T>(server: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut all: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `all` is a valid cpu_set_t of `size` bytes; 0 is the calling thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut all) } != 0 {
        return f();
    }
    let last = (0..libc::CPU_SETSIZE as usize)
        .rev()
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &all) })
        .unwrap_or(0);
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `last` is below CPU_SETSIZE.
    unsafe { libc::CPU_SET(last, &mut one) };
    let set = |tid: libc::pid_t, mask: &libc::cpu_set_t| {
        // SAFETY: `mask` is a valid cpu_set_t of `size` bytes; a thread that has gone
        // just makes the call fail.
        unsafe { libc::sched_setaffinity(tid, size, mask) };
    };
    let threads = || -> Vec<libc::pid_t> {
        std::fs::read_dir(format!("/proc/{server}/task"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    set(0, &one);
    for tid in threads() {
        set(tid, &one);
    }
    let out = f();
    for tid in threads() {
        set(tid, &all);
    }
    set(0, &all);
    out
}
