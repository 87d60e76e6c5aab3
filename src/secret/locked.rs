//! The locked arena: a small region kept out of swap (`mlock`) and core dumps (`MADV_DONTDUMP`) that holds the long-lived copies of secrets, and the global allocator that routes them there.
//!
//! Locking the whole process (`mlockall`) pinned every transient buffer too: scrypt's
//! 256 MiB, every connection's buffers. Here only what is allocated inside
//! [`in_locked_arena`] lands in the arena; everything else goes to the wrapped allocator.
//! Blocks are wiped when freed, in the arena as outside it (the wrapped allocator is the
//! zeroizing one in the binary). The allocator also counts freed bytes, so that a trimmer
//! can give memory back to the kernel after a burst ([`freed_since_last_take`]).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

/// The arena's size. Reserved once; pages are locked as the arena first reaches them, so
/// VmLck grows only with the secrets actually held (1,000 cached credentials take about
/// 300 kB), never shrinks (freed blocks are reused), and never counts the unused rest.
pub const ARENA_BYTES: usize = 2 << 20;
/// The smallest and largest block; larger allocations go to the wrapped allocator.
const MIN_BLOCK: usize = 16;
const MAX_BLOCK: usize = 4096;
const CLASSES: usize = 9; // 16, 32, ..., 4096

thread_local! {
    static IN_ARENA: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every heap allocation it makes on this thread placed in the locked arena
/// (while there is room). Only takes effect where [`LockedAlloc`] is the global allocator.
pub fn in_locked_arena<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let was = self.0;
            let _ = IN_ARENA.try_with(|c| c.set(was));
        }
    }
    let _reset = Reset(IN_ARENA.with(|c| c.replace(true)));
    f()
}

/// Whether `ptr` lies in the locked arena.
#[inline]
pub fn in_arena(ptr: *const u8) -> bool {
    // Set once, never moved: frees check it without taking the arena's lock.
    let base = BASE.load(Ordering::Acquire);
    base != 0 && (base..base + ARENA_BYTES).contains(&(ptr as usize))
}

/// How the arena's pages are protected, once it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaState {
    /// Nothing has been put in the arena yet.
    Unused,
    /// Locked as used, and excluded from core dumps.
    Locked,
    /// The kernel refused the lock (`RLIMIT_MEMLOCK`, or no `mlock2`): excluded from core
    /// dumps only.
    NotLocked,
    /// The region could not be mapped: secrets live on the ordinary heap.
    Unavailable,
}

static STATE: AtomicU8 = AtomicU8::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);
/// The arena's address once mapped (0 before).
static BASE: AtomicUsize = AtomicUsize::new(0);

/// What became of the arena (for the hardening report).
pub fn arena_state() -> ArenaState {
    match STATE.load(Ordering::Relaxed) {
        1 => ArenaState::Locked,
        2 => ArenaState::NotLocked,
        3 => ArenaState::Unavailable,
        _ => ArenaState::Unused,
    }
}

/// Bytes freed through [`LockedAlloc`] since the last call; resets the count.
pub fn freed_since_last_take() -> usize {
    FREED.swap(0, Ordering::Relaxed)
}

struct Arena {
    base: *mut u8,
    /// Offset of the first never-used byte.
    bump: usize,
    /// Offset up to which the pages are locked (or the lock was refused once).
    locked_to: usize,
    lock_refused: bool,
    /// Heads of the free lists, one per size class; the link is stored in the freed block.
    free: [*mut u8; CLASSES],
    failed: bool,
}

// SAFETY: the raw pointers refer to the process-wide mapping, only touched under the mutex.
unsafe impl Send for Arena {}

static ARENA: Mutex<Arena> = Mutex::new(Arena {
    base: std::ptr::null_mut(),
    bump: 0,
    locked_to: 0,
    lock_refused: false,
    free: [std::ptr::null_mut(); CLASSES],
    failed: false,
});

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(MIN_BLOCK);
    if size > MAX_BLOCK {
        return None;
    }
    let block = size.next_power_of_two();
    Some(block.trailing_zeros() as usize - MIN_BLOCK.trailing_zeros() as usize)
}

impl Arena {
    /// Maps the region on first use. Must not allocate: it runs inside the allocator.
    fn ensure(&mut self) -> bool {
        if !self.base.is_null() {
            return true;
        }
        if self.failed {
            return false;
        }
        // SAFETY: an anonymous private mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            self.failed = true;
            STATE.store(3, Ordering::Relaxed);
            return false;
        }
        dont_dump(p, ARENA_BYTES);
        self.base = p.cast();
        BASE.store(p as usize, Ordering::Release);
        true
    }

    fn alloc(&mut self, class: usize) -> *mut u8 {
        let head = self.free[class];
        if !head.is_null() {
            // SAFETY: a free block of at least 16 bytes, aligned to its size, holding the link.
            self.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let block = MIN_BLOCK << class;
        // Blocks are aligned to their own size, which covers every alignment up to it.
        let start = self.bump.next_multiple_of(block);
        if start + block > ARENA_BYTES || !self.ensure() {
            return std::ptr::null_mut();
        }
        self.bump = start + block;
        self.lock_up_to(self.bump);
        // SAFETY: start + block <= ARENA_BYTES, inside the mapping.
        unsafe { self.base.add(start) }
    }

    /// Locks the pages up to offset `end` that are not locked yet. Must not allocate.
    fn lock_up_to(&mut self, end: usize) {
        if self.lock_refused || end <= self.locked_to {
            return;
        }
        let page = page_size();
        let to = end.div_ceil(page) * page;
        // SAFETY: locked_to..to lies inside the mapping (ARENA_BYTES is a page multiple).
        let ok =
            unsafe { libc::mlock(self.base.add(self.locked_to).cast(), to - self.locked_to) } == 0;
        if ok {
            self.locked_to = to;
        } else {
            self.lock_refused = true;
        }
        STATE.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

#[cfg(target_os = "linux")]
fn dont_dump(p: *mut libc::c_void, len: usize) {
    // SAFETY: only sets a flag on our own mapping.
    let _ = unsafe { libc::madvise(p, len, libc::MADV_DONTDUMP) };
}

#[cfg(not(target_os = "linux"))]
fn dont_dump(_p: *mut libc::c_void, _len: usize) {}

/// Adds to the freed-bytes count. A plain load and store, not a locked add: a count lost
/// to a race between threads only delays a trim, and every free pays for this.
#[inline]
fn count_freed(n: usize) {
    FREED.store(
        FREED.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

#[cold]
fn arena_alloc(layout: &Layout) -> *mut u8 {
    match class_of(layout) {
        Some(class) => ARENA.lock().unwrap_or_else(|e| e.into_inner()).alloc(class),
        None => std::ptr::null_mut(),
    }
}

/// Wipes an arena block and puts it on its free list.
///
/// # Safety
/// `ptr` is an arena block allocated with `layout` and not freed since.
#[cold]
unsafe fn arena_free(ptr: *mut u8, layout: &Layout) {
    let mut a = ARENA.lock().unwrap_or_else(|e| e.into_inner());
    // An arena block always came from a layout with a class; no panic in a free.
    let class = class_of(layout).unwrap_or(CLASSES - 1);
    // SAFETY: the caller gives a live arena block of this class, so its `MIN_BLOCK << class`
    // bytes are ours to wipe, and its first word (blocks are at least 16 bytes and aligned
    // to their size) holds the free-list link.
    unsafe {
        std::ptr::write_bytes(ptr, 0, MIN_BLOCK << class);
        ptr.cast::<*mut u8>().write(a.free[class]);
    }
    a.free[class] = ptr;
}

/// A global allocator that puts what [`in_locked_arena`] allocates into the locked arena
/// and everything else into `A`, counting freed bytes.
pub struct LockedAlloc<A>(pub A);

// SAFETY: arena blocks are disjoint, aligned to their size (>= the layout's size and
// alignment) and handed out once until freed; the rest is delegated to `A`.
unsafe impl<A: GlobalAlloc> GlobalAlloc for LockedAlloc<A> {
    // The fast paths are inlined into every allocation of the process; the arena's own
    // work is out of line.
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IN_ARENA.try_with(Cell::get).unwrap_or(false) {
            let p = arena_alloc(&layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { self.0.alloc(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count_freed(layout.size());
        if in_arena(ptr) {
            // SAFETY: `ptr` lies in the arena, so the arena handed it out with `layout`, and
            // the caller guarantees it is live.
            return unsafe { arena_free(ptr, &layout) };
        }
        // SAFETY: not an arena block, so `A` allocated it; the caller's contract holds.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let in_scope = IN_ARENA.try_with(Cell::get).unwrap_or(false);
        let from_arena = in_arena(ptr);
        if !in_scope && !from_arena {
            count_freed(layout.size());
            // SAFETY: `A` allocated `ptr` (it is not in the arena); the caller's contract holds.
            return unsafe { self.0.realloc(ptr, layout, new_size) };
        }
        // Move (into or out of the arena) by copy, so the old block is wiped by dealloc.
        // SAFETY: `realloc`'s caller guarantees `new_size` rounded to `layout.align()` does not
        // overflow and that `ptr` is live with `layout`; the new block is fresh, so the copy of
        // the smaller size does not overlap, and `ptr` is freed once, after the copy.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lib's unit tests run with the arena in place, as the binary does.
    #[global_allocator]
    static ALLOC: LockedAlloc<std::alloc::System> = LockedAlloc(std::alloc::System);

    fn smaps_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut in_range = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        in_range = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if in_range {
                if let Some(f) = line.strip_prefix("VmFlags:") {
                    return f.to_owned();
                }
            }
        }
        panic!("{addr:#x} is not mapped")
    }

    #[test]
    fn only_what_is_built_in_scope_goes_to_the_arena() {
        let outside = String::from("not a secret");
        let inside = in_locked_arena(|| String::from("hunter2-in-the-arena"));
        assert!(in_arena(inside.as_ptr()));
        assert!(!in_arena(outside.as_ptr()));
        // Larger than the biggest block: the ordinary heap takes it.
        let big = in_locked_arena(|| vec![1u8; MAX_BLOCK + 1]);
        assert!(!in_arena(big.as_ptr()));
        // Growth inside the scope moves a heap block into the arena.
        let grown = in_locked_arena(|| {
            let mut s = String::with_capacity(1);
            s.push_str("grows past its first block");
            s
        });
        assert!(in_arena(grown.as_ptr()));
        // The scope ends with the closure, also on unwind.
        let _ = std::panic::catch_unwind(|| in_locked_arena(|| panic!("inside")));
        assert!(!in_arena(String::from("after").as_ptr()));
    }

    #[test]
    fn freed_blocks_are_wiped_and_reused() {
        // A size class of its own (1 KiB), so a test running alongside cannot take the block.
        let s = in_locked_arena(|| "wipe-me-please-0123456789".repeat(24));
        let (p, cap) = (s.as_ptr(), s.capacity());
        drop(s);
        // The block is on its free list: every byte past the link is zero.
        // SAFETY: p points into the arena's mapping, which is never unmapped.
        let bytes = unsafe { std::slice::from_raw_parts(p, cap) };
        assert!(bytes[8..].iter().all(|&b| b == 0), "{bytes:?}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_arena_is_locked_on_touch_and_not_dumped() {
        let _s = in_locked_arena(|| String::from("check the flags"));
        // The mapping, not the string: tests running alongside can hold the whole arena
        // (an age file's decryption fills it), and a string that finds no room lands on
        // the heap, as documented.
        let base = BASE.load(Ordering::Acquire);
        assert_ne!(base, 0, "the arena is mapped once used");
        let flags = smaps_flags(base);
        assert!(flags.split_whitespace().any(|f| f == "dd"), "{flags}");
        match arena_state() {
            ArenaState::Locked => assert!(flags.split_whitespace().any(|f| f == "lo"), "{flags}"),
            // An unprivileged run over its RLIMIT_MEMLOCK: excluded from dumps only.
            ArenaState::NotLocked => {}
            other => panic!("arena {other:?} after use"),
        }
    }
}
