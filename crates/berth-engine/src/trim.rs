//! Keeping the monitor small. A monitor lives as long as its container, but most of what it touched
//! (argument parsing, the image store, spec generation) ran once before the container started. Its
//! clean, read-only file pages — code and constants of the binary and its libraries — can be
//! dropped from its page tables: the kernel re-reads any page that is needed again from the file.
//! Only mappings without private anonymous (copy-on-write) pages qualify, so no data is ever lost.
//! The part of the stack below the current frame, dirtied by deep calls during the start, is dead
//! memory and is released too.

/// Drops the clean read-only file pages of this process and returns freed heap to the kernel.
/// Returns the number of bytes of mappings advised.
pub fn drop_clean_pages() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut advised = 0;
    let mut current: Option<(usize, usize, bool)> = None; // (start, end, candidate)
    let mut stack: Option<(usize, usize)> = None;
    let mut flush = |m: Option<(usize, usize, bool)>, anon_kb: Option<u64>| {
        if let (Some((start, end, true)), Some(0)) = (m, anon_kb) {
            // SAFETY: [start, end) is a whole mapping of this process, read-only, file-backed and
            // without anonymous pages: MADV_DONTNEED only unmaps clean pages that the kernel
            // refaults from the file on the next access. No Rust reference can observe a change.
            let r = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            if r == 0 {
                advised += end - start;
            }
        }
    };
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            let mut f = line.split_whitespace();
            let perms = f.nth(1).unwrap_or("");
            let path = f.nth(3).unwrap_or("");
            let candidate = perms.starts_with('r') && !perms.contains('w') && path.starts_with('/');
            if path == "[stack]" {
                stack = Some((start, end));
            }
            current = Some((start, end, candidate));
            continue;
        }
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            let kb = kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok();
            flush(current.take(), kb);
        }
    }
    if let Some((start, end)) = stack {
        let marker = 0u8;
        let here = std::hint::black_box(&marker) as *const u8 as usize;
        // Keep 64 KiB below this frame for the calls still to come (the stack grows down).
        let limit = here.saturating_sub(64 * 1024) & !4095;
        if here > start && here < end && limit > start {
            // SAFETY: [start, limit) lies below every live frame of this single thread's stack
            // (only the main thread's stack is [stack]); its contents are dead, and pages
            // dropped by MADV_DONTNEED read back as zero if the stack grows into them again.
            let r = unsafe {
                libc::madvise(
                    start as *mut libc::c_void,
                    limit - start,
                    libc::MADV_DONTNEED,
                )
            };
            if r == 0 {
                advised += limit - start;
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    advised
}

/// This process's resident set size in KiB (VmRSS).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_clean_pages_shrinks_rss_and_keeps_working() {
        // Other test threads of this binary fault pages in at the same time, so one measurement
        // can be swamped: the drop must show in at least one of a few tries.
        let mut seen = Vec::new();
        for _ in 0..5 {
            let before = rss_kib().unwrap();
            let advised = drop_clean_pages();
            let after = rss_kib().unwrap();
            assert!(advised > 0);
            seen.push((before, after));
            if after < before {
                break;
            }
        }
        assert!(
            seen.iter().any(|(b, a)| a < b),
            "rss never shrank (before, after kB): {seen:?}"
        );
        // Code and constants fault back in transparently.
        let v: Vec<String> = (0..100).map(|i| format!("{i:04}")).collect();
        assert_eq!(v[42], "0042");
    }
}
