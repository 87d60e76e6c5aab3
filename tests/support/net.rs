//! Raw-socket helpers for the hostile, limits and load tests: responses read one by one off a kept-alive
//! connection, connection-state probes, a deterministic PRNG, and /proc readers.

use super::Reply;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A small xorshift generator: the same bytes on every run, so a failure replays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Reads exactly one HTTP/1.1 response (head plus Content-Length body) from `s`, leaving
/// whatever follows for the next call. `Ok(None)` when the peer closed before a response.
pub fn read_response(s: &mut UnixStream, carry: &mut Vec<u8>) -> std::io::Result<Option<Reply>> {
    let mut buf = [0u8; 16 * 1024];
    // Bounded by the read time-out set on `s` and by a response's size.
    loop {
        if let Some(end) = find(carry, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end]).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let total = end + 4 + len;
            while carry.len() < total {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::Error::other("closed mid-body"));
                }
                carry.extend_from_slice(&buf[..n]);
            }
            let body = String::from_utf8_lossy(&carry[end + 4..total]).into_owned();
            carry.drain(..total);
            return Ok(Some(Reply { status, body }));
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        carry.extend_from_slice(&buf[..n]);
        if carry.len() > 1024 * 1024 {
            return Err(std::io::Error::other("a response head over 1 MB"));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the daemon has closed `s`: reads (discarding) what is pending, without blocking.
pub fn is_closed(s: &mut UnixStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    // Bounded: a closed or idle socket answers at once; at most 256 reads of pending data.
    let closed = (0..256)
        .find_map(|_| match s.read(&mut buf) {
            Ok(0) => Some(true),
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => Some(false),
            Err(_) => Some(true),
        })
        .unwrap_or(false);
    s.set_nonblocking(false).unwrap();
    closed
}

/// Sends `bytes` on a fresh connection and returns the response, or `None` when the daemon
/// closed without one. Write errors are ignored: the daemon may close while we write.
pub fn send_raw(sock: &Path, bytes: &[u8]) -> Option<Reply> {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes); // the daemon may refuse mid-way; its answer is what counts
    let _ = s.shutdown(std::net::Shutdown::Write); // already closed is fine
    let mut carry = Vec::new();
    read_response(&mut s, &mut carry).ok().flatten()
}

/// Raises this process's soft open-files limit to the hard one and returns it.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
    }
    r.rlim_cur
}

/// A `kB` field of /proc/PID/status, e.g. `VmRSS:`.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How many file descriptors process `pid` holds.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
