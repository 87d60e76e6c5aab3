//! The project memo's bell: word that inotify queued an event or the mount table changed, read from memory the kernel shares with the daemon, with no system call.
//!
//! Two multishot `IORING_OP_POLL_ADD`s watch the memo's inotify descriptor and a mount
//! table of the bell's own. When inotify queues an event (or a mount changes), the kernel
//! wakes their pollers in the very system call that made the change, and io_uring's
//! wake-up adds task work for the thread that armed the polls, flagging it with
//! `TIF_NOTIFY_SIGNAL`. That thread runs the task work, which posts the completion, before
//! it next returns to user space. So once a request's bytes have been read on that thread
//! (a system call made after the client sent them, and so after the change), a completion
//! for the change is in the ring. A pipelined request came in with an earlier read, and
//! that read's return is the point that holds for it. [`Bell::quiet`] is then one load of
//! the ring's tail, and it is asked only on that thread: elsewhere the memo asks the kernel
//! itself, as it does where io_uring is missing or refused (seccomp,
//! `kernel.io_uring_disabled`). A completion only says "look": what changed is read, as
//! before, through the memo's epoll set.

use io_uring::{opcode, types, IoUring};
use std::cell::Cell;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Multishot polls, one per descriptor, rung for one thread.
pub struct Bell {
    ring: IoUring,
    /// The thread the kernel posts for: the one that armed the polls.
    owner: libc::pid_t,
    /// Each poll's descriptor and events, by its index (the completion's user data).
    polls: Vec<(RawFd, u32)>,
    /// A mount table of its own: polling a mount table takes its change notice, so the
    /// bell's must not be the one the memo reads (nor be inside the memo's epoll set, whose
    /// poll would poll it).
    _mounts: OwnedFd,
}

thread_local! {
    /// This thread's id, asked of the kernel once.
    static TID: Cell<libc::pid_t> = const { Cell::new(0) };
}

/// The calling thread's id.
fn tid() -> libc::pid_t {
    TID.with(|t| {
        if t.get() == 0 {
            // The system call, not glibc's wrapper: the package links against glibc 2.28,
            // which has none.
            // SAFETY: gettid takes no arguments and cannot fail.
            let id = unsafe { libc::syscall(libc::SYS_gettid) };
            t.set(libc::pid_t::try_from(id).unwrap_or(-1));
        }
        t.get()
    })
}

impl Bell {
    /// A bell on `inotify` (readable while an event is queued) and on the mount table,
    /// rung for this thread; `None` where the kernel offers no io_uring or no multishot
    /// poll.
    pub fn arm(inotify: RawFd) -> Option<Bell> {
        let mounts = OwnedFd::from(std::fs::File::open("/proc/self/mountinfo").ok()?);
        let mut bell = Bell {
            ring: IoUring::new(4).ok()?,
            owner: tid(),
            polls: vec![
                (inotify, libc::POLLIN as u32),
                (mounts.as_raw_fd(), libc::POLLPRI as u32),
            ],
            _mounts: mounts,
        };
        (0..bell.polls.len())
            .all(|i| bell.submit(i))
            .then_some(bell)
    }

    /// Arms poll `i` again.
    fn submit(&mut self, i: usize) -> bool {
        let (fd, events) = self.polls[i];
        let poll = opcode::PollAdd::new(types::Fd(fd), events)
            .multi(true)
            .build()
            .user_data(i as u64);
        // SAFETY: the entry names no buffer, only `fd`, whose file the kernel holds for as
        // long as the poll is armed.
        let queued = unsafe { self.ring.submission().push(&poll) }.is_ok();
        queued && self.ring.submit().is_ok_and(|n| n == 1)
    }

    /// Whether nothing was posted since [`Bell::clear`] and this is the thread rung for:
    /// `false` means ask the kernel.
    pub fn quiet(&mut self) -> bool {
        tid() == self.owner && self.ring.completion().is_empty()
    }

    /// On the owner's thread, before the memo reads what is queued: takes what was posted
    /// (anything queued later posts again) and arms again each poll that ended. `false`
    /// when the bell no longer works (an error, or a poll refused), and should go.
    /// Elsewhere it touches nothing: a poll armed from another thread would ring for it.
    pub fn clear(&mut self) -> bool {
        if tid() != self.owner {
            return true;
        }
        let mut ended = Vec::new();
        for cqe in self.ring.completion() {
            if cqe.result() < 0 {
                return false;
            }
            if !io_uring::cqueue::more(cqe.flags()) {
                ended.push(cqe.user_data() as usize);
            }
        }
        ended
            .into_iter()
            .all(|i| i < self.polls.len() && self.submit(i))
    }
}
