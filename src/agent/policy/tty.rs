//! The terminal prompt for `--confirm` when no askpass program is set: a daemon run in the
//! foreground of a terminal (`composer-keyd serve`, its stdin that terminal) asks on
//! `/dev/tty`. A daemon started by systemd, launchd or the CLI's autostart has no terminal on
//! stdin and never does.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Whether the daemon runs in the foreground of a terminal it may ask on.
pub fn available() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// Asks `prompt` on `/dev/tty`, waiting at most `timeout`: `Some(true)` for y/yes,
/// `Some(false)` for anything else or no answer in time, `None` when there is no terminal.
pub fn ask(prompt: &str, timeout: Duration) -> Option<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/tty")
        .ok()?;
    let deadline = Instant::now() + timeout;
    // Input typed before the question was asked is not its answer.
    // SAFETY: tcflush only discards the terminal's pending input.
    unsafe { libc::tcflush(tty.as_raw_fd(), libc::TCIFLUSH) };
    write!(tty, "\ncomposer-keyd: {prompt}\nAllow? [y/N] ").ok()?;
    tty.flush().ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 64 {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: tty.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one pollfd on the stack, for the duration of the call.
        if ms == 0 || unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            let _ = writeln!(tty, "\ncomposer-keyd: no answer in time; refused");
            return Some(false);
        }
        // SAFETY: reads at most one byte into `byte`.
        let n = unsafe { libc::read(tty.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n <= 0 || byte[0] == b'\n' || byte[0] == b'\r' {
            break;
        }
        line.push(byte[0]);
    }
    let answer = String::from_utf8_lossy(&line).trim().to_ascii_lowercase();
    Some(answer == "y" || answer == "yes")
}
