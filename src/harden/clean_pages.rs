//! Letting go of clean, read-only file pages the daemon mapped but no longer runs: after start-up (the daemon's analogue of the kernel's `free_initmem`), after a burst of connections, and after calls to the store.
//!
//! Start-up runs code the steady state never runs again: argument parsing, the logger's
//! set-up, the keyring's D-Bus handshake, the index and config parsers. Its pages stay
//! mapped, and the kernel's fault-around maps 64 KiB around each of them, so an idle
//! daemon kept megabytes of code and data it would not touch again; a burst of
//! connections (accepts at the cap, evictions, thousands of connection set-ups) leaves
//! its own, and so does a call to the store (the keyring's D-Bus calls and their session
//! encryption, the index writer). Once it listens, again when [`super::trim_after_bursts`]
//! gives the heap back, and 100 ms after the last backend call, the daemon unmaps
//! (`MADV_DONTNEED`) every clean, read-only, file-backed mapping: its own text and rodata
//! and those of the shared libraries. The pages stay in the page
//! cache; what the daemon runs next faults back in on first use as minor faults, with no
//! I/O unless memory pressure evicted it, as it could have evicted the mapped pages anyway.
//!
//! Measured on 2026-12-07 (release build, `scripts/idle-rss`, docs/benchmarks.md): idle RSS
//! 2.3–2.4 MB with it, 7.0–7.2 MB without, against the 5 MB target; the code is linked in the
//! default order, so without it the code start-up touched stays resident. Its cost: what runs
//! next faults back in (the first lookup after a trim took 0.57 ms against 0.08 ms on
//! 2026-11-30; the first request after start costs 0.4–0.7 ms with or without it).
//!
//! Only mappings with no private copy-on-write pages qualify (`Anonymous: 0 kB` in
//! smaps), so relocated read-only data (RELRO) keeps its relocations: discarding those
//! pages would re-read them from the file unrelocated.

/// A `[start, end)` address range.
pub type Range = (usize, usize);

/// The ranges of `smaps` text that are safe to unmap and refault: private, readable, not
/// writable, file-backed (an inode), never copied on write, and not locked.
pub fn clean_file_ranges(smaps: &str) -> Vec<Range> {
    let mut out = Vec::new();
    let mut current: Option<(Range, bool)> = None;
    let mut take = |vma: Option<(Range, bool)>| {
        if let Some((range, true)) = vma {
            out.push(range);
        }
    };
    for line in smaps.lines() {
        if let Some(range) = header(line) {
            take(current.take());
            current = range.map(|r| (r, true));
            continue;
        }
        let Some((_, ok)) = current.as_mut() else {
            continue;
        };
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            *ok &= kb.trim() == "0 kB";
        } else if let Some(flags) = line.strip_prefix("VmFlags:") {
            *ok &= !flags.split_whitespace().any(|f| f == "lo");
        }
    }
    take(current);
    out
}

/// For a VMA header line, `Some(Some(range))` when its kind qualifies, `Some(None)` when it
/// does not; `None` for a field line.
fn header(line: &str) -> Option<Option<Range>> {
    let mut parts = line.split_whitespace();
    let (start, end) = parts.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = parts.next()?.as_bytes();
    let (_offset, _dev, inode) = (parts.next()?, parts.next()?, parts.next()?);
    let qualifies = perms.len() == 4
        && perms[0] == b'r'
        && perms[1] == b'-'
        && perms[3] == b'p'
        && inode != "0"
        && end > start;
    Some(qualifies.then_some((start, end)))
}

/// Unmaps the clean, read-only file pages of this process; returns how many bytes of
/// address space it covered. Best effort: a range the kernel refuses is left as it was.
#[cfg(target_os = "linux")]
pub fn unmap() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut unmapped = 0;
    for (start, end) in clean_file_ranges(&smaps) {
        // SAFETY: the range is a whole private, read-only, file-backed mapping of this
        // process with no copy-on-write pages; MADV_DONTNEED drops its page-table entries
        // and the next access maps the same file contents again.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if rc == 0 {
            unmapped += end - start;
        }
    }
    unmapped
}

/// Nothing to do where `/proc/self/smaps` does not exist.
#[cfg(not(target_os = "linux"))]
pub fn unmap() -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 1234 /usr/bin/composer-keyd
Rss:                1024 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 1234 /usr/bin/composer-keyd
Anonymous:             0 kB
VmFlags: rd ex mr mw me
55d0a0900000-55d0a0950000 r--p 00900000 08:01 1234 /usr/bin/composer-keyd
Anonymous:           320 kB
VmFlags: rd mr mw me ac
55d0a0950000-55d0a0960000 rw-p 00950000 08:01 1234 /usr/bin/composer-keyd
Anonymous:            64 kB
7f0000000000-7f0000010000 rw-p 00000000 00:00 0 
Anonymous:            64 kB
7f0000010000-7f0000020000 r--p 00000000 00:00 0 
Anonymous:             0 kB
7f0000020000-7f0000030000 r--p 00000000 08:01 99 /usr/lib/locked.so
Anonymous:             0 kB
VmFlags: rd mr mw me lo
7f0000030000-7f0000040000 r--s 00000000 08:01 98 /dev/shm/shared
Anonymous:             0 kB
7f0000040000-7f0000050000 r-xp 00000000 08:01 97 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7ffff7ff0000-7ffff7ff2000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
";

    #[test]
    fn only_clean_private_read_only_file_mappings_are_unmapped() {
        assert_eq!(
            clean_file_ranges(SMAPS),
            vec![
                (0x55d0_a000_0000, 0x55d0_a010_0000),
                (0x55d0_a010_0000, 0x55d0_a090_0000),
                (0x7f00_0004_0000, 0x7f00_0005_0000),
            ],
            "RELRO with copied pages, writable, anonymous, locked, shared and vdso mappings stay"
        );
    }

    #[test]
    fn a_vma_whose_fields_are_missing_still_counts_by_its_header() {
        let text = "1000-2000 r-xp 00000000 08:01 5 /bin/x\n3000-4000 r--p 0 08:01 5 /bin/x\nAnonymous: 4 kB\n";
        assert_eq!(clean_file_ranges(text), vec![(0x1000, 0x2000)]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_keeps_running_after_its_code_pages_are_unmapped() {
        fn work(n: u64) -> u64 {
            (1..=n).map(|i| i.wrapping_mul(2_654_435_761) % 97).sum()
        }
        let before = work(10_000);
        let unmapped = unmap();
        assert!(unmapped > 0, "this test binary has clean text to unmap");
        // The code, its constants and the libraries' pages fault back in.
        assert_eq!(work(10_000), before);
    }
}
