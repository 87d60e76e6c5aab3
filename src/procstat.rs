//! One reader of `/proc/PID/stat`: a process's state, parent and start time, which tell
//! a live process from one that reused its pid and let callers walk a process tree.

/// What `/proc/PID/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `Z` (a zombie its parent has yet to reap), ...
    pub state: char,
    /// Field 4: the parent's pid, or 0 when the parent is outside this pid namespace.
    pub ppid: i32,
    /// Field 22: clock ticks after boot when it started; with the pid, it names one process.
    pub start: u64,
}

/// Reads `pid`'s stat, or `None` when it is gone (or not a pid).
pub fn read(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some(Stat { state, ppid, start })
}

/// `pid`'s parent, as this pid namespace sees it (0: outside it).
pub fn parent(pid: i32) -> Option<i32> {
    read(pid).map(|s| s.ppid)
}

/// When `pid` started (see [`Stat::start`]).
pub fn start_time(pid: i32) -> Option<u64> {
    read(pid).map(|s| s.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_refuses_what_is_not_one() {
        let me = std::process::id() as i32;
        let s = read(me).unwrap();
        assert_eq!(s.ppid, std::os::unix::process::parent_id() as i32);
        assert!(s.start > 0);
        assert!(s.state.is_ascii_uppercase());
        assert_eq!(read(0), None);
        assert_eq!(read(-1), None);
    }

    #[test]
    fn a_name_with_parentheses_and_spaces_does_not_shift_the_fields() {
        // A thread's comm is settable: give this one a hostile name and read it back.
        std::thread::spawn(|| {
            let name = std::ffi::CString::new("a) (b c)").unwrap();
            // SAFETY: PR_SET_NAME copies at most 16 bytes from a valid C string.
            unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            let s = read(tid).unwrap();
            assert_eq!(s.ppid, std::os::unix::process::parent_id() as i32);
            assert!(s.start >= read(std::process::id() as i32).unwrap().start);
        })
        .join()
        .unwrap();
    }
}
